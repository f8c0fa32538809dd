"""Change of basis between DESIGN.md's real orbitals and e3nn's irreps, and the block maps.

DESIGN.md §2 orders the real orbitals of a shell as m = −l..l: l=1 (p_y, p_z, p_x),
l=2 (d_xy, d_yz, d_z², d_xz, d_x²−y²), l=3 likewise, every function with a positive leading
coefficient. e3nn's real spherical harmonics span the same spaces in another order and sign.
`change_of_basis(l)` is the orthogonal C_l with

    Y_design(r̂) = C_l · Y_e3nn(r̂),    hence    D_design(R) = C_l D_e3nn(R) C_lᵀ,

computed once by least squares on points of the sphere (data, not hand-typed) and tested.

A block between shells l1 and l2 in e3nn's basis is a tensor of l1 ⊗ l2 = ⊕_L L (parity
(−1)^{l1+l2} for every L). `block_tensor(l1, l2)` is the orthogonal map from the concatenated
irreps ⊕_L L to the (2l1+1)(2l2+1) block (Clebsch–Gordan / Wigner 3j); `axial_block_tensor`
the map from (l1 ⊗ l2) ⊗ 1e to the three blocks (K_x, K_y, K_z) of the SOC correction.
"""

# ruff: noqa: E741  (l is the angular momentum quantum number, as in the physics)

from __future__ import annotations

from functools import cache

import numpy as np

MAX_L = 3  # f shells; blocks then need irreps up to L = 6


def design_harmonics(l: int, xyz: np.ndarray) -> np.ndarray:
    """DESIGN.md's real solid harmonics of degree l at points xyz (n, 3), not normalised.

    Each column is the polynomial of one orbital in the DESIGN order m = −l..l with positive
    coefficients (the standard real harmonics, e.g. d_z² ∝ 3z² − r²).
    """
    x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    r2 = x * x + y * y + z * z
    if l == 0:
        cols = [np.ones_like(x)]
    elif l == 1:
        cols = [y, z, x]
    elif l == 2:
        cols = [x * y, y * z, 3 * z * z - r2, x * z, x * x - y * y]
    elif l == 3:
        cols = [
            y * (3 * x * x - y * y),
            x * y * z,
            y * (5 * z * z - r2),
            z * (5 * z * z - 3 * r2),
            x * (5 * z * z - r2),
            z * (x * x - y * y),
            x * (x * x - 3 * y * y),
        ]
    else:
        raise ValueError(f"orbitals with l={l} are not supported (max {MAX_L})")
    return np.stack(cols, axis=1)


def _sphere_points(n: int = 200) -> np.ndarray:
    """Deterministic, well spread unit vectors (Fibonacci sphere)."""
    k = np.arange(n) + 0.5
    polar = np.arccos(1 - 2 * k / n)
    azimuth = np.pi * (1 + 5**0.5) * k
    return np.stack(
        [np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)], axis=1
    )


@cache
def change_of_basis(l: int) -> np.ndarray:
    """Orthogonal C_l (2l+1, 2l+1) with Y_design = C_l · Y_e3nn (both normalised per row)."""
    import torch
    from e3nn import o3

    pts = _sphere_points()
    e3 = o3.spherical_harmonics(l, torch.tensor(pts, dtype=torch.float64), normalize=True)
    e3 = e3.numpy()
    design = design_harmonics(l, pts)
    # design = e3 @ Aᵀ in the least-squares sense; rows of A are then rescaled to unit norm.
    a_t, *_ = np.linalg.lstsq(e3, design, rcond=None)
    c = a_t.T
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    c[np.abs(c) < 1e-12] = 0.0
    return c


@cache
def cartesian_from_l1() -> np.ndarray:
    """M (3, 3) with (v_x, v_y, v_z) = M · (l=1 components of v in e3nn's basis), orthogonal."""
    # DESIGN's l=1 order is (y, z, x): rows of the permutation pick x, y, z from it.
    design_to_xyz = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=float)
    return design_to_xyz @ change_of_basis(1)


def block_irreps(l1: int, l2: int) -> list[tuple[int, int]]:
    """The irreps (L, parity ±1) of l1 ⊗ l2 for orbitals of parity (−1)^l, in e3nn order."""
    p = (-1) ** (l1 + l2)
    return [(L, p) for L in range(abs(l1 - l2), l1 + l2 + 1)]


def axial_block_irreps(l1: int, l2: int) -> list[tuple[int, int]]:
    """The irreps (L', parity) of (l1 ⊗ l2) ⊗ 1e, one entry per (L, L') path, in path order."""
    p = (-1) ** (l1 + l2)
    return [(Lp, p) for L, _ in block_irreps(l1, l2) for Lp in range(abs(L - 1), L + 2)]


def _w3j(l1: int, l2: int, l3: int) -> np.ndarray:
    import torch
    from e3nn import o3

    return o3.wigner_3j(l1, l2, l3, dtype=torch.float64).numpy()


@cache
def block_tensor(l1: int, l2: int) -> np.ndarray:
    """T (2l1+1, 2l2+1, Σ_L 2L+1): block[m1, m2] = Σ_k T[m1, m2, k] x[k] in e3nn's basis.

    Columns are orthonormal (the 3j symbols scaled by √(2L+1)), so T is the orthogonal
    decomposition of the block into the irreps of l1 ⊗ l2.
    """
    parts = [_w3j(l1, l2, L) * np.sqrt(2 * L + 1) for L, _ in block_irreps(l1, l2)]
    return np.concatenate(parts, axis=2)


@cache
def axial_block_tensor(l1: int, l2: int) -> np.ndarray:
    """T (3, 2l1+1, 2l2+1, Σ 2L'+1): K_α[m1, m2] = Σ_k T[α, m1, m2, k] x[k], α = x, y, z.

    Built from the paths (l1 ⊗ l2 → L) ⊗ 1 → L' and rotated so that α is Cartesian, the
    index the Pauli matrices σ_α of ΔH = Σ_α iK_α ⊗ σ_α carry.
    """
    parts = []
    for L, _ in block_irreps(l1, l2):
        first = _w3j(l1, l2, L) * np.sqrt(2 * L + 1)  # (m1, m2, M)
        for Lp in range(abs(L - 1), L + 2):
            second = _w3j(L, 1, Lp) * np.sqrt(2 * Lp + 1)  # (M, μ, M')
            parts.append(np.einsum("abM,MuN->uabN", first, second))
    t = np.concatenate(parts, axis=3)  # μ in e3nn's l=1 basis
    return np.einsum("xu,uabN->xabN", cartesian_from_l1(), t)


def irreps_string(irreps: list[tuple[int, int]]) -> str:
    """e3nn irreps text ("1x0e+1x1o") for a list of (L, parity)."""
    return "+".join(f"1x{L}{'e' if p == 1 else 'o'}" for L, p in irreps)
