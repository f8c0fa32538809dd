"""hamdb topology / screen / plot wilson through the real CLI (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from hamdb.cli.main import cli
from hamdb.io.formats import write_hamiltonian
from hamdb.physics.models import fu_kane_mele, kane_mele


def test_topology_json_on_a_file(tmp_path: Path) -> None:
    path = write_hamiltonian(fu_kane_mele(delta_t1=-0.4), tmp_path / "fkm.h5", "hamdb")
    result = CliRunner().invoke(cli, ["topology", str(path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["dim"] == 3 and payload["z2"] == [0, 1, 1, 1] and payload["converged"]
    assert payload["method"] == "wcc+parity" and payload["gap_ev"] > 0.5
    assert {"direct_gap_ev", "timing_s"} <= set(payload)


def test_topology_text_dim_override_and_options(tmp_path: Path) -> None:
    path = write_hamiltonian(kane_mele(), tmp_path / "km.h5", "hamdb")
    result = CliRunner().invoke(cli, ["topology", str(path), "--dim", "2", "--pos-tol", "0.005"])
    assert result.exit_code == 0, result.output
    assert "ν = 1" in result.output and "2D" in result.output
    # --s-min reaches the settings (no overlap here: nothing to filter)
    result = CliRunner().invoke(cli, ["topology", str(path), "--s-min", "1e-3", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["settings"]["s_min"] == 1e-3 and payload["n_dropped"] == 0


def test_topology_bad_input_is_one_line(tmp_path: Path) -> None:
    path = write_hamiltonian(kane_mele(), tmp_path / "km.h5", "hamdb")
    result = CliRunner().invoke(cli, ["topology", str(path), "--occupied", "3"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hamdb: error:") and "odd occupied" in lines[0]


def test_topology_real_file_autodetected(topology_testdata: Path) -> None:
    path = topology_testdata / "sisl-files/Bi_hexagonal/Bi_hexagonal.HSX"
    result = CliRunner().invoke(cli, ["topology", str(path), "--occupied", "30", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["z2"] == [1]


def test_plot_wilson_from_file(tmp_path: Path) -> None:
    path = write_hamiltonian(kane_mele(), tmp_path / "km.h5", "hamdb")
    out = tmp_path / "wcc.png"
    result = CliRunner().invoke(cli, ["plot", "wilson", str(path), str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1000 and json.loads(result.output)["z2"] == [1]


def test_screen_command_on_an_empty_project(project: Any) -> None:
    result = CliRunner().invoke(cli, ["--project", str(project.root), "screen", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["pending"] == 0


def test_plot_wilson_and_screen_from_the_database(project: Any, tmp_path: Path) -> None:
    from sqlalchemy.orm import Session

    from hamdb.db.engine import make_engine
    from hamdb.io.catalog import save_hamiltonian
    from hamdb.store.store import HamiltonianStore

    with Session(make_engine(project.database_url)) as session:
        row = save_hamiltonian(
            session, HamiltonianStore(project.store_path), fu_kane_mele(delta_t1=0.4),
            kind="dft", method="model:fkm",
        )  # fmt: skip
        session.commit()
        hid = row.id
    out = tmp_path / "fkm.png"
    root = ["--project", str(project.root)]
    result = CliRunner().invoke(cli, [*root, "plot", "wilson", str(hid), str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["z2"] == [1, 1, 1, 1] and out.stat().st_size > 1000
    result = CliRunner().invoke(cli, [*root, "screen", "--kind", "dft", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "pending": 1, "screened": 1, "metal": 0, "failed": 0, "skipped": 0
    }  # fmt: skip


def test_predict_screens_with_the_prediction_filter_by_default(
    project: Any, monkeypatch: Any
) -> None:
    """`hamdb predict --pending --screen` hands the chained screen PREDICTED_S_MIN unless told."""
    import hamdb.cli.predict_pending as pending
    from hamdb.physics.orthogonal import PREDICTED_S_MIN

    seen: list[float] = []
    monkeypatch.setattr(pending, "run_pending", lambda *args: seen.append(args[-1]))
    for extra in ([], ["--s-min", "0"]):
        args = ["--project", str(project.root), "predict", "--pending", "--screen", *extra]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
    assert seen == [PREDICTED_S_MIN, 0.0]
