"""Small synthetic Hamiltonians and the published files the io tests read."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Structure

from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian
from hamdb.physics.synthetic import random_hamiltonian


@pytest.fixture(scope="session")
def cell(gaas_like: Structure) -> Structure:
    """Two atoms off the origin in a skewed cell (tests/conftest.py's gaas_like)."""
    return gaas_like


@pytest.fixture(scope="session")
def spd_basis() -> BasisSet:
    """s, s, p, d on Ga and s, p on As: several shells of one l, every l up to 2."""
    return BasisSet("test-spd", {"Ga": (0, 0, 1, 2), "As": (0, 1)}, {"Ga": 3, "As": 5})


@pytest.fixture(scope="session")
def synthetic(cell: Structure, spd_basis: BasisSet) -> Callable[..., Hamiltonian]:
    """random Hermitian Hamiltonians on the test cell: synthetic(spin, overlap, seed)."""

    def make(spin: str = "none", overlap: bool = False, seed: int = 1) -> Hamiltonian:
        ham = random_hamiltonian(
            cell,
            spd_basis,
            spin,
            cutoff_angstrom=4.5,
            overlap=overlap,
            seed=seed,  # type: ignore[arg-type]
        )
        return ham.with_h(ham.h, fermi_level_ev=0.25)

    return make


@pytest.fixture(scope="session")
def mos2_dir(topology_testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1T'-MoS2 hr.dat unpacked beside its wt.in and POSCAR (a temporary copy)."""
    src = topology_testdata / "wannier_tools" / "MoS2-1Tp"
    out = tmp_path_factory.mktemp("mos2")
    with tarfile.open(src / "wannier90_hr.dat.tar.gz") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("wannier90_hr.dat"))
        (out / "wannier90_hr.dat").write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
    for name in ("wt.in", "POSCAR"):
        (out / name).write_bytes((src / name).read_bytes())
    return out


def gap_on_mesh(ham: Hamiltonian, n_occupied: int, mesh: tuple[int, int, int]) -> float:
    """Indirect gap (eV) between band n_occupied and n_occupied+1 on a Γ-centred mesh."""
    import scipy.linalg

    from hamdb.physics.bloch import bloch_matrices

    axes = [np.arange(n) / n for n in mesh]
    kpts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    h_k, s_k = bloch_matrices(ham, kpts)
    if s_k is None:
        energies = np.linalg.eigvalsh(h_k)
    else:
        energies = np.array(
            [scipy.linalg.eigh(h, s, eigvals_only=True) for h, s in zip(h_k, s_k, strict=True)]
        )
    return float(energies[:, n_occupied].min() - energies[:, n_occupied - 1].max())


@pytest.fixture(scope="session")
def sign_error() -> Callable[[Hamiltonian], float]:
    from hamdb.io.common import overlap_sign_error

    return overlap_sign_error


@pytest.fixture(scope="session")
def mesh_gap() -> Callable[[Hamiltonian, int, tuple[int, int, int]], float]:
    return gap_on_mesh


def assert_same(a: Hamiltonian, b: Hamiltonian, atol: float = 1e-12) -> None:
    """Same edges, blocks (to atol), overlap, structure, basis shells, spin, electrons."""
    assert a.spin == b.spin
    assert dict(a.basis.shells) == dict(b.basis.shells)
    assert a.structure == b.structure
    assert np.array_equal(a.edges, b.edges)
    assert np.abs(a.h - b.h).max(initial=0.0) <= atol
    assert (a.s is None) == (b.s is None)
    if a.s is not None and b.s is not None:
        assert np.abs(a.s - b.s).max(initial=0.0) <= atol


@pytest.fixture(scope="session")
def same() -> Callable[..., None]:
    return assert_same
