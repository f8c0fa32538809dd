"""Fu–Kane parity invariants of a centrosymmetric crystal (Fu & Kane, PRB 76, 045302 (2007)).

Inversion about a centre c maps atom i to atom p(i) with −(τ_i + R) + 2c = τ_p(i) + (L_i − R),
L_i = 2c − τ_i − τ_p(i) an integer vector, and a real orbital of angular momentum l to (−1)^l
times itself; spin is untouched. On lattice-gauge Bloch sums (H(k) = Σ_R e^{2πik·R} H(R)) this
is the matrix P(k)_{(p(i),a),(i,a)} = (−1)^{l_a} e^{2πi k·L_i}, and at a time-reversal-invariant
momentum Γ_n (−Γ_n ≡ Γ_n) it commutes with H(Γ_n) and S(Γ_n), hence also with the Löwdin
X = S^{-1/2}. The occupied states carry its eigenvalues ±1 in Kramers pairs; δ_n is the product
over one member of each pair and
    2D: (−1)^ν = Π over the 4 TRIMs of the plane,
    3D: (−1)^ν0 = Π over the 8 TRIMs, (−1)^ν_i = Π over the 4 TRIMs with n_i = ½.
Not applicable (with the reason) when no inversion centre maps the structure and H onto
themselves (e.g. InAs), or when H breaks that inversion by more than its gap allows (orbitals
that do not transform as their l says, a staggered potential; small noise is tolerated).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hamdb.physics.hamiltonian import Hamiltonian
    from hamdb.topology.kspace import BandProblem


@dataclass(frozen=True)
class ParityResult:
    """z2: [ν] or [ν0, ν1, ν2, ν3], None when not applicable (reason says why)."""

    z2: list[int] | None
    applicable: bool
    reason: str = ""
    deltas: dict[str, int] = field(default_factory=dict)
    max_asymmetry_ev: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "z2": self.z2,
            "applicable": self.applicable,
            "reason": self.reason,
            "deltas": self.deltas,
        }


def inversion_map(ham: Hamiltonian, tol: float = 1e-3) -> tuple[np.ndarray, np.ndarray] | None:
    """(perm (n_sites,), L (n_sites, 3) int) of an inversion centre of the structure, or None."""
    frac = np.asarray(ham.structure.frac_coords, dtype=float)
    species = np.array(ham.species)
    for j in np.flatnonzero(species == species[0]):
        c2 = frac[0] + frac[j]  # 2c
        image = c2[None, :] - frac  # 2c − τ_i
        diff = image[:, None, :] - frac[None, :, :]  # (i, p, 3)
        near = np.abs(diff - np.round(diff)).max(axis=-1) < tol
        near &= species[:, None] == species[None, :]
        if not np.all(near.sum(axis=1) == 1):
            continue
        perm = np.argmax(near, axis=1)
        if len(set(perm.tolist())) != len(perm):
            continue
        L = np.round(diff[np.arange(len(frac)), perm]).astype(int)
        return perm, L
    return None


def inversion_matrix(
    ham: Hamiltonian, perm: np.ndarray, L: np.ndarray, k: np.ndarray
) -> np.ndarray:
    """P(k) (N, N) in the spinor (or spinless) orbital basis, lattice gauge."""
    ns = ham.n_spin
    starts = ham.orbital_starts * ns
    P = np.zeros((ham.n_states, ham.n_states), dtype=complex)
    for i, p in enumerate(perm):
        ls = np.repeat(ham.basis.orbital_ls(ham.species[i]), ns)
        phase = np.exp(2j * np.pi * float(k @ L[i]))
        rows = np.arange(starts[p], starts[p + 1])
        cols = np.arange(starts[i], starts[i + 1])
        P[rows, cols] = (-1.0) ** ls * phase
    return P


def trims(dim: int, vacuum_axis: int | None) -> list[np.ndarray]:
    points = [np.array(n, dtype=float) for n in itertools.product((0.0, 0.5), repeat=3)]
    if dim == 2 and vacuum_axis is not None:
        points = [k for k in points if k[vacuum_axis] == 0.0]
    return points


def parity_z2(
    ham: Hamiltonian,
    problem: BandProblem,
    dim: int,
    vacuum_axis: int | None,
    direct_gap_ev: float = np.inf,
) -> ParityResult:
    """Fu–Kane Z2 from inversion eigenvalues of the occupied bands at the TRIMs.

    direct_gap_ev: the smallest direct gap of H over the zone. The parities are those of the
    inversion-symmetrised H, and they are H's own only if the symmetrisation cannot close the
    gap anywhere: each eigenvalue moves by at most half the asymmetry, so the asymmetry must
    stay below the direct gap (and below half the gap at each TRIM, where the bands are sorted).
    """
    found = inversion_map(ham)
    if found is None:
        return ParityResult(None, False, "the structure has no inversion centre")
    perm, L = found
    n_occ = problem.n_occupied
    deltas: dict[str, int] = {}
    worst = 0.0
    for k in trims(dim, vacuum_axis):
        P = inversion_matrix(ham, perm, L, k)
        hk = problem._bloch(k[None, :])[0]
        # Wannier, DFT and predicted Hamiltonians are inversion symmetric only up to noise: use
        # the symmetrised H, accepted only while the asymmetry (spectral norm) cannot close the
        # gap (Weyl's inequality; see the docstring).
        asym = P @ hk @ P.conj().T - hk
        deviation = float(np.linalg.norm(asym, 2))
        w, v = np.linalg.eigh(hk + asym / 2)
        gap = float(w[n_occ] - w[n_occ - 1])
        if gap < 1e-6:
            return ParityResult(
                None, False, f"bands {n_occ} and {n_occ + 1} touch at k={k.tolist()}"
            )
        if deviation >= min(gap / 2, direct_gap_ev):
            return ParityResult(
                None,
                False,
                f"H(k={k.tolist()}) breaks the inversion of the structure by {deviation:.3g} eV, "
                f"not small against the gap ({gap:.3g} eV there, {direct_gap_ev:.3g} eV direct)",
            )
        worst = max(worst, deviation)
        occ = v[:, :n_occ]
        rep = occ.conj().T @ P @ occ
        xi = np.linalg.eigvals(rep)
        if np.abs(np.abs(xi) - 1).max() > 1e-6 or np.abs(xi.imag).max() > 1e-6:
            return ParityResult(None, False, f"inversion eigenvalues at k={k.tolist()} are not ±1")
        n_minus = int(np.sum(xi.real < 0))
        if n_minus % 2:
            return ParityResult(None, False, f"odd number of negative parities at k={k.tolist()}")
        deltas[",".join(f"{x:g}" for x in k)] = -1 if (n_minus // 2) % 2 else 1
    prod = lambda keys: int(np.prod([deltas[key] for key in keys]) < 0)  # noqa: E731
    names = list(deltas)
    if dim == 2:
        return ParityResult([prod(names)], True, deltas=deltas, max_asymmetry_ev=worst)
    nu = [prod(names)]
    for axis in range(3):
        nu.append(prod([nm for nm in names if float(nm.split(",")[axis]) == 0.5]))
    return ParityResult(nu, True, deltas=deltas, max_asymmetry_ev=worst)
