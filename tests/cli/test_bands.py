"""`hamdb bands FILE`: summary, JSON and the plot from a Hamiltonian file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from pymatgen.core import Lattice, Structure

from hamdb.cli.main import cli
from hamdb.io.formats import write_hamiltonian
from hamdb.physics.basis import BasisSet
from hamdb.physics.slater_koster import SlaterKosterModel, slater_koster_hamiltonian


def si_soc():
    a = 5.43
    structure = Structure(
        Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]]),
        ["Si", "Si"],
        [[0, 0, 0], [0.25, 0.25, 0.25]],
    )
    basis = BasisSet("sp3", {"Si": (0, 1)}, {"Si": 4})
    v = {"sss": -2.075, "sps": 2.48, "pps": 2.7163, "ppp": -0.7150}
    model = SlaterKosterModel(
        {"Si": [-4.2, 1.715]}, {("Si", "Si"): v}, a * 3**0.5 / 4, 2.5, soc_ev={"Si": {1: 0.3}}
    )
    return slater_koster_hamiltonian(structure, basis, model, "soc")


@pytest.fixture
def si_file(tmp_path):
    return write_hamiltonian(si_soc(), tmp_path / "si.h5", "hamdb")


def test_bands_json_and_plot(si_file, tmp_path):
    out = tmp_path / "bands.png"
    result = CliRunner().invoke(cli, ["bands", str(si_file), "--plot", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["n_occupied"] == 8 and data["spin"] == "soc"
    assert data["gap_ev"] > 2.5 and data["gap_ev"] <= data["direct_gap_ev"] + 1e-12
    assert "Γ" in data["labels"] and out.stat().st_size > 10_000


def test_bands_text(si_file):
    result = CliRunner().invoke(cli, ["bands", str(si_file)])
    assert result.exit_code == 0, result.output
    assert "band gap" in result.output and "occupied bands  8" in result.output


def test_missing_file_is_one_line_error(tmp_path):
    result = CliRunner().invoke(cli, ["bands", str(tmp_path / "nope_hr.dat")])
    assert result.exit_code == 1
    assert "no such file" in result.output


def test_bands_by_row_id(project, session, tmp_path):
    """SOURCE as a hamiltonians row ID: the Hamiltonian comes from the project's store."""
    from hamdb.io.catalog import save_hamiltonian
    from hamdb.store.store import HamiltonianStore

    with session.begin():
        row = save_hamiltonian(
            session, HamiltonianStore(project.store_path), si_soc(), kind="dft", method="sk"
        )
    args = ["--project", str(project.root), "bands", str(row.id), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["n_occupied"] == 8
    missing = CliRunner().invoke(cli, ["--project", str(project.root), "bands", "999999"])
    assert missing.exit_code == 1 and "999999" in missing.output
