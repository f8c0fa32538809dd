"""GPAW's PAW spin-orbit term projected into the LCAO basis (second variation).

GPAW computes the spin-orbit operator inside each atom's augmentation sphere
(`gpaw.spinorbit.soc`: ⟨φ_i|(1/r) dV/dr L|φ_j⟩ α²/4 on the converged density). In the LCAO
basis it becomes, with the projector overlaps P_μi(k) = ⟨φ_μ|p̃_i⟩ at k,

    V_so(k)_{μs,νs'} = Σ_a Σ_ij P_μi (ξ σ·L)^{ss'}_ij P*_νj,

the same form GPAW uses for its PAW corrections dH, dS; H_soc(k) = H(k)⊗σ0 + V_so(k) with the
spinor index 2·orbital + s (DESIGN.md §2, interleaved).

σ·L is traceless in spin with ↓↓ = −↑↑ and ↓↑ = (↑↓)†, so two products per atom (↑↑ and ↑↓)
give all four spin blocks: 4× fewer flops than the spinor product.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

HARTREE_EV = 27.211386024367243


def soc_operators(calc: Any) -> dict[int, np.ndarray]:
    """{atom: (2ni, 2ni)} PAW spin-orbit matrices ⟨p_i s|ξ σ·L|p_j s'⟩ in eV at row 2i + s
    (GPAW's `soc`: ⟨φ_i|(1/r) dV/dr L|φ_j⟩ α²/4 on the converged density)."""
    from gpaw.spinorbit import soc

    out = {}
    for a, D_sp in calc.density.D_asp.items():
        dVL = soc(calc.wfs.setups[a], calc.hamiltonian.xc, D_sp)
        ni = dVL.shape[1]
        H = np.empty((2 * ni, 2 * ni), complex)  # interleaved: row 2i + s
        H[0::2, 0::2] = dVL[2]
        H[0::2, 1::2] = dVL[0] - 1j * dVL[1]
        H[1::2, 0::2] = dVL[0] + 1j * dVL[1]
        H[1::2, 1::2] = -dVL[2]
        out[a] = H * HARTREE_EV
    return out


def project_soc(
    P_a: Mapping[int, np.ndarray], soc_aH: Mapping[int, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(↑↑, ↑↓) spin blocks (nk, nao, nao) in eV of V_so(k) = Σ_a P_a (ξσ·L)_a P_a†.

    P_a: {atom: (nk, nao, ni)} projector overlaps in GPAW's convention (not conjugated);
    soc_aH: `soc_operators` of the converged calculation.
    """
    first = next(iter(P_a.values()))
    up_up = np.zeros((first.shape[0], first.shape[1], first.shape[1]), complex)
    up_down = np.zeros_like(up_up)
    for a, P in P_a.items():
        Pd = P.conj().transpose(0, 2, 1)
        up_up += P @ soc_aH[a][0::2, 0::2] @ Pd
        up_down += P @ soc_aH[a][0::2, 1::2] @ Pd
    return up_up, up_down


def spinor_matrix(H: np.ndarray, up_up: np.ndarray, up_down: np.ndarray) -> np.ndarray:
    """(nk, 2nao, 2nao) H⊗σ0 + V_so, interleaved (row 2μ + s), from the spin blocks of V_so."""
    nk, nao = H.shape[0], H.shape[1]
    M = np.empty((nk, 2 * nao, 2 * nao), complex)
    M[:, 0::2, 0::2] = H + up_up
    M[:, 1::2, 1::2] = H - up_up
    M[:, 0::2, 1::2] = up_down
    M[:, 1::2, 0::2] = up_down.conj().transpose(0, 2, 1)
    return M
