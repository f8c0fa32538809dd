"""Bloch sums: H(k) and S(k) of a block-sparse Hamiltonian for a batch of k-points.

Lattice gauge (DESIGN.md §2):  H(k) = Σ_R e^{2πi k·R} H(R),  k fractional, R integer.
Atomic gauge (Z2Pack's `pos`): H_ab(k) = Σ_R e^{2πi k·(R + τ_j − τ_i)} H_ab(R) for a on atom i,
b on atom j, τ fractional site positions. The two differ by the diagonal unitary
U(k) = diag(e^{2πi k·τ_a}): H_atomic(k) = U(k)† H(k) U(k); eigenvalues agree, eigenvectors (and
so Berry phases and Wilson loops) do not. The atomic gauge is periodic only up to U(G).

How it stays at numpy speed: the flat block arrays are turned once per Hamiltonian into
"scatter plans", one per unique translation R: the flat positions in an N×N matrix that R's
blocks occupy and their values. A batch of k-points is then one `phases @ dense H(R) stack`
GEMM (when the stack of dense H(R) fits the memory budget) or one vectorised scatter-add per R
(when it does not). No Python loop runs per matrix element or per k-point; the k-points are
processed in chunks that bound the memory of the (nk, N, N) result being built.

The plans are cached per Hamiltonian object (a weak reference, so they die with it); a
Hamiltonian whose flat `h` or `s` is changed in place after a Bloch sum would keep stale plans:
make a new object with `Hamiltonian.with_h` instead.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from hamdb.errors import HamiltonianError

if TYPE_CHECKING:
    from hamdb.physics.hamiltonian import Hamiltonian

Gauge = Literal["lattice", "atomic"]

#: Above this size (bytes) the dense stack of H(R) is not kept and the scatter path runs.
DENSE_STACK_BUDGET = 1 << 30
#: Rough bound (bytes) on a chunk of (nk, N, N) complex matrices built at once: small enough
#: to stay near the caches (measured: 10 k-points of 400×400 build 4× faster per k than 100).
CHUNK_BUDGET = 1 << 25


@dataclass(frozen=True)
class _Plan:
    """Where the blocks of each translation go in a dense N×N matrix (spinless or spinor)."""

    translations: np.ndarray  # (n_R, 3) int
    flat_index: tuple[np.ndarray, ...]  # per R: positions row·N + col (int64), unique within R
    values: tuple[np.ndarray, ...]  # per R: the matching matrix elements
    size: int  # N

    def dense_stack(self) -> np.ndarray:
        """(n_R, N, N) dense H(R) (or S(R))."""
        n = self.size
        stack = np.zeros((len(self.translations), n * n), dtype=self.values[0].dtype)
        for r, (idx, val) in enumerate(zip(self.flat_index, self.values, strict=True)):
            stack[r, idx] = val
        return stack.reshape(-1, n, n)


@dataclass
class _Cache:
    h: _Plan
    s: _Plan | None
    h_stack: np.ndarray | None = None
    s_stack: np.ndarray | None = None


_CACHE: weakref.WeakKeyDictionary[Hamiltonian, _Cache] = weakref.WeakKeyDictionary()


def _plan(
    edges: np.ndarray, offsets: np.ndarray, flat: np.ndarray, starts: np.ndarray,
    counts: np.ndarray, size: int,
) -> _Plan:  # fmt: skip
    """Scatter plan of flat blocks with `counts[i]` rows per site starting at `starts[i]`."""
    rows = counts[edges[:, 0]]
    cols = counts[edges[:, 1]]
    sizes = rows * cols
    if offsets.shape != (len(edges) + 1,) or int(offsets[-1]) != flat.shape[0]:
        raise HamiltonianError(
            f"offsets end at {int(offsets[-1])} but the flat array holds {flat.shape[0]} values"
        )
    if not np.array_equal(np.diff(offsets), sizes):
        e = int(np.flatnonzero(np.diff(offsets) != sizes)[0])
        raise HamiltonianError(
            f"block of edge {tuple(int(x) for x in edges[e])} holds {int(np.diff(offsets)[e])} "
            f"values, the basis needs {int(rows[e])}x{int(cols[e])}"
        )
    edge_of = np.repeat(np.arange(len(edges)), sizes)
    local = np.arange(flat.shape[0], dtype=np.int64) - offsets[:-1][edge_of]
    row = starts[edges[edge_of, 0]] + local // cols[edge_of]
    col = starts[edges[edge_of, 1]] + local % cols[edge_of]
    flat_index = row * size + col
    translations, r_of_edge = np.unique(edges[:, 2:5], axis=0, return_inverse=True)
    r_of = r_of_edge.reshape(-1)[edge_of]
    order = np.argsort(r_of, kind="stable")
    bounds = np.searchsorted(r_of[order], np.arange(len(translations) + 1))
    idx_sorted, val_sorted = flat_index[order], flat[order]
    pieces = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    return _Plan(
        translations.astype(np.int64),
        tuple(idx_sorted[p] for p in pieces),
        tuple(val_sorted[p] for p in pieces),
        size,
    )


def _cache(ham: Hamiltonian) -> _Cache:
    cached = _CACHE.get(ham)
    if cached is not None:
        return cached
    ns = ham.n_spin
    counts = ham.orbital_counts.astype(np.int64)
    starts = ham.orbital_starts[:-1].astype(np.int64)
    h_plan = _plan(ham.edges, ham.offsets, ham.h, starts * ns, counts * ns, ham.n_states)
    s_plan = None
    if ham.s is not None and ham.s_offsets is not None:
        s_plan = _plan(ham.edges, ham.s_offsets, ham.s, starts, counts, ham.n_orbitals)
    cached = _Cache(h_plan, s_plan)
    itemsize = 16
    if len(h_plan.translations) * ham.n_states**2 * itemsize <= DENSE_STACK_BUDGET:
        cached.h_stack = h_plan.dense_stack().reshape(len(h_plan.translations), -1)
        if s_plan is not None:
            cached.s_stack = s_plan.dense_stack().reshape(len(s_plan.translations), -1)
    _CACHE[ham] = cached
    return cached


def translations(ham: Hamiltonian) -> np.ndarray:
    """The unique lattice translations R (n_R, 3) of the Hamiltonian's edges, sorted."""
    return _cache(ham).h.translations.copy()


def dense_hr(ham: Hamiltonian) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(R (n_R, 3), H(R) (n_R, N, N), S(R) (n_R, n_orb, n_orb) spinless or None), dense.

    Meant for small systems and for tools that want plain arrays (e.g. TBmodels, Z2Pack).
    """
    c = _cache(ham)
    h = c.h.dense_stack()
    s = c.s.dense_stack() if c.s is not None else None
    return c.h.translations.copy(), h, s


def state_positions(ham: Hamiltonian) -> np.ndarray:
    """Fractional position τ of the atom of every state (n_states, 3): Z2Pack's `pos`."""
    per_site = ham.orbital_counts * ham.n_spin
    return np.repeat(np.asarray(ham.structure.frac_coords, dtype=float), per_site, axis=0)


def _phases(kpts: np.ndarray, translations: np.ndarray) -> np.ndarray:
    return np.exp(2j * np.pi * (kpts @ translations.T.astype(float)))


def _sum(plan: _Plan, stack: np.ndarray | None, kpts: np.ndarray) -> np.ndarray:
    """Σ_R e^{2πi k·R} M(R) for a chunk of k-points, (nk, N, N) complex128."""
    phases = _phases(kpts, plan.translations)
    n = plan.size
    if stack is not None:
        if np.isrealobj(stack):  # two real GEMMs: half the work of upcasting the stack
            return (phases.real @ stack + 1j * (phases.imag @ stack)).reshape(len(kpts), n, n)
        return (phases @ stack).reshape(len(kpts), n, n)
    out = np.zeros((len(kpts), n * n), dtype=np.complex128)
    for r, (idx, val) in enumerate(zip(plan.flat_index, plan.values, strict=True)):
        out[:, idx] += phases[:, r, None] * val[None, :]
    return out.reshape(len(kpts), n, n)


def _spinor_overlap(s_k: np.ndarray) -> np.ndarray:
    """S(k) ⊗ σ0 in the interleaved spinor order (index 2·orbital + s)."""
    nk, n, _ = s_k.shape
    out = np.zeros((nk, 2 * n, 2 * n), dtype=s_k.dtype)
    out[:, 0::2, 0::2] = s_k
    out[:, 1::2, 1::2] = s_k
    return out


def _as_kpts(kpts: np.ndarray) -> np.ndarray:
    k = np.asarray(kpts, dtype=float)
    if k.ndim == 1:
        k = k.reshape(1, -1)
    if k.ndim != 2 or k.shape[1] != 3:
        raise HamiltonianError(
            f"k-points must be an (nk, 3) array of fractional coordinates, got {k.shape}"
        )
    return k


def chunk_size(n_states: int) -> int:
    """k-points per chunk so that one chunk of (nk, N, N) complex matrices stays ~CHUNK_BUDGET."""
    return max(1, CHUNK_BUDGET // max(1, 16 * n_states * n_states))


def iter_bloch(
    ham: Hamiltonian, kpts: np.ndarray, gauge: Gauge = "lattice", chunk: int | None = None
) -> Iterator[tuple[slice, np.ndarray, np.ndarray | None]]:
    """Yield (slice of kpts, H(k) chunk, S(k) chunk or None) with bounded memory.

    S(k) is the spinor overlap S ⊗ σ0 (interleaved) for a SOC Hamiltonian, so both matrices of
    a chunk have the shape (nk, n_states, n_states).
    """
    if gauge not in ("lattice", "atomic"):
        raise ValueError(f"gauge must be 'lattice' or 'atomic', not {gauge!r}")
    k_all = _as_kpts(kpts)
    c = _cache(ham)
    step = chunk or chunk_size(ham.n_states)
    tau = state_positions(ham) if gauge == "atomic" else None
    for start in range(0, len(k_all), step):
        sl = slice(start, min(start + step, len(k_all)))
        k = k_all[sl]
        h_k = _sum(c.h, c.h_stack, k)
        s_k = None
        if c.s is not None:
            s_k = _sum(c.s, c.s_stack, k)
            if ham.n_spin == 2:
                s_k = _spinor_overlap(s_k)
        if tau is not None:
            u = np.exp(2j * np.pi * (k @ tau.T))  # (nk, N): U(k) = diag(u)
            gauge_phase = u.conj()[:, :, None] * u[:, None, :]
            h_k *= gauge_phase
            if s_k is not None:
                s_k *= gauge_phase
        yield sl, h_k, s_k


def bloch_matrices(
    ham: Hamiltonian, kpts: np.ndarray, gauge: Gauge = "lattice"
) -> tuple[np.ndarray, np.ndarray | None]:
    """H(k) and S(k) for fractional k-points (nk, 3): two (nk, N, N) complex128 arrays.

    N = ham.n_states. S(k) is None for an orthogonal basis; for SOC it is S(k) ⊗ σ0 in the
    interleaved spinor order. gauge "lattice" uses e^{2πi k·R}; "atomic" uses
    e^{2πi k·(R + τ_j − τ_i)} (needed for Wilson loops / Berry phases).
    """
    k = _as_kpts(kpts)
    h_out = np.empty((len(k), ham.n_states, ham.n_states), dtype=np.complex128)
    s_out = None if ham.s is None else np.empty_like(h_out)
    for sl, h_k, s_k in iter_bloch(ham, k, gauge):
        h_out[sl] = h_k
        if s_out is not None and s_k is not None:
            s_out[sl] = s_k
    return h_out, s_out
