"""Random but physically valid Hamiltonians, for tests and benchmarks.

`random_hamiltonian` fills every pair of sites closer than a cutoff with random blocks, paired
so that H_ij(R) = H_ji(−R)† holds exactly; an optional overlap is diagonally dominant (so S(k)
is positive definite); a SOC Hamiltonian can be made time-reversal symmetric (H0 real, Hx, Hy,
Hz purely imaginary in the real-orbital basis, DESIGN.md §2). These have no symmetry beyond
hermiticity (and time reversal): symmetric models are built in hamdb.physics.slater_koster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import EdgeKey, Hamiltonian, SpinKind

if TYPE_CHECKING:
    from pymatgen.core import Structure

_SIGMA = np.array(
    [[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=complex
)


def neighbour_edges(structure: Structure, cutoff_angstrom: float) -> list[EdgeKey]:
    """All (i, j, R) with |τ_j + R − τ_i| <= cutoff (Å), both directions, on-site included."""
    centre, neighbour, images, _ = structure.get_neighbor_list(cutoff_angstrom)
    keys: set[EdgeKey] = {(i, i, (0, 0, 0)) for i in range(len(structure))}
    for i, j, r in zip(centre, neighbour, np.rint(images).astype(int), strict=True):
        keys.add((int(i), int(j), (int(r[0]), int(r[1]), int(r[2]))))
    return sorted(keys, key=lambda k: (k[0], k[1], *k[2]))


def _is_canonical(key: EdgeKey) -> bool:
    i, j, r = key
    return (i, j, r) <= (j, i, (-r[0], -r[1], -r[2]))


def random_hamiltonian(
    structure: Structure,
    basis: BasisSet,
    spin: SpinKind = "none",
    cutoff_angstrom: float = 3.0,
    overlap: bool = False,
    time_reversal: bool = True,
    seed: int = 0,
    scale_ev: float = 1.0,
) -> Hamiltonian:
    """A random Hermitian H(R) (and S(R)) on the neighbour edges of `structure`.

    spin "soc" with time_reversal=True gives H = H0⊗σ0 + i Σ_α Aα⊗σα with real H0 and real
    antisymmetric-paired Aα (Aα_ij(R) = −Aα_ji(−R)ᵀ), the form of a non-magnetic system;
    time_reversal=False gives arbitrary complex spinor blocks. n_electrons is taken from the
    basis' valence electrons when they are given.
    """
    rng = np.random.default_rng(seed)
    species = [site.specie.symbol for site in structure]
    counts = basis.orbital_counts(species)
    h_blocks: dict[EdgeKey, np.ndarray] = {}
    s_blocks: dict[EdgeKey, np.ndarray] = {}
    for key in neighbour_edges(structure, cutoff_angstrom):
        if not _is_canonical(key):
            continue
        i, j, r = key
        reverse = (j, i, (-r[0], -r[1], -r[2]))
        shape = (int(counts[i]), int(counts[j]))
        onsite = key == reverse
        block = _random_block(rng, shape, spin, time_reversal) * scale_ev
        if onsite:
            block = (block + block.conj().T) / 2
        h_blocks[key] = block
        h_blocks[reverse] = block.conj().T
        if overlap:
            # small off-site overlaps and a unit diagonal keep S(k) well conditioned
            sb = rng.normal(size=shape) * 0.02
            if onsite:
                sb = (sb + sb.T) / 2 + np.eye(shape[0])
            s_blocks[key] = sb
            s_blocks[reverse] = sb.T
    n_electrons = basis.n_valence(species) if basis.valence_electrons else 0.0
    return Hamiltonian.from_blocks(
        structure, basis, spin, h_blocks, s_blocks if overlap else None,
        n_electrons=n_electrons, origin={"code": "random", "seed": seed},
    )  # fmt: skip


def _random_block(
    rng: np.random.Generator, shape: tuple[int, int], spin: SpinKind, time_reversal: bool
) -> np.ndarray:
    if spin == "none":
        return rng.normal(size=shape)
    if not time_reversal:
        big = (2 * shape[0], 2 * shape[1])
        return rng.normal(size=big) + 1j * rng.normal(size=big)
    h0 = rng.normal(size=shape)
    a = rng.normal(size=(3, *shape)) * 0.3
    # block (i, j, R) = H0⊗σ0 + i Σ Aα⊗σα; its Hermitian partner (the conjugate transpose)
    # is H0ᵀ⊗σ0 − i Σ Aαᵀ⊗σα: real H0 and imaginary Hα, as time reversal requires
    out = np.kron(h0, _SIGMA[0])
    for alpha in range(3):
        out = out + 1j * np.kron(a[alpha], _SIGMA[alpha + 1])
    return out
