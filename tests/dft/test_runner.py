"""`hamdb dft run`: each structure in its own process and transaction; failures are recorded
with their reason and leave nothing half-stored; a crashed worker does not stop the others."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

pytest.importorskip("gpaw")

from pymatgen.core import Lattice, Structure
from sqlalchemy import func, select

from hamdb.db.engine import make_engine, session_scope
from hamdb.db.models import DftRunRow, HamiltonianRow
from hamdb.dft import runner
from hamdb.dft.gpaw_lcao import LcaoSettings

FAST = LcaoSettings(kdensity=1.0, grid_spacing=0.25)


def _silicon() -> Structure:
    lattice = Lattice(0.5 * 5.43 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]))
    return Structure(lattice, ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]])


def _add(project: Any, structure: Structure, name: str) -> int:
    from hamdb.io.structure_ingest import find_or_add_structure

    with session_scope(make_engine(project.database_url)) as session:
        sid, _ = find_or_add_structure(session, structure, "test", name)
    return sid


def _runs(project: Any) -> dict[int, DftRunRow]:
    with session_scope(make_engine(project.database_url)) as session:
        return {r.structure_id: r for r in session.scalars(select(DftRunRow))}


def _n_hamiltonians(project: Any) -> int:
    with make_engine(project.database_url).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(HamiltonianRow)).scalar_one())


@pytest.mark.gpaw
def test_run_stores_checked_non_soc_and_soc_hamiltonians(sqlite_project: Any) -> None:
    from hamdb.io.catalog import load_hamiltonian
    from hamdb.store.store import HamiltonianStore

    sid = _add(sqlite_project, _silicon(), "si")
    (outcome,) = runner.run_many(sqlite_project, [sid], FAST, check=True)
    assert outcome.status == "done", outcome.error
    assert outcome.check is not None and max(outcome.check.values()) < runner.CHECK_TOLERANCE_EV
    run = _runs(sqlite_project)[sid]
    assert run.status == "done" and run.check == outcome.check and run.timings["scf_s"] > 0
    with session_scope(make_engine(sqlite_project.database_url)) as session:
        rows = session.scalars(select(HamiltonianRow).order_by(HamiltonianRow.spin)).all()
        assert [(r.kind, r.spin, r.method) for r in rows] == [
            ("dft", "none", "gpaw-lcao-pbe-dzp"), ("dft", "soc", "gpaw-lcao-pbe-dzp")
        ]  # fmt: skip
        assert rows[1].settings["check"] == outcome.check
        store = HamiltonianStore(sqlite_project.store_path)
        soc = load_hamiltonian(session, store, rows[1].id, verify=True)
    assert soc.spin == "soc" and soc.n_electrons == 8.0 and soc.s is not None
    assert runner.select_structures(sqlite_project, pending=True) == []
    (again,) = runner.run_many(sqlite_project, [sid], FAST)  # by id: not recomputed
    assert again.status == "skipped" and _runs(sqlite_project)[sid].status == "done"


@pytest.mark.gpaw
def test_failures_are_recorded_and_nothing_is_half_stored(project: Any) -> None:
    """No setups for Po; an SCF stopped after 2 iterations: both failed with their reason."""
    po = _add(project, Structure(Lattice.cubic(3.35), ["Po"], [[0, 0, 0]]), "po")
    si = _add(project, _silicon(), "si")
    outcomes = runner.run_many(project, [po], FAST)
    outcomes += runner.run_many(project, [si], LcaoSettings(kdensity=1.0, maxiter=2))
    assert [o.status for o in outcomes] == ["failed", "failed"]
    runs = _runs(project)
    assert "no PBE setup or dzp basis for element Po" in runs[po].error
    assert runs[si].error == "SCF did not converge in 2 iterations"
    assert all(r.status == "failed" for r in runs.values())
    assert _n_hamiltonians(project) == 0
    assert not any(project.store_path.rglob("*.h5"))
    assert runner.select_structures(project, pending=True) == []
    assert runner.select_structures(project, pending=True, retry_failed=True) == [po, si]


def test_a_crashed_worker_marks_its_structure_failed_and_the_loop_goes_on(
    sqlite_project: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cu = Structure(Lattice.cubic(3.0), ["Cu"], [[0, 0, 0]])
    ids = [_add(sqlite_project, _silicon(), "si"), _add(sqlite_project, cu, "cu")]
    monkeypatch.setattr(runner, "run_one", lambda *args: os._exit(7))  # dies like a segfault
    outcomes = runner.run_many(sqlite_project, ids, FAST, workers=2)
    assert sorted(o.structure_id for o in outcomes) == sorted(ids)
    runs = _runs(sqlite_project)
    assert all(runs[i].error == "worker process died (exit code 7)" for i in ids)
    assert _n_hamiltonians(sqlite_project) == 0


def test_cli_needs_a_selection_and_reports_failures(sqlite_project: Any) -> None:
    from click.testing import CliRunner

    from hamdb.cli.main import cli

    args = ["--project", str(sqlite_project.root), "dft", "run"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "give structure IDS, --pending or a filter" in result.output
    _add(sqlite_project, Structure(Lattice.cubic(3.35), ["Po"], [[0, 0, 0]]), "po")
    result = CliRunner().invoke(cli, [*args, "--pending", "--json"])
    assert result.exit_code == 1
    assert '"failed": 1' in result.output and "element Po" in result.output
