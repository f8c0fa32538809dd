"""Analytic spin-orbit tight-binding models with known Z2, as canonical Hamiltonians.

They are the ground truth of the topology engine's tests: each phase below is known from the
cited paper (and re-derived in the docstrings from the band inversions at the time-reversal-
invariant momenta, so a test can pick points on both sides of every transition).

* `kane_mele`: graphene with intrinsic SOC λ_SO, Rashba λ_R and staggered potential λ_v.
  C. L. Kane and E. J. Mele, PRL 95, 226801 (2005). QSH (ν = 1) for λ_v < 3√3 λ_SO at λ_R = 0;
  Rashba shrinks the QSH region (their Fig. 1; at λ_v = 0 it ends at λ_R = 2√3 λ_SO).
* `bhz`: the Bernevig–Hughes–Zhang model of a HgTe quantum well on a square lattice.
  B. A. Bernevig, T. L. Hughes, S.-C. Zhang, Science 314, 1757 (2006). ν = 1 for 0 < M/B < 8,
  M ≠ 4B (lattice form, see the function), 0 otherwise.
* `fu_kane_mele`: s orbitals on the diamond lattice with next-nearest-neighbour SOC and one
  dimerised bond. L. Fu, C. L. Kane, E. J. Mele, PRL 98, 106803 (2007): δt1 > 0 strong TI
  (1;111), δt1 < 0 weak TI (0;111) (for |δt1| < 2t; beyond, see the function).

Every model places its atoms at their real positions (none at the origin), so that tests of
Wilson loops exercise the atomic gauge (DESIGN.md §2). Spinor index = 2·orbital + s.
Energies in eV, lengths in Å.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import numpy as np

from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import EdgeKey, Hamiltonian

if TYPE_CHECKING:
    from pymatgen.core import Structure

SIGMA = (
    np.eye(2, dtype=complex),
    np.array([[0, 1], [1, 0]], dtype=complex),
    np.array([[0, -1j], [1j, 0]], dtype=complex),
    np.array([[1, 0], [0, -1]], dtype=complex),
)
#: Time reversal on one spinor: Θ = (iσ_y) K.
I_SIGMA_Y = 1j * SIGMA[2]


def _structure(lattice: np.ndarray, species: list[str], frac: list[list[float]]) -> Structure:
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice(lattice), species, frac, coords_are_cartesian=False)


def _bonds(structure: Structure, distance: float, reach: int, in_plane: bool) -> list[tuple]:
    """All (i, j, R, d_ij) with |d_ij| = distance, d_ij = τ_j + R − τ_i in Cartesian Å."""
    cart = structure.cart_coords
    lattice = structure.lattice.matrix
    ranges = [range(-reach, reach + 1)] * 2 + [
        range(0, 1) if in_plane else range(-reach, reach + 1)
    ]
    out = []
    for R in itertools.product(*ranges):
        shift = np.asarray(R, dtype=float) @ lattice
        for i, j in itertools.product(range(len(cart)), repeat=2):
            d = cart[j] + shift - cart[i]
            if abs(np.linalg.norm(d) - distance) < 1e-6:
                out.append((i, j, tuple(int(x) for x in R), d))
    return out


def _add(blocks: dict[EdgeKey, np.ndarray], key: EdgeKey, block: np.ndarray) -> None:
    blocks[key] = blocks.get(key, 0) + block


def _second_neighbour_paths(nn: list[tuple], nnn: list[tuple]) -> list[tuple]:
    """For each second-neighbour bond i→j the unique pair d1 (i→k), d2 (k→j) of nn vectors."""
    length = float(np.linalg.norm(nn[0][3]))
    paths = []
    for i, j, R, d in nnn:
        found = [
            (d1, d - d1) for a, _k, _R, d1 in nn
            if a == i and abs(np.linalg.norm(d - d1) - length) < 1e-6
        ]  # fmt: skip
        if len(found) != 1:
            raise AssertionError(f"second neighbour {i}->{j} {R} has {len(found)} paths")
        paths.append((i, j, R, *found[0]))
    return paths


def kane_mele(
    t: float = 1.0,
    lambda_so: float = 0.06,
    lambda_r: float = 0.05,
    lambda_v: float = 0.1,
    a: float = 2.46,
    vacuum: float = 15.0,
) -> Hamiltonian:
    """Kane–Mele model (PRL 95, 226801 (2005), eq. 1) on a graphene layer, energies in eV.

    H = t Σ_<ij> c†_i c_j + iλ_SO Σ_<<ij>> ν_ij c†_i s_z c_j + iλ_R Σ_<ij> c†_i (s × d̂_ij)_z c_j
        + λ_v Σ_i ξ_i c†_i c_i,
    ν_ij = (2/√3)(d̂1 × d̂2)_z = ±1 through the common neighbour, ξ = +1 (A), −1 (B).
    Defaults are the paper's Fig. 2 values in units of t: λ_SO = 0.06, λ_R = 0.05, λ_v = 0.1
    (QSH; λ_v = 0.4 is the trivial insulator of the same figure). Known phases: ν = 1 for
    λ_v < 3√3 λ_SO at λ_R = 0 (the gap closes at K and K' where λ_v = 3√3 λ_SO), ν = 0 above;
    λ_R reduces the QSH region (Fig. 1). One s orbital per C atom, two electrons per cell.
    The layer lies in the a1, a2 plane; the third lattice vector is vacuum.
    """
    lattice = np.array([[a, 0, 0], [a / 2, a * math.sqrt(3) / 2, 0], [0, 0, vacuum]])
    structure = _structure(lattice, ["C", "C"], [[1 / 3, 1 / 3, 0.5], [2 / 3, 2 / 3, 0.5]])
    basis = BasisSet("model:kane-mele", {"C": (0,)}, {"C": 1.0})
    d_nn = a / math.sqrt(3)
    nn = _bonds(structure, d_nn, 2, in_plane=True)
    nnn = _bonds(structure, a, 2, in_plane=True)
    s0, sx, sy, sz = SIGMA
    blocks: dict[EdgeKey, np.ndarray] = {}
    for i in range(2):
        _add(blocks, (i, i, (0, 0, 0)), lambda_v * (1 if i == 0 else -1) * s0)
    for i, j, R, d in nn:
        u = d / np.linalg.norm(d)
        rashba = 1j * lambda_r * (sx * u[1] - sy * u[0])  # (s × d̂)_z = s_x d_y − s_y d_x
        _add(blocks, (i, j, R), t * s0 + rashba)
    for i, j, R, d1, d2 in _second_neighbour_paths(nn, nnn):
        nu = 2 / math.sqrt(3) * np.cross(d1 / d_nn, d2 / d_nn)[2]
        _add(blocks, (i, j, R), 1j * lambda_so * round(nu) * sz)
    return Hamiltonian.from_blocks(
        structure, basis, "soc", blocks, n_electrons=2.0,
        origin={"model": "kane-mele", "params": {
            "t": t, "lambda_so": lambda_so, "lambda_r": lambda_r, "lambda_v": lambda_v}},
    )  # fmt: skip


def kane_mele_z2(lambda_so: float, lambda_v: float) -> int:
    """Published Z2 of the Kane–Mele model at λ_R = 0: 1 for |λ_v| < 3√3 |λ_SO|, else 0."""
    return int(abs(lambda_v) < 3 * math.sqrt(3) * abs(lambda_so))


def bhz(
    A: float = 1.0,
    B: float = 1.0,
    M: float = 1.0,
    C: float = 0.0,
    D: float = 0.0,
    a: float = 4.0,
    vacuum: float = 15.0,
    far_ev: float = 20.0,
) -> Hamiltonian:
    """BHZ model (Science 314, 1757 (2006), eqs. 1–2) on a square lattice, energies in eV.

    Spin-up block in the basis (|E1 ↑> = s↑, |H1 ↑> = p₊↑ with p₊ = −(p_x + i p_y)/√2):
    h(k) = ε(k) + A sin(k_x a) σ_x + A sin(k_y a) σ_y + M(k) σ_z with
    ε = C − 2D(2 − cos k_x a − cos k_y a), M(k) = M − 2B(2 − cos k_x a − cos k_y a) (the lattice
    form of ε = C − Dk², M − Bk²; A, B, D here absorb 1/a, 1/a²). The spin-down block is its
    time-reversed partner. The orbital states are real s, p_y, p_z, p_x on one Hg site; the
    three p states outside the BHZ space (p₋↑, p₊↓ and p_z) are pushed up by `far_ev`.
    Z2: the sign of M(k) at the TRIMs Γ, X, Y, M is sgn M, sgn(M − 4B) twice, sgn(M − 8B),
    and s and p have opposite parity, so (−1)^ν = sgn(M)·sgn(M − 8B): ν = 1 for 0 < M/B < 8
    (M ≠ 4B, where the gap closes at X and Y), ν = 0 for M/B < 0 or M/B > 8. BHZ's HgTe
    well (König et al., JPSJ 77, 031007 (2008), d = 7 nm: A = 0.3645 eV nm, B = −0.686 eV nm²,
    M = −0.010 eV) has M/B > 0: inverted, QSH. Two occupied bands (the lower BHZ pair).
    """
    lattice = np.array([[a, 0, 0], [0, a, 0], [0, 0, vacuum]])
    structure = _structure(lattice, ["Hg"], [[0.25, 0.25, 0.5]])
    basis = BasisSet("model:bhz", {"Hg": (0, 1)}, {"Hg": 2.0})
    # Orbital order s, p_y, p_z, p_x (DESIGN.md §2); spinor index 2·orbital + s.
    s_up = np.zeros(8, complex)
    s_up[0] = 1
    p_plus_up = np.zeros(8, complex)
    p_plus_up[2 * 3] = -1 / math.sqrt(2)  # p_x ↑
    p_plus_up[2 * 1] = -1j / math.sqrt(2)  # p_y ↑
    up = np.stack([s_up, p_plus_up], axis=1)  # (8, 2): the spin-up BHZ states

    theta = np.kron(np.eye(4), I_SIGMA_Y)  # Θ = theta · K on 8-spinors

    def lift(h2: np.ndarray) -> np.ndarray:
        """Spin-up 2×2 operator -> 8×8 with its time-reversed partner on the spin-down pair."""
        h_up = up @ h2 @ up.conj().T
        return h_up + theta @ h_up.conj() @ theta.conj().T

    s0, sx, sy, sz = SIGMA
    bhz_space = lift(s0)  # projector on the four BHZ states
    onsite = lift((C - 4 * D) * s0 + (M - 4 * B) * sz) + far_ev * (np.eye(8) - bhz_space)
    blocks: dict[EdgeKey, np.ndarray] = {(0, 0, (0, 0, 0)): onsite}
    for axis, sigma in ((0, sx), (1, sy)):
        for sign in (1, -1):
            R = [0, 0, 0]
            R[axis] = sign
            # cos k = (e^{ik} + e^{-ik})/2, sin k = (e^{ik} − e^{-ik})/(2i), H(k) = Σ e^{ik·R} H(R)
            hop = D * s0 + B * sz + sign * A / (2j) * sigma
            blocks[(0, 0, (R[0], R[1], R[2]))] = lift(hop)
    return Hamiltonian.from_blocks(
        structure, basis, "soc", blocks, n_electrons=2.0,
        origin={"model": "bhz", "params": {"A": A, "B": B, "M": M, "C": C, "D": D}},
    )  # fmt: skip


def bhz_z2(M: float, B: float) -> int:
    """Z2 of `bhz`: 1 for 0 < M/B < 8 (M ≠ 4B), else 0 (see `bhz`)."""
    ratio = M / B
    return int(0 < ratio < 8 and not math.isclose(ratio, 4))


def fu_kane_mele(
    t: float = 1.0,
    lambda_so: float = 0.125,
    delta_t1: float = 0.4,
    a: float = 5.43,
) -> Hamiltonian:
    """Fu–Kane–Mele diamond-lattice model (PRL 98, 106803 (2007), eq. 1), energies in eV.

    H = Σ_<ij> t_ij c†_i c_j + i (8λ_SO/a²) Σ_<<ij>> c†_i s·(d¹_ij × d²_ij) c_j,
    t_ij = t + δt1 on the [111] bond, t on the other three; d¹, d² the two nearest-neighbour
    vectors from i to j; a the cubic lattice constant (Å). Defaults t = 1, λ_SO = t/8 as in
    the paper's examples. Phases (FKM; re-derived from f(k) = Σ_bonds t_b e^{ik·d_b}, whose
    zeros at TRIMs are the transitions: f(X) = iδt1, f(L_111) ∝ 2t − δt1, f(L_other) ∝ 2t + δt1):
    0 < δt1 < 2t strong TI (1;111); −2t < δt1 < 0 weak TI (0;111); δt1 > 2t trivial (0;000).
    Atoms at ±(1/8, 1/8, 1/8) (fractional, fcc primitive cell): inversion centre at the origin.
    """
    lattice = a / 2 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)
    structure = _structure(lattice, ["C", "C"], [[-1 / 8] * 3, [1 / 8] * 3])
    basis = BasisSet("model:fu-kane-mele", {"C": (0,)}, {"C": 1.0})
    nn = _bonds(structure, a * math.sqrt(3) / 4, 2, in_plane=False)
    nnn = _bonds(structure, a / math.sqrt(2), 2, in_plane=False)
    s0 = SIGMA[0]
    spin = SIGMA[1:]
    bond_111 = np.array([1.0, 1.0, 1.0]) / math.sqrt(3)
    blocks: dict[EdgeKey, np.ndarray] = {
        (i, i, (0, 0, 0)): np.zeros((2, 2), complex) for i in range(2)
    }
    for i, j, R, d in nn:
        along_111 = abs(abs(float(d @ bond_111)) - np.linalg.norm(d)) < 1e-9
        _add(blocks, (i, j, R), (t + (delta_t1 if along_111 else 0.0)) * s0)
    for i, j, R, d1, d2 in _second_neighbour_paths(nn, nnn):
        v = np.cross(d1, d2)
        _add(
            blocks,
            (i, j, R),
            1j * 8 * lambda_so / a**2 * sum(c * s for c, s in zip(v, spin, strict=True)),
        )
    return Hamiltonian.from_blocks(
        structure, basis, "soc", blocks, n_electrons=2.0,
        origin={"model": "fu-kane-mele", "params": {
            "t": t, "lambda_so": lambda_so, "delta_t1": delta_t1}},
    )  # fmt: skip


def fu_kane_mele_z2(delta_t1: float, t: float = 1.0) -> tuple[int, int, int, int]:
    """(ν0; ν1 ν2 ν3) of `fu_kane_mele` for δt1 in (−2t, ∞) \\ {0, 2t} (see the function)."""
    if 0 < delta_t1 < 2 * t:
        return (1, 1, 1, 1)
    if -2 * t < delta_t1 < 0:
        return (0, 1, 1, 1)
    if delta_t1 > 2 * t:
        return (0, 0, 0, 0)
    raise ValueError(f"δt1 = {delta_t1} is on a transition or outside the documented range")
