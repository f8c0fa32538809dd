"""Small synthetic Hamiltonians and the published files the io tests read."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian
from hamdb.physics.synthetic import random_hamiltonian


@pytest.fixture(scope="session")
def cell() -> Structure:
    """Two atoms off the origin in a skewed cell."""
    return Structure(
        Lattice.from_parameters(4.0, 4.2, 4.4, 85, 95, 100),
        ["Ga", "As"],
        [[0.1, 0.05, 0.2], [0.35, 0.3, 0.45]],
    )


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


def two_centre_sign_error(ham: Hamiltonian) -> float:
    """Largest relative misfit of the overlaps S(s on i, p or d shell on j) to the direction
    cosines of the bond: positive-coefficient real harmonics in DESIGN.md's order make
    S(s, p) ∝ (y, z, x) and S(s, d) ∝ (√3xy, √3yz, (3z²−1)/2, √3xz, √3(x²−y²)/2) exactly
    (two-centre integrals), so a wrong order or sign of any m shows here."""
    lattice = ham.structure.lattice.matrix
    cart = ham.structure.cart_coords
    worst = 0.0
    for e in range(ham.n_edges):
        i, j, *r = (int(x) for x in ham.edges[e])
        d = cart[j] + np.array(r) @ lattice - cart[i]
        if np.linalg.norm(d) < 1e-6:
            continue
        x, y, z = d / np.linalg.norm(d)
        s3 = np.sqrt(3.0)
        pattern = {
            1: np.array([y, z, x]),
            2: np.array(
                [s3 * x * y, s3 * y * z, (3 * z * z - 1) / 2, s3 * x * z, s3 / 2 * (x * x - y * y)]
            ),
        }
        block = ham.s_block(e)
        ls_i = ham.basis.orbital_ls(ham.species[i])
        shells_j = ham.basis.shell_ls(ham.species[j])
        starts = np.concatenate([[0], np.cumsum([2 * ell + 1 for ell in shells_j])])
        for a in np.flatnonzero(ls_i == 0):
            for k, ell in enumerate(shells_j):
                if ell not in pattern:
                    continue
                v = block[a, starts[k] : starts[k + 1]]
                if np.linalg.norm(v) < 1e-4:
                    continue
                p = pattern[ell]
                fit = (v @ p) / (p @ p)
                worst = max(worst, float(np.linalg.norm(v - fit * p) / np.linalg.norm(v)))
    return worst


@pytest.fixture(scope="session")
def sign_error() -> Callable[[Hamiltonian], float]:
    return two_centre_sign_error


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
