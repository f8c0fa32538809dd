"""Spin algebra of SOC Hamiltonians in the interleaved spinor order (DESIGN.md §2).

A spinor block of atoms (i, j) has shape (2n_i, 2n_j), index 2·orbital + s (s = 0 ↑, 1 ↓).
Every spinor Hamiltonian splits uniquely over the Pauli matrices,

    H = H0⊗σ0 + Hx⊗σx + Hy⊗σy + Hz⊗σz,
    H0 = (H↑↑ + H↓↓)/2,  Hz = (H↑↑ − H↓↓)/2,  Hx = (H↑↓ + H↓↑)/2,  Hy = i(H↑↓ − H↓↑)/2,

and conversely H↑↑ = H0 + Hz, H↓↓ = H0 − Hz, H↑↓ = Hx − iHy, H↓↑ = Hx + iHy. Because the σα
are Hermitian, each component is itself Hermitian (H_α,ij(R) = H_α,ji(−R)†).

Representation chosen here: `decompose` returns four *spinless-shaped* `Hamiltonian` objects
(spin "none", the same structure, basis, edges and overlap) whose flat `h` is complex128, so
nothing is lost for magnetic or gauge-transformed inputs. For a non-magnetic system in the
real-orbital basis time reversal makes H0 real and Hx, Hy, Hz purely imaginary: take `.h.real`
of H0 and `.h.imag` of the others if real arrays are wanted (`time_reversal_error` says
whether that is exact).

Time reversal Θ = iσy K acts on H(k) as Θ H(k) Θ⁻¹ = T H(k)* Tᵀ with T = 1⊗iσy; Θ-symmetry
means Θ H(k) Θ⁻¹ = H(−k), equivalently T H(R)* Tᵀ = H(R) for every R, equivalently H0 real and
Hα imaginary. All operations are gathers/scatters over the flat arrays, exact to rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hamdb.errors import HamiltonianError
from hamdb.physics.hamiltonian import Hamiltonian

if TYPE_CHECKING:
    from collections.abc import Sequence

#: T = 1⊗iσy acting on one (↑, ↓) pair.
_I_SIGMA_Y = np.array([[0.0, 1.0], [-1.0, 0.0]])


def spinless_offsets(ham: Hamiltonian) -> np.ndarray:
    """Offsets of spinless (n_i × n_j) blocks on the edges of `ham` (int64, n_edges + 1)."""
    counts = ham.orbital_counts
    sizes = counts[ham.edges[:, 0]] * counts[ham.edges[:, 1]]
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def spinor_index(ham: Hamiltonian) -> np.ndarray:
    """(2, 2, n_spinless) int64: position in a flat spinor `h` of element (a, b) with spins
    (s, t), for every element of the spinless layout on the same edges (`spinless_offsets`)."""
    counts = ham.orbital_counts
    rows, cols = counts[ham.edges[:, 0]], counts[ham.edges[:, 1]]
    off = spinless_offsets(ham)
    sizes = rows * cols
    edge_of = np.repeat(np.arange(ham.n_edges), sizes)
    local = np.arange(int(off[-1]), dtype=np.int64) - off[:-1][edge_of]
    a, b = local // cols[edge_of], local % cols[edge_of]
    spinor_start = 4 * off[:-1][edge_of]  # a spinor block holds 4× the values
    width = 2 * cols[edge_of]
    out = np.empty((2, 2, a.shape[0]), dtype=np.int64)
    for s in (0, 1):
        for t in (0, 1):
            out[s, t] = spinor_start + (2 * a + s) * width + (2 * b + t)
    return out


def _require(ham: Hamiltonian, spin: str, what: str) -> None:
    if ham.spin != spin:
        raise HamiltonianError(f"{what} needs a Hamiltonian with spin {spin!r}, got {ham.spin!r}")


def to_soc(ham: Hamiltonian) -> Hamiltonian:
    """H ⊗ σ0: a spinless Hamiltonian as a (spin-degenerate) spinor one, same edges and S."""
    _require(ham, "none", "to_soc")
    idx = spinor_index(ham)
    h = np.zeros(4 * ham.h.shape[0], dtype=np.complex128)
    h[idx[0, 0]] = ham.h
    h[idx[1, 1]] = ham.h
    return ham.with_h(h, spin="soc")


def decompose(ham: Hamiltonian) -> tuple[Hamiltonian, Hamiltonian, Hamiltonian, Hamiltonian]:
    """(H0, Hx, Hy, Hz) of a SOC Hamiltonian: spinless-shaped, complex `h` (module docstring)."""
    _require(ham, "soc", "decompose")
    idx = spinor_index(ham)
    uu, ud, du, dd = (ham.h[idx[s, t]] for s, t in ((0, 0), (0, 1), (1, 0), (1, 1)))
    parts = ((uu + dd) / 2, (ud + du) / 2, 1j * (ud - du) / 2, (uu - dd) / 2)
    return tuple(ham.with_h(np.asarray(p, dtype=np.complex128), spin="none") for p in parts)  # type: ignore[return-value]


def compose(h0: Hamiltonian, hx: Hamiltonian, hy: Hamiltonian, hz: Hamiltonian) -> Hamiltonian:
    """H0⊗σ0 + Hx⊗σx + Hy⊗σy + Hz⊗σz as a SOC Hamiltonian on the edges and overlap of h0.

    The four must be spinless and share h0's edges (use `Hamiltonian.on_edges` to align).
    """
    parts = (h0, hx, hy, hz)
    for name, part in zip(("H0", "Hx", "Hy", "Hz"), parts, strict=True):
        _require(part, "none", f"compose ({name})")
        if part.edges.shape != h0.edges.shape or not np.array_equal(part.edges, h0.edges):
            raise HamiltonianError(f"compose: {name} has other edges than H0; align with on_edges")
    idx = spinor_index(h0)
    a0, ax, ay, az = (np.asarray(p.h, dtype=np.complex128) for p in parts)
    h = np.empty(4 * a0.shape[0], dtype=np.complex128)
    h[idx[0, 0]] = a0 + az
    h[idx[1, 1]] = a0 - az
    h[idx[0, 1]] = ax - 1j * ay
    h[idx[1, 0]] = ax + 1j * ay
    return h0.with_h(h, spin="soc")


def soc_correction(h_soc: Hamiltonian, h_nonsoc: Hamiltonian) -> Hamiltonian:
    """H_soc − H_nonsoc⊗σ0 on the union of both edge sets (the delta model's target).

    Both must describe the same structure and basis (same site order and orbitals).
    """
    _require(h_soc, "soc", "soc_correction (first argument)")
    _require(h_nonsoc, "none", "soc_correction (second argument)")
    if h_soc.n_orbitals != h_nonsoc.n_orbitals or h_soc.species != h_nonsoc.species:
        raise HamiltonianError(
            "soc_correction: the SOC and non-SOC Hamiltonians have other sites or orbitals"
        )
    union = _union_edges(h_soc.edges, h_nonsoc.edges)
    a = h_soc.on_edges(union)
    b = to_soc(h_nonsoc.on_edges(union))
    return a.with_h(a.h - b.h)


def _union_edges(*edge_lists: Sequence[np.ndarray]) -> np.ndarray:
    stacked = np.concatenate([np.asarray(e, dtype=np.int64).reshape(-1, 5) for e in edge_lists])
    return np.unique(stacked, axis=0).astype(np.int32)


def time_reversal_error(ham: Hamiltonian) -> float:
    """Largest element of |T H(R)* Tᵀ − H(R)| over all R, in eV (T = 1⊗iσy).

    Zero exactly when H0 is real and Hx, Hy, Hz are imaginary, i.e. when Θ H(k) Θ⁻¹ = H(−k)
    at every k (checked at chosen k-points by `time_reversal_error_k`). Per 2×2 spin block
    M = [[↑↑, ↑↓], [↓↑, ↓↓]], T M* Tᵀ = [[↓↓*, −↓↑*], [−↑↓*, ↑↑*]].
    """
    _require(ham, "soc", "time_reversal_error")
    idx = spinor_index(ham)
    uu, ud, du, dd = (ham.h[idx[s, t]] for s, t in ((0, 0), (0, 1), (1, 0), (1, 1)))
    worst = max(
        np.abs(np.conj(dd) - uu).max(initial=0.0),
        np.abs(-np.conj(du) - ud).max(initial=0.0),
    )  # the other two elements are the complex conjugates of these two
    return float(worst)


def time_reversal_error_k(ham: Hamiltonian, kpts: np.ndarray) -> float:
    """Largest |Θ H(k) Θ⁻¹ − H(−k)| (eV) over the given fractional k-points (nk, 3)."""
    from hamdb.physics.bloch import bloch_matrices

    _require(ham, "soc", "time_reversal_error_k")
    k = np.asarray(kpts, dtype=float).reshape(-1, 3)
    h_k, _ = bloch_matrices(ham, k)
    h_mk, _ = bloch_matrices(ham, -k)
    t = np.kron(np.eye(ham.n_orbitals), _I_SIGMA_Y)
    theta_h = t @ np.conj(h_k) @ t.T
    return float(np.abs(theta_h - h_mk).max(initial=0.0))
