"""Rotations of real atomic orbitals and spinors, and the symmetry test of a Hamiltonian.

Real spherical harmonics (DESIGN.md §2, no Condon–Shortley phase, every listed coefficient
positive), as polynomials on the unit sphere, m = −l..l:

    l=0  s
    l=1  p_y, p_z, p_x                     (∝ y, z, x)
    l=2  d_xy, d_yz, d_z², d_xz, d_x²−y²   (∝ 2√3·xy, 2√3·yz, 3z²−1, 2√3·xz, √3(x²−y²))
    l=3  y(3x²−y²), xyz, y(5z²−1), z(5z²−3), x(5z²−1), z(x²−y²), x(x²−3y²)   (normalised)

Wigner-D of an orthogonal 3×3 matrix W (proper or improper, Cartesian) is defined by how an
orbital transforms when the function is rotated, (O_W Y_m)(r) = Y_m(W⁻¹ r) = Σ_m' Y_m'(r) D_m'm(W),
so that D(W1 W2) = D(W1) D(W2). It is computed, not typed: the harmonics are evaluated at a
fixed set of sample directions r and D solves Y(W⁻¹ r) = Y(r) D by least squares (exact to
rounding because the 2l+1 functions are linearly independent on the samples). D is real
orthogonal and D(−1) = (−1)^l.

Symmetry of a Hamiltonian. For a space-group operation g: r ↦ W r + t that sends atom i to
atom g(i) in the cell translated by L_i (W τ_i + t = τ_g(i) + L_i), invariance O_g H O_g⁻¹ = H
in the convention H_ij(R) = <φ_i(r − τ_i)|H|φ_j(r − τ_j − R)> gives

    H_{g(i) g(j)}(R') = D_i(g) H_ij(R) D_j(g)†,   R' = W_f R + L_j − L_i,

with W_f the operation in fractional coordinates and D_i the block-diagonal Wigner-D of the
shells of atom i; for SOC, D ⊗ U with U the spin-1/2 rotation of the proper part det(W)·W
(inversion does not act on spin). The same holds for S (no spin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg

from hamdb.errors import HamiltonianError
from hamdb.physics.checks import match_edges

if TYPE_CHECKING:
    from collections.abc import Callable

    from pymatgen.core import Structure

    from hamdb.physics.hamiltonian import Hamiltonian

MAX_L = 3
_SIGMA = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=complex)


def real_harmonics(l: int, r: np.ndarray) -> np.ndarray:  # noqa: E741
    """Orthonormal real spherical harmonics of degree l at unit vectors r (n, 3): (n, 2l+1),
    columns m = −l..l in the DESIGN.md order and signs."""
    x, y, z = np.asarray(r, dtype=float).T
    pi = math.pi
    if l == 0:
        cols = [np.full_like(x, 0.5 / math.sqrt(pi))]
    elif l == 1:
        c = math.sqrt(3 / (4 * pi))
        cols = [c * y, c * z, c * x]
    elif l == 2:
        c = 0.5 * math.sqrt(15 / pi)
        cols = [
            c * x * y,
            c * y * z,
            0.25 * math.sqrt(5 / pi) * (3 * z**2 - 1),
            c * x * z,
            0.5 * c * (x**2 - y**2),
        ]
    elif l == 3:
        cols = [
            0.25 * math.sqrt(35 / (2 * pi)) * y * (3 * x**2 - y**2),
            0.5 * math.sqrt(105 / pi) * x * y * z,
            0.25 * math.sqrt(21 / (2 * pi)) * y * (5 * z**2 - 1),
            0.25 * math.sqrt(7 / pi) * z * (5 * z**2 - 3),
            0.25 * math.sqrt(21 / (2 * pi)) * x * (5 * z**2 - 1),
            0.25 * math.sqrt(105 / pi) * z * (x**2 - y**2),
            0.25 * math.sqrt(35 / (2 * pi)) * x * (x**2 - 3 * y**2),
        ]
    else:
        raise ValueError(f"real harmonics are defined here for l = 0..{MAX_L}, not {l}")
    return np.stack(cols, axis=-1)


@cache
def _samples() -> np.ndarray:
    """Fixed, well-spread unit vectors (a Fibonacci sphere) on which D is fitted."""
    n = 64
    k = np.arange(n) + 0.5
    theta = np.arccos(1 - 2 * k / n)
    phi = math.pi * (1 + 5**0.5) * k
    return np.stack(
        [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=1
    )


def wigner_d(l: int, w: np.ndarray) -> np.ndarray:  # noqa: E741
    """Real Wigner-D (2l+1, 2l+1) of the orthogonal Cartesian matrix w in the DESIGN.md basis."""
    w = np.asarray(w, dtype=float)
    if w.shape != (3, 3) or not np.allclose(w @ w.T, np.eye(3), atol=1e-6):
        raise ValueError(f"wigner_d needs an orthogonal 3x3 matrix, got {w!r}")
    r = _samples()
    y = real_harmonics(l, r)
    y_moved = real_harmonics(l, r @ w)  # rows are (W⁻¹ r)ᵀ = rᵀ W for orthogonal W
    d, *_ = np.linalg.lstsq(y, y_moved, rcond=None)
    return d


def orbital_rotation(shell_ls: tuple[int, ...], w: np.ndarray) -> np.ndarray:
    """Block-diagonal Wigner-D of one atom's shells (its orbitals in basis order)."""
    if not shell_ls:
        return np.zeros((0, 0))
    return scipy.linalg.block_diag(*(wigner_d(ell, w) for ell in shell_ls))


def spin_rotation(w: np.ndarray) -> np.ndarray:
    """SU(2) matrix U = exp(−iθ n·σ/2) of the proper part det(w)·w (rotation by θ about n).

    Defined up to the overall sign of the double cover, which cancels in U H U†. Inversion
    acts trivially on spin, so an improper w gives the U of −w.
    """
    w = np.asarray(w, dtype=float)
    proper = w * np.sign(np.linalg.det(w))
    # the axis-angle vector from the matrix logarithm of a proper rotation
    rotvec = _rotation_vector(proper)
    generator = sum(rotvec[a] * _SIGMA[a] for a in range(3)) / 2
    return scipy.linalg.expm(-1j * generator)


def _rotation_vector(w: np.ndarray) -> np.ndarray:
    """θ·n of a proper rotation matrix (robust also at θ = π)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(w).as_rotvec()


def angular_momentum(l: int) -> np.ndarray:  # noqa: E741
    """(3, 2l+1, 2l+1) matrices L_x, L_y, L_z (units of ħ) in the real basis of degree l.

    Obtained from the Wigner-D of small rotations, D(exp(θ·ε_α)) = exp(−iθ L_α): purely
    imaginary and antisymmetric in a real basis. Used for on-site λ L·S spin-orbit terms.
    """
    from scipy.spatial.transform import Rotation

    # a finite angle keeps logm accurate; θ·l < π keeps it on the principal branch
    theta = 0.5
    out = np.empty((3, 2 * l + 1, 2 * l + 1), dtype=complex)
    for a in range(3):
        vec = np.zeros(3)
        vec[a] = theta
        d = wigner_d(l, Rotation.from_rotvec(vec).as_matrix())
        out[a] = 1j * scipy.linalg.logm(d) / theta
    out = (out + np.conj(np.swapaxes(out, 1, 2))) / 2  # Hermitian exactly
    return 1j * out.imag  # purely imaginary in a real basis; the real part is rounding


# -- the symmetry test -------------------------------------------------------------------------
@dataclass(frozen=True)
class SymmetryReport:
    """Result of `symmetry_report`: the worst deviation and where it happens.

    error_ev: max over operations g and edges of |H_{g(i)g(j)}(R') − D H_ij(R) D†| in eV
        (for S: dimensionless, reported separately as overlap_error).
    operation: the worst operation as "W_frac | t_frac" text; edge: its edge (i, j, R1, R2, R3)
    in the untransformed Hamiltonian; target: the edge it maps to; target_missing: True when
    that edge is absent from the Hamiltonian (its block counts as zero).
    n_operations: how many space-group operations were checked.
    """

    error_ev: float
    overlap_error: float
    operation: str
    edge: tuple[int, ...]
    target: tuple[int, ...]
    target_missing: bool
    n_operations: int

    def __float__(self) -> float:
        return self.error_ev

    def describe(self) -> str:
        missing = " (missing there)" if self.target_missing else ""
        return (
            f"largest deviation {self.error_ev:.3g} eV (S: {self.overlap_error:.3g}) under "
            f"{self.operation} on edge {self.edge} -> {self.target}{missing}; "
            f"{self.n_operations} operations checked"
        )


@dataclass(frozen=True)
class SpaceGroupOperation:
    """g: r ↦ W r + t. w_frac (integer 3×3) and t_frac act on fractional coordinates,
    w_cart on Cartesian ones; site_map[i] = g(i); shifts[i] = L_i (integer lattice vector)."""

    w_frac: np.ndarray
    t_frac: np.ndarray
    w_cart: np.ndarray
    site_map: np.ndarray
    shifts: np.ndarray

    def label(self) -> str:
        rows = ";".join(" ".join(f"{int(v):d}" for v in row) for row in self.w_frac)
        t = " ".join(f"{v:.4g}" for v in self.t_frac)
        return f"W=[{rows}] t=[{t}]"


def space_group_operations(
    structure: Structure, symprec: float = 0.01
) -> list[SpaceGroupOperation]:
    """The space-group operations of `structure` (spglib via pymatgen), with the site map.

    symprec: spglib tolerance in Å. Raises HamiltonianError if an operation does not map the
    sites onto sites within symprec (it cannot happen with spglib's own tolerance).
    """
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    analyzer = SpacegroupAnalyzer(structure, symprec=symprec)
    data = analyzer.get_symmetry_dataset()
    a = np.asarray(structure.lattice.matrix)  # rows: lattice vectors
    frac = np.asarray(structure.frac_coords)
    numbers = np.array([site.specie.Z for site in structure])
    ops = []
    for w_frac, t_frac in zip(data.rotations, data.translations, strict=True):
        moved = frac @ np.asarray(w_frac).T + t_frac  # (n, 3) fractional images
        diff = moved[:, None, :] - frac[None, :, :]
        wrapped = diff - np.rint(diff)
        dist = np.linalg.norm(wrapped @ a, axis=-1)
        dist[numbers[:, None] != numbers[None, :]] = np.inf
        site_map = np.argmin(dist, axis=1)
        if (dist[np.arange(len(frac)), site_map] > 2 * symprec + 1e-9).any():
            raise HamiltonianError(f"symmetry operation {w_frac.tolist()} does not map sites")
        shifts = np.rint(moved - frac[site_map]).astype(np.int64)
        w_cart = a.T @ np.asarray(w_frac, float) @ np.linalg.inv(a.T)
        ops.append(
            SpaceGroupOperation(
                np.asarray(w_frac, int), np.asarray(t_frac), w_cart, site_map, shifts
            )
        )
    return ops


def _site_rotations(ham: Hamiltonian, w_cart: np.ndarray, spin: bool) -> dict[str, np.ndarray]:
    """Wigner-D of every species for one operation (⊗ spin-1/2 rotation when spin)."""
    out = {}
    u = spin_rotation(w_cart) if spin else None
    for el in set(ham.species):
        d = orbital_rotation(ham.basis.shell_ls(el), w_cart)
        out[el] = np.kron(d, u) if u is not None else d
    return out


def symmetry_report(
    ham: Hamiltonian, symprec: float = 0.01, operations: list[SpaceGroupOperation] | None = None
) -> SymmetryReport:
    """Check H_{g(i)g(j)}(R') = D H_ij(R) D† for every space-group operation (module docstring).

    Vectorised per (operation, species pair): the blocks of all edges between two species are
    transformed in one batched product and compared with the blocks at the mapped edges.
    """
    ops = operations if operations is not None else space_group_operations(ham.structure, symprec)
    species = np.array(ham.species)
    edges = ham.edges.astype(np.int64)
    pairs: dict[tuple[str, str], np.ndarray] = {}
    for e_i, e_j in {(species[i], species[j]) for i, j in edges[:, :2]}:
        mask = (species[edges[:, 0]] == e_i) & (species[edges[:, 1]] == e_j)
        pairs[(e_i, e_j)] = np.flatnonzero(mask)
    worst = (-1.0, 0.0, "", (), (), False)
    worst_s = 0.0
    for op in ops:
        rot = _site_rotations(ham, op.w_cart, ham.n_spin == 2)
        rot_s = _site_rotations(ham, op.w_cart, False) if ham.s is not None else None
        mapped = np.empty_like(edges)
        mapped[:, 0] = op.site_map[edges[:, 0]]
        mapped[:, 1] = op.site_map[edges[:, 1]]
        mapped[:, 2:] = edges[:, 2:] @ op.w_frac.T + op.shifts[edges[:, 1]] - op.shifts[edges[:, 0]]
        target = match_edges(mapped, edges)
        for (e_i, e_j), idx in pairs.items():
            dev, arg = _pair_deviation(
                ham.h, ham.offsets, ham.block_shape, idx, target, rot[e_i], rot[e_j]
            )
            if dev > worst[0]:
                e = int(idx[arg])
                worst = (
                    dev, 0.0, op.label(), tuple(int(v) for v in edges[e]),
                    tuple(int(v) for v in mapped[e]), bool(target[e] < 0),
                )  # fmt: skip
            if rot_s is not None and ham.s is not None and ham.s_offsets is not None:
                dev_s, _ = _pair_deviation(
                    ham.s, ham.s_offsets, lambda e: ham.block_shape(e, False),
                    idx, target, rot_s[e_i], rot_s[e_j],
                )  # fmt: skip
                worst_s = max(worst_s, dev_s)
    error, _, label, edge, tgt, missing = worst
    return SymmetryReport(max(error, 0.0), worst_s, label, edge, tgt, missing, len(ops))


def _pair_deviation(
    flat: np.ndarray, offsets: np.ndarray, shape_of: Callable[[int], tuple[int, int]],
    idx: np.ndarray,
    target: np.ndarray, d_i: np.ndarray, d_j: np.ndarray,
) -> tuple[float, int]:  # fmt: skip
    """Largest |M(target) − D_i M D_j†| over the edges idx (same species pair, same shape)."""
    if idx.size == 0:
        return 0.0, 0
    rows, cols = shape_of(int(idx[0]))
    size = rows * cols
    take = offsets[idx][:, None] + np.arange(size)[None, :]
    blocks = flat[take].reshape(-1, rows, cols)
    rotated = d_i @ blocks @ d_j.conj().T
    tgt = target[idx]
    present = tgt >= 0
    there = np.zeros_like(rotated)
    if present.any():
        tk = offsets[tgt[present]][:, None] + np.arange(size)[None, :]
        there[present] = flat[tk].reshape(-1, rows, cols)
    dev = np.abs(there - rotated).reshape(len(idx), -1).max(axis=1)
    arg = int(np.argmax(dev))
    return float(dev[arg]), arg


def symmetry_error(ham: Hamiltonian, symprec: float = 0.01) -> float:
    """Largest deviation (eV) of H from its space group's symmetry; see `symmetry_report`."""
    return symmetry_report(ham, symprec).error_ev
