"""GPAW's LCAO basis sets as hamdb `BasisSet`s, and GPAW's orbital order mapped to DESIGN order.

GPAW's basis files (`<El>.dzp.basis.gz` from gpaw-data) list radial functions `bf_j`, each
with an angular momentum l; an atom's LCAO orbitals are, shell after shell, R_j(r) Y_lm for the
real spherical harmonics of `gpaw.sphere.spherical_harmonics.YL`, m = −l..l in GPAW's order.
DESIGN.md §2 asks for the real harmonics (p_y, p_z, p_x), (d_xy, d_yz, d_z², d_xz, d_x²−y²),
m = −3..3 for f, each with a positive leading coefficient. `gpaw_to_design` derives the
permutation and signs by evaluating GPAW's own polynomials (not by assuming them): for GPAW
26.7 it is the identity with all signs +1, and the tests prove it again by rotating real
Hamiltonians (`hamdb.physics.rotations.symmetry_error`).

Valence electrons per element come from GPAW's PAW setups (`SetupData(...).Nv`): the electrons
the setup treats explicitly, which the basis holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache

import numpy as np

from hamdb.errors import DFTError
from hamdb.physics.basis import BasisSet

BOHR_ANGSTROM = 0.52917721067

# DESIGN.md §2 real harmonics as {(px, py, pz): coefficient sign} of their defining monomials
# (up to a positive normalisation; r² terms expanded).
_DESIGN_HARMONICS: dict[int, list[dict[tuple[int, int, int], float]]] = {
    0: [{(0, 0, 0): 1.0}],
    1: [{(0, 1, 0): 1.0}, {(0, 0, 1): 1.0}, {(1, 0, 0): 1.0}],
    2: [
        {(1, 1, 0): 1.0},
        {(0, 1, 1): 1.0},
        {(0, 0, 2): 2.0, (2, 0, 0): -1.0, (0, 2, 0): -1.0},
        {(1, 0, 1): 1.0},
        {(2, 0, 0): 1.0, (0, 2, 0): -1.0},
    ],
    3: [
        {(2, 1, 0): 3.0, (0, 3, 0): -1.0},
        {(1, 1, 1): 1.0},
        {(0, 1, 2): 4.0, (2, 1, 0): -1.0, (0, 3, 0): -1.0},
        {(0, 0, 3): 2.0, (2, 0, 1): -3.0, (0, 2, 1): -3.0},
        {(1, 0, 2): 4.0, (3, 0, 0): -1.0, (1, 2, 0): -1.0},
        {(2, 0, 1): 1.0, (0, 2, 1): -1.0},
        {(3, 0, 0): 1.0, (1, 2, 0): -3.0},
    ],
}


def _evaluate(poly: Iterable[tuple[float, tuple[int, int, int]]], xyz: np.ndarray) -> np.ndarray:
    return sum(c * np.prod(xyz ** np.array(n), axis=1) for c, n in poly)


@cache
def gpaw_to_design(ell: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(perm, signs) with design[m] = signs[m] · gpaw[perm[m]] for the 2l+1 orbitals of one shell.

    Found by projecting each DESIGN harmonic on GPAW's `YL` polynomials at random points:
    exactly one GPAW function must be proportional to it.
    """
    from gpaw.sphere.spherical_harmonics import YL

    if ell not in _DESIGN_HARMONICS:
        raise DFTError(f"no DESIGN order defined for l={ell} (GPAW basis shell with l > 3)")
    rng = np.random.default_rng(7)
    xyz = rng.normal(size=(64, 3))
    xyz /= np.linalg.norm(xyz, axis=1, keepdims=True)
    gpaw = [_evaluate(YL[ell * ell + m], xyz) for m in range(2 * ell + 1)]
    perm, signs = [], []
    for target in _DESIGN_HARMONICS[ell]:
        t = _evaluate(((c, n) for n, c in target.items()), xyz)
        t /= np.linalg.norm(t)
        overlaps = [float(g @ t / np.linalg.norm(g)) for g in gpaw]
        best = int(np.argmax(np.abs(overlaps)))
        if abs(abs(overlaps[best]) - 1.0) > 1e-8:
            raise DFTError(f"GPAW's l={ell} harmonics do not contain DESIGN harmonic {target}")
        perm.append(best)
        signs.append(float(np.sign(overlaps[best])))
    return tuple(perm), tuple(signs)


def orbital_map(shell_ls: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(index, sign) arrays for one atom: design orbital o = sign[o] · GPAW orbital index[o]."""
    index, sign = [], []
    start = 0
    for ell in shell_ls:
        perm, signs = gpaw_to_design(ell)
        index.extend(start + p for p in perm)
        sign.extend(signs)
        start += 2 * ell + 1
    return np.array(index, dtype=np.int64), np.array(sign)


def cell_orbital_map(species: Sequence[str], basis: BasisSet) -> tuple[np.ndarray, np.ndarray]:
    """`orbital_map` for a whole cell: design = sign · gpaw[index] over all orbitals."""
    index, sign = [], []
    start = 0
    for el in species:
        idx, sg = orbital_map(basis.shell_ls(el))
        index.append(idx + start)
        sign.append(sg)
        start += basis.n_orbitals(el)
    return np.concatenate(index), np.concatenate(sign)


@cache
def _element_data(element: str, basis_name: str, xc: str) -> tuple[tuple[int, ...], float, float]:
    """(shell l's, valence electrons, largest orbital cut-off in Å) from GPAW's data files."""
    from gpaw.basis_data import Basis
    from gpaw.setup_data import SetupData

    try:
        basis = Basis.find(element, basis_name)
        setup = SetupData(element, xc)
    except (RuntimeError, OSError, KeyError, ValueError) as exc:
        raise DFTError(
            f"GPAW has no {xc} setup or {basis_name} basis for element {element}: "
            f"{str(exc).strip().splitlines()[0]}"
        ) from None
    ls = tuple(int(bf.l) for bf in basis.bf_j)
    if not ls:
        raise DFTError(f"GPAW's {basis_name} basis for element {element} has no functions")
    rcut = max(float(bf.rc) for bf in basis.bf_j) * BOHR_ANGSTROM
    return ls, float(setup.Nv), rcut


def gpaw_basis(elements: Iterable[str], basis_name: str = "dzp", xc: str = "PBE") -> BasisSet:
    """The hamdb BasisSet "gpaw-<basis_name>" for `elements` (raises DFTError if one is missing)."""
    shells, valence = {}, {}
    for el in sorted(set(elements)):
        ls, nv, _ = _element_data(el, basis_name, xc)
        shells[el], valence[el] = ls, nv
    return BasisSet(f"gpaw-{basis_name}", shells, valence)


def orbital_cutoff_angstrom(element: str, basis_name: str = "dzp", xc: str = "PBE") -> float:
    """Largest cut-off radius of the element's basis functions (Å)."""
    return _element_data(element, basis_name, xc)[2]
