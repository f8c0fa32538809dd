"""`hamdb ingest hamiltonian`, `hamdb hamiltonian show`, `hamdb export hamiltonian` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from hamdb.cli.main import cli
from hamdb.db.models import HamiltonianRow
from hamdb.io.formats import read_hamiltonian


def _run(project, *args: str):
    return CliRunner().invoke(cli, ["--project", str(project.root), *args])


@pytest.fixture
def inas(topology_testdata: Path) -> Path:
    return topology_testdata / "TBmodels" / "InAs_nosym.hdf5"


def test_ingest_show_export(project, inas: Path, tmp_path: Path) -> None:
    result = _run(
        project, "ingest", "hamiltonian", str(inas), "--option", 'species=["In","As"]', "--json"
    )
    assert result.exit_code == 0, result.output
    stored = json.loads(result.output)
    assert stored["n_states"] == 14 and stored["method"] == "import:tbmodels"

    shown = _run(project, "hamiltonian", "show", str(stored["id"]), "--json")
    assert shown.exit_code == 0, shown.output
    summary = json.loads(shown.output)
    assert summary["spin"] == "soc" and summary["hermiticity_error_ev"] < 1e-12
    assert summary["gap_ev"] == pytest.approx(0.42, abs=0.05)

    out = tmp_path / "exported" / "inas_hr.dat"
    exported = _run(
        project, "export", "hamiltonian", str(stored["id"]), "--format", "wannier90", "-o", str(out)
    )
    assert exported.exit_code == 0, exported.output
    original = read_hamiltonian(inas, "tbmodels", species=["In", "As"])
    back = read_hamiltonian(out)
    assert np.array_equal(back.edges, original.edges)
    assert np.abs(back.h - original.h).max() < 1e-12


def test_second_ingest_with_the_same_method_is_refused(project, inas: Path, session) -> None:
    args = ("ingest", "hamiltonian", str(inas), "--option", 'species=["In","As"]')
    assert _run(project, *args).exit_code == 0
    again = _run(project, *args)
    assert again.exit_code == 1
    assert "already has a dft soc Hamiltonian" in again.output
    assert session.scalar(select(func.count()).select_from(HamiltonianRow)) == 1


def test_bad_file_stores_nothing(project, tmp_path: Path, session) -> None:
    bad = tmp_path / "cut_hr.dat"
    bad.write_text("comment\n2\n1\n1\n0 0 0 1 1 0.5 0.0\n")
    result = _run(project, "ingest", "hamiltonian", str(bad))
    assert result.exit_code == 1
    assert str(bad) in result.output and "Traceback" not in result.output
    assert session.scalar(select(func.count()).select_from(HamiltonianRow)) == 0
    assert not any(Path(project.store_path).rglob("*.h5"))


def test_show_a_file(topology_testdata: Path, project) -> None:
    hsx = topology_testdata / "sisl-files" / "Bi_hexagonal" / "Bi_hexagonal.HSX"
    result = _run(project, "hamiltonian", "show", str(hsx))
    assert result.exit_code == 0, result.output
    assert "siesta:Bi" in result.output and "hermiticity_error_ev" in result.output


def test_show_unknown_id(project) -> None:
    result = _run(project, "hamiltonian", "show", "4242")
    assert result.exit_code == 1 and "no Hamiltonian with id 4242" in result.output
