"""Occupied Bloch states of a Hamiltonian in an orthonormal (Löwdin) basis, batched over k.

Everything the invariants need goes through `BandProblem`: it checks the input once (hermiticity
of H(R) and S(R), positive-definite S(k), a sensible occupied count), then diagonalises stacks
of k-points with one batched LAPACK call per chunk, never a Python loop per k-point.

Non-orthogonal bases: H c = E S c is solved as H' c' = E c' with H' = X H X, X = S^{-1/2}
(Löwdin; hamdb.physics.orthogonal, which can also filter near-dependent directions of S(k)
with s_min > 0 and park them far above every band). Löwdin orbitals stay centred on their
atoms, so the atom positions τ keep their meaning in the Wilson-loop gauge (as Z2Pack does
with `basis_overlap` and `pos`). S is spinless: X is computed on the n_orb×n_orb S(k) and
applied as X ⊗ σ0 to three of the four spin blocks of H(k) (H↓↑ = H↑↓†), which the Bloch sum
produces separately. Where only energies are wanted (the gap search) X = L⁻¹ (S = L L†,
Cholesky, LAPACK's reduction) replaces S^{-1/2}: the same eigenvalues at half the cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from scipy.linalg.lapack import zheevr

from hamdb.errors import HamiltonianError, TopologyError
from hamdb.physics.bloch import bloch_matrices, dense_hr, state_positions, translations
from hamdb.physics.checks import check_hamiltonian
from hamdb.physics.orthogonal import (
    SingularOverlapError,
    cholesky_spin_blocks,
    lowdin_transform,
    orthonormal_hamiltonian,
    spin_block_product,
)

if TYPE_CHECKING:
    from hamdb.physics.hamiltonian import Hamiltonian

#: Bound (bytes) on one chunk of (nk, N, N) complex matrices.
CHUNK_BYTES = 1 << 27
#: Above this size the dense H(R) stack is not built (large cells go through physics.bloch).
DENSE_BYTES = 1 << 29


@dataclass
class BandProblem:
    """H(k) (and S(k)) of one Hamiltonian as dense stacks, ready for batched diagonalisation.

    Hermitian halves: H(k) = K(0) + Σ_{R>0} [e^{2πik·R} K(R) + h.c.] with K(R) = ½(H(R) +
    H(−R)†) (R > 0: lexicographically positive), which is the Hermitian part of the full Bloch
    sum with half the work. R: (n_R, 3) positive translations; hr: (n_R, N·N) flattened K(R)
    (eV); h0: (N, N) K(0); sr, s0: the same for the spinless S(R) (n·n), or None; n_spin: 1
    or 2; tau: (N, 3) fractional position of the atom of every state; n_occupied: occupied
    bands (states below the gap). Above DENSE_BYTES of dense stacks, `ham` is kept instead and
    H(k), S(k) come from hamdb.physics.bloch's sparse scatter path. spin_blocks: hr and h0
    hold the spin blocks (↑↑, ↑↓, ↓↑, ↓↓) of the m×m orbital matrices one after the other
    instead of the interleaved N×N matrix (a SOC H with an overlap: see `_bloch`).
    """

    R: np.ndarray
    hr: np.ndarray | None
    sr: np.ndarray | None
    n_states: int
    n_spin: int
    tau: np.ndarray
    n_occupied: int
    label: str = "Hamiltonian"
    ham: Hamiltonian | None = None  # set instead of hr/sr when the dense stacks are too big
    s_min: float = 0.0  # relative overlap filter (hamdb.physics.orthogonal); 0 = exact Löwdin
    max_dropped: int = 0  # most states the filter dropped at one k so far
    h0: np.ndarray | None = None
    s0: np.ndarray | None = None
    spin_blocks: bool = False

    @classmethod
    def from_hamiltonian(
        cls,
        ham: Hamiltonian,
        occupied: int | None = None,
        hermitian_tol: float = 1e-4,
        s_min: float = 0.0,
    ) -> BandProblem:
        """Dense stacks of `ham`, checked; `occupied` overrides ham.n_electrons (one per state).

        s_min > 0 filters near-dependent overlap directions (hamdb.physics.orthogonal): their
        states sit far above every band, so the occupied ones are unaffected.
        """
        label = repr(ham)
        try:
            check_hamiltonian(ham, herm_tol=hermitian_tol)
        except HamiltonianError as exc:
            raise HamiltonianError(f"{label}: {exc}") from None
        n_occ = _occupied_count(ham, occupied, label)
        n_R = len(translations(ham))
        dense = n_R * ham.n_states**2 * 16 <= DENSE_BYTES
        R, h, s = dense_hr(ham) if dense else (translations(ham), None, None)
        h0 = s0 = hr = sr = None
        blocks = s is not None and ham.n_spin == 2
        if h is not None:
            R_all = R
            R, h0, hr = hermitian_half(R_all, np.asarray(h, dtype=complex))
            if s is not None:
                _, s0, sr = hermitian_half(R_all, s.real)
            if blocks:
                m = ham.n_orbitals
                hr = np.ascontiguousarray(
                    hr.reshape(len(R), m, 2, m, 2).transpose(0, 2, 4, 1, 3).reshape(len(R), -1)
                )
                h0 = np.ascontiguousarray(h0.reshape(m, 2, m, 2).transpose(1, 3, 0, 2))
        return cls(
            R=R.astype(float),
            hr=hr,
            sr=sr,
            h0=h0,
            s0=s0,
            n_states=ham.n_states,
            n_spin=ham.n_spin,
            tau=state_positions(ham),
            n_occupied=n_occ,
            label=label,
            ham=None if dense else ham,
            s_min=float(s_min),
            spin_blocks=bool(blocks and h is not None),
        )

    @cached_property
    def n_orbitals(self) -> int:
        return self.n_states // self.n_spin

    def chunk(self) -> int:
        return max(1, CHUNK_BYTES // (16 * self.n_states**2))

    def _bloch(self, k: np.ndarray, vectors: bool = True) -> np.ndarray:
        """Orthonormal-basis H'(k) (nk, N, N), Hermitian to round-off, lattice gauge.

        vectors=False: for eigenvalues only. With an exact overlap (s_min = 0) of a SOC H the
        Cholesky frame L⁻¹ H L⁻† then stands in for the Löwdin one, in spin-block order and with
        only its lower triangle set (hamdb.physics.orthogonal.cholesky_spin_blocks).
        """
        n, m = self.n_states, self.n_orbitals
        sk = None
        if self.ham is not None:
            hk, s_spinor = bloch_matrices(self.ham, k)
            if s_spinor is not None:
                sk = s_spinor[:, :: self.n_spin, :: self.n_spin]
        else:
            phases = np.exp(2j * np.pi * (k @ self.R.T))
            if self.sr is not None:
                b = (phases.real @ self.sr + 1j * (phases.imag @ self.sr)).reshape(len(k), m, m)
                sk = np.conjugate(b.transpose(0, 2, 1))
                sk += b
                sk += self.s0
            if self.spin_blocks:
                return self._spin_block_bloch(k, phases, sk, vectors)
            a = (phases @ self.hr).reshape(len(k), n, n)
            hk = a + a.conj().transpose(0, 2, 1) + self.h0  # exactly Hermitian
        if sk is None:
            return hk if self.ham is None else 0.5 * (hk + hk.conj().transpose(0, 2, 1))
        try:
            hk, dropped = orthonormal_hamiltonian(hk, sk, self.n_spin, self.s_min)
        except SingularOverlapError as exc:
            raise self._singular(k, exc) from None
        self._count_dropped(dropped)
        return hk

    def _spin_block_bloch(
        self, k: np.ndarray, phases: np.ndarray, sk: np.ndarray, vectors: bool
    ) -> np.ndarray:
        """H'(k) from the spin blocks of the Bloch sum: (X ⊗ σ0) H (X ⊗ σ0)† on three blocks."""
        nk, m = len(phases), self.n_orbitals
        a = (phases @ self.hr).reshape(nk, 2, 2, m, m)
        blocks = np.empty((nk, 3, m, m), dtype=complex)
        for j, (s1, s2) in enumerate(((0, 0), (0, 1), (1, 1))):  # K + K† + K(0), no temporaries
            np.conjugate(a[:, s2, s1].swapaxes(-1, -2), out=blocks[:, j])
            blocks[:, j] += a[:, s1, s2]
            blocks[:, j] += self.h0[s1, s2]
        try:
            if not vectors and self.s_min == 0:
                energies_only = cholesky_spin_blocks(sk, blocks)
                if energies_only is not None:
                    return energies_only
            x, drop, dropped = lowdin_transform(sk, self.s_min)
        except SingularOverlapError as exc:
            raise self._singular(k, exc) from None
        hp = spin_block_product(x, blocks)
        if drop is not None:  # filtered directions parked above every band (orthogonal.py)
            e_drop = 1.0 + 2.0 * np.sqrt((np.abs(hp) ** 2).sum(axis=(1, 2)))
            shift = e_drop[:, None, None] * drop
            hp[:, 0::2, 0::2] += shift
            hp[:, 1::2, 1::2] += shift
            self._count_dropped(2 * dropped)
        return hp

    def _singular(self, k: np.ndarray, exc: SingularOverlapError) -> TopologyError:
        return TopologyError(
            f"{self.label}: the overlap S(k) is singular or not positive definite at "
            f"k = {np.round(k[exc.index], 4).tolist()} (smallest eigenvalue "
            f"{exc.smallest:.3g}); --s-min drops near-dependent directions"
        )

    def _count_dropped(self, dropped: np.ndarray) -> None:
        self.max_dropped = max(self.max_dropped, int(dropped.max(initial=0)))
        if self.n_states - self.max_dropped <= self.n_occupied:
            raise TopologyError(
                f"{self.label}: s_min = {self.s_min:g} drops {self.max_dropped} of "
                f"{self.n_states} states at some k, leaving no empty band above the "
                f"{self.n_occupied} occupied ones"
            )

    @cached_property
    def time_reversal_symmetric(self) -> bool:
        """Θ H'(k) Θ⁻¹ = H'(−k) for every k (to 1e-8 of the largest element)?

        With Θ = (1 ⊗ iσ_y) K that holds for every k exactly when every K(R) has spin blocks
        H↑↑ = H↓↓* and H↑↓ = −H↓↑* (S(R) is real, so S^{-1/2}(−k) = S^{-1/2}(k)* keeps it
        in the orthonormal frame): checked on the stored translations, no Bloch sums. The
        sparse path (no dense stack) compares H'(k) and H'(−k) at a few generic k instead.
        """
        if self.n_spin != 2:
            return False
        if self.hr is not None and self.h0 is not None:
            m = self.n_orbitals
            stack = np.concatenate([self.h0.reshape(1, -1), self.hr])
            if self.spin_blocks:
                b = stack.reshape(-1, 2, 2, m, m)
                uu, ud, du, dd = b[:, 0, 0], b[:, 0, 1], b[:, 1, 0], b[:, 1, 1]
            else:
                b = stack.reshape(-1, 2 * m, 2 * m)
                uu, ud, du, dd = (
                    b[:, 0::2, 0::2],
                    b[:, 0::2, 1::2],
                    b[:, 1::2, 0::2],
                    b[:, 1::2, 1::2],
                )
            deviation = max(np.abs(uu - dd.conj()).max(), np.abs(ud + du.conj()).max())
            return bool(deviation <= 1e-8 * max(1.0, np.abs(stack).max()))
        k = np.random.default_rng(7).random((4, 3))
        hk, hmk = self._bloch(k), self._bloch(-k)
        theta = np.kron(np.eye(self.n_orbitals), np.array([[0, 1], [-1, 0]]))
        deviation = np.abs(theta @ hk.conj() @ theta.T - hmk).max()
        return bool(deviation <= 1e-8 * max(1.0, np.abs(hk).max()))

    def eigenvalues(self, kpts: np.ndarray) -> np.ndarray:
        """All band energies (nk, N) in eV, ascending."""
        k = np.atleast_2d(np.asarray(kpts, dtype=float))
        out = np.empty((len(k), self.n_states))
        step = self.chunk()
        for a in range(0, len(k), step):
            out[a : a + step] = np.linalg.eigvalsh(self._bloch(k[a : a + step], vectors=False))
        return out

    def occupied_states(
        self, kpts: np.ndarray, gauge: str = "atomic"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(energies (nk, n_occupied + 1), occupied eigenvectors (nk, N, n_occupied)), Löwdin basis.

        The energies are the occupied bands and the lowest empty one (eV). gauge "atomic"
        multiplies the lattice-gauge coefficients by e^{-2πi k·τ}: the periodic parts u_k whose
        overlaps give Wilson loops (Z2Pack's convention 2 with `pos`).
        """
        k = np.atleast_2d(np.asarray(kpts, dtype=float))
        n_occ = self.n_occupied
        energies = np.empty((len(k), n_occ + 1))
        vectors = np.empty((len(k), self.n_states, n_occ), dtype=complex)
        step = self.chunk()
        for a in range(0, len(k), step):
            w, v = _lowest_states(self._bloch(k[a : a + step]), n_occ + 1)
            energies[a : a + step] = w
            vectors[a : a + step] = v[:, :, :n_occ]
        if gauge == "atomic":
            vectors *= np.exp(-2j * np.pi * (k @ self.tau.T))[:, :, None]
        return energies, vectors


#: Below this share of wanted states (and from SUBSET_MIN_SIZE states), LAPACK's MRRR solver
#: for the lowest states only (zheevr) beats the batched all-states divide and conquer: GPAW Si
#: (9 of 52) 0.20 vs 0.26 ms per k-point; Bi(111) (31 of 56) 0.66 vs 0.33 ms (CPU, one core).
SUBSET_SHARE = 0.3
SUBSET_MIN_SIZE = 32


def _lowest_states(h: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The `count` lowest eigenvalues (nk, count) and eigenvectors (nk, N, count) of h."""
    n = h.shape[-1]
    if count > SUBSET_SHARE * n or n < SUBSET_MIN_SIZE:
        w, v = np.linalg.eigh(h)
        return w[:, :count], v[:, :, :count]
    w = np.empty((len(h), count))
    v = np.empty((len(h), n, count), dtype=complex)
    for i, matrix in enumerate(h):
        wi, vi, found, _, info = zheevr(matrix, compute_v=1, range="I", lower=1, il=1, iu=count)
        if info != 0 or found != count:
            wi, vi = np.linalg.eigh(matrix)
        w[i], v[i] = wi[:count], vi[:, :count]
    return w, v


def hermitian_half(R: np.ndarray, stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positive R (n_pos, 3), K(0) (n, n), K(R>0) (n_pos, n·n)) of M(R) (n_R, n, n).

    K(R) = ½(M(R) + M(−R)†), with M(−R) = 0 where the file has only one of the pair (then the
    Hermitian partner is implied): Σ_R e^{2πik·R} M(R) made Hermitian is K(0) + Σ_{R>0}
    [e^{2πik·R} K(R) + h.c.].
    """
    index = {tuple(r): i for i, r in enumerate(np.asarray(R, dtype=np.int64).tolist())}
    n = stack.shape[-1]
    zero = index.get((0, 0, 0))
    k0 = np.zeros((n, n), dtype=stack.dtype)
    if zero is not None:
        k0 = 0.5 * (stack[zero] + stack[zero].conj().T)
    keys = sorted({max(r, tuple(-x for x in r)) for r in index if r != (0, 0, 0)})
    half = np.zeros((len(keys), n, n), dtype=stack.dtype)
    for j, r in enumerate(keys):  # one block's adjoint at a time, not a copy of the stack
        if r in index:
            half[j] += 0.5 * stack[index[r]]
        minus = tuple(-x for x in r)
        if minus in index:
            half[j] += 0.5 * stack[index[minus]].conj().T
    positive = np.array(keys, dtype=np.int64).reshape(-1, 3)
    return positive, k0, np.ascontiguousarray(half.reshape(len(keys), -1))


def _occupied_count(ham: Hamiltonian, occupied: int | None, label: str) -> int:
    if ham.spin != "soc":
        raise TopologyError(
            f"{label}: Z2 needs a spin-orbit (spin 'soc') Hamiltonian, this one is spinless"
        )
    if occupied is None:
        n_el = float(ham.n_electrons or 0.0)
        if n_el <= 0 or abs(n_el - round(n_el)) > 1e-6:
            raise TopologyError(
                f"{label}: n_electrons = {ham.n_electrons} does not give an occupied band count; "
                f"pass occupied=N (--occupied N)"
            )
        occupied = round(n_el)
    occupied = int(occupied)
    if occupied < 2 or occupied >= ham.n_states:
        raise TopologyError(
            f"{label}: {occupied} occupied bands of {ham.n_states}: need 2 <= occupied < "
            f"{ham.n_states} (too few occupied bands, or no empty band above them)"
        )
    if occupied % 2:
        raise TopologyError(
            f"{label}: odd occupied count {occupied} with spin-orbit coupling: Kramers pairs "
            f"cannot be split, so the system is a metal or the count is wrong"
        )
    return occupied


def detect_dimension(ham: Hamiltonian) -> tuple[int, int | None]:
    """(2, vacuum axis) when exactly one lattice vector carries no hopping, else (3, None).

    A layer in a slab cell has no H(R) with R ≠ 0 along the vacuum vector; a crystal with
    hoppings along all three is 3D. Fewer than two periodic directions is not supported.
    """
    R = ham.edges[:, 2:5]
    empty = [axis for axis in range(3) if not np.any(R[:, axis])]
    if not empty:
        return 3, None
    if len(empty) == 1:
        return 2, empty[0]
    raise TopologyError(
        f"{ham!r}: hoppings run along only {3 - len(empty)} lattice vector(s): "
        f"Z2 needs a 2D layer or a 3D crystal"
    )
