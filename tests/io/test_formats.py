"""The format registry: names, guessing, and every writer read back by its reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from hamdb.errors import InputError
from hamdb.io.formats import FORMATS, guess_format, read_hamiltonian, write_hamiltonian

READ_OPTIONS = {
    "tbmodels": {"species": ["Ga", "As"], "orbitals": {"Ga": "s;s;p;d", "As": "s;p"}},
    "openmx": {"pao": {"Ga": "s2p1d1", "As": "s1p1"}},
}
NAMES = {"hamdb": "h.h5", "openmx": "g.npz", "deeph": "folder", "wannier90": "m_hr.dat",
         "siesta": "s.HSX", "tbmodels": "t.hdf5"}  # fmt: skip


def test_format_names() -> None:
    assert set(FORMATS) == {"hamdb", "openmx", "deeph", "wannier90", "siesta", "tbmodels"}


@pytest.mark.parametrize("fmt", sorted(NAMES))
def test_every_writer_reads_back(synthetic, same, tmp_path: Path, fmt) -> None:
    ham = synthetic("none")
    if fmt == "openmx":
        from hamdb.physics.basis import BasisSet
        from hamdb.physics.synthetic import random_hamiltonian

        basis = BasisSet("openmx:t", {"Ga": (0, 0, 1, 2), "As": (0, 1)})
        ham = random_hamiltonian(ham.structure, basis, "none", cutoff_angstrom=4.5, seed=2)
    path = write_hamiltonian(ham, tmp_path / NAMES[fmt], fmt)
    assert guess_format(path) == fmt
    same(ham, read_hamiltonian(path, **READ_OPTIONS.get(fmt, {})), atol=1e-12)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("wannier90_hr.dat", "wannier90"), ("x.HSX", "siesta"), ("y.TSHS", "siesta"),
     ("graph_data.npz", "openmx"), ("HS.tar.gz", "openmx"), ("H.dat", "openmx")],
)  # fmt: skip
def test_guess_from_names(name: str, fmt: str) -> None:
    assert guess_format(Path("/nowhere") / name) == fmt


def test_unguessable_name() -> None:
    with pytest.raises(InputError, match=r"cannot tell the format.*--format"):
        guess_format(Path("/nowhere/model.txt"))


def test_unknown_format(synthetic, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown format 'vasp'"):
        write_hamiltonian(synthetic(), tmp_path / "x", "vasp")


def test_foreign_h5_needs_a_format(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = 1
    with pytest.raises(InputError, match="neither hamdb nor TBmodels"):
        read_hamiltonian(path)


def test_unknown_option_is_a_user_error(topology_testdata: Path) -> None:
    hsx = topology_testdata / "sisl-files" / "Bi_hexagonal" / "Bi_hexagonal.HSX"
    with pytest.raises(
        InputError, match=r"siesta reader got an unexpected keyword argument 'species'"
    ):
        read_hamiltonian(hsx, species=["Bi"])
