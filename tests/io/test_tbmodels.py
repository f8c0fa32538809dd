"""TBmodels hdf5: InAs of PROVENANCE.md against TBmodels' own H(k), round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hamdb.errors import BasisError, InputError
from hamdb.io import tbmodels as tb_io
from hamdb.physics.bloch import bloch_matrices
from hamdb.physics.spin import time_reversal_error


@pytest.fixture(scope="module")
def inas_file(topology_testdata: Path) -> Path:
    return topology_testdata / "TBmodels" / "InAs_nosym.hdf5"


@pytest.fixture(scope="module")
def inas(inas_file: Path):
    return tb_io.read(inas_file, species=["In", "As"])


def test_inas_sizes(inas) -> None:
    assert inas.spin == "soc" and inas.n_states == 14 and inas.n_electrons == 6
    assert list(inas.orbital_counts) == [4, 3]


def test_bands_agree_with_tbmodels(inas, inas_file: Path) -> None:
    tbmodels = pytest.importorskip("tbmodels")
    model = tbmodels.Model.from_hdf5_file(str(inas_file))
    kpts = np.random.default_rng(7).random((12, 3))
    h_k, _ = bloch_matrices(inas, kpts)
    reference = np.linalg.eigvalsh(model.hamilton(kpts))
    assert np.abs(np.linalg.eigvalsh(h_k) - reference).max() < 1e-10


def test_inas_gap(inas, mesh_gap) -> None:
    assert mesh_gap(inas, 6, (6, 6, 6)) == pytest.approx(0.42, abs=0.03)  # PROVENANCE: ≈0.42 eV


def test_spin_is_blocked(inas_file: Path, inas) -> None:
    wrong = tb_io.read(inas_file, species=["In", "As"], spin="soc", spin_order="interleaved")
    assert time_reversal_error(inas) < 1e-3 < time_reversal_error(wrong)


def test_tbmodels_reads_what_we_write(inas, tmp_path: Path) -> None:
    tbmodels = pytest.importorskip("tbmodels")
    path = tb_io.write(inas, tmp_path / "inas.hdf5")
    model = tbmodels.Model.from_hdf5_file(str(path))
    kpts = np.random.default_rng(8).random((6, 3))
    h_k, _ = bloch_matrices(inas, kpts)
    assert np.abs(np.linalg.eigvalsh(model.hamilton(kpts)) - np.linalg.eigvalsh(h_k)).max() < 1e-10
    assert model.occ == 6


@pytest.mark.parametrize("spin", ["none", "soc"])
def test_round_trip(synthetic, same, tmp_path: Path, spin) -> None:
    ham = synthetic(spin)
    back = tb_io.read(
        tb_io.write(ham, tmp_path / "m.hdf5"), species=["Ga", "As"],
        orbitals={"Ga": "s;s;p;d", "As": "s;p"}, spin=spin,
    )  # fmt: skip
    same(ham, back, atol=1e-12)


def test_species_are_required(inas_file: Path) -> None:
    with pytest.raises(InputError, match="carry no elements"):
        tb_io.read(inas_file)


def test_unknown_element(inas_file: Path) -> None:
    with pytest.raises(BasisError, match=rf"{inas_file}.*unknown element 'Xx'"):
        tb_io.read(inas_file, species=["In", "Xx"])


def test_orbital_count_not_matching(inas_file: Path) -> None:
    with pytest.raises(BasisError, match="has 4 orbitals, 1 named"):
        tb_io.read(inas_file, species=["In", "As"], orbitals={"In": "s"})


def test_overlap_is_refused(synthetic, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="orthogonal"):
        tb_io.write(synthetic("none", True), tmp_path / "m.hdf5")
