"""Wilson loops along lines of k-points, on grids that refine where the occupied states turn.

A line of a plane (see hamdb.topology.wcc) is k(u) = const + u·e_loop, u ∈ [0, 1), closed by
u(1) = e^{-2πi G·τ} u(0). Its Wilson loop W = Π_j M_j, M_j = U(u_j)† U(u_{j+1}), is valid for
any ordered points u_j: they need not be evenly spaced. The discretisation error of a segment
grows with how far the occupied subspace turns across it, measured by the overlap deficit
d_j = n_occ − ‖M_j‖_F² = Σ_i (1 − σ_i²) (σ_i: singular values of M_j; d_j ≈ g·Δu², g the
quantum metric). So instead of doubling every line evenly, a line that fails its check is
refined where it matters: the segments with the largest indicators η_j = d_j^{3/2} (the
size of a segment's third-order phase error) that together hold half of Σ η are bisected
(Dörfler marking), and any segment whose end subspaces overlap poorly (σ_min < MIN_OVERLAP:
a state may turn by more than 60° there, so the WCCs could be aliased) is bisected too.
Near a small gap the points gather where the states turn; elsewhere the grid stays coarse
(Bi(111): 16 points reach what 48 even points did).

Check (unchanged in meaning from even doubling, and Z2Pack's pos_tol): the WCCs of all
points and of every other point may differ by less than pos_tol. On a grid made by bisection
"every other point" merges pairs of neighbouring segments, so the coarse loop has about four
times the error of the fine one and the difference is ≈ 3× the fine loop's error: the
accepted WCCs are within ~pos_tol/3 of their converged values (Z2Pack compares 8 with 10
points, which accepts errors near 2·pos_tol; both measured on Bi(111)).

Positions are integers p on [0, D), D = k_start·2^LEVELS, u = p/D: exact bisection, exact
time-reversal partners (D − p) on the time-reversal-invariant lines, where only one of each
pair is diagonalised and the other is Θ of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hamdb.topology.kspace import BandProblem

#: Bisection depth below the starting spacing (grid resolution D = k_start · 2**LEVELS).
LEVELS = 12
#: Smallest singular value of a neighbour overlap accepted without bisecting its segment.
MIN_OVERLAP = 0.5
#: Dörfler marking: bisect the largest-indicator segments that hold this share of Σ η.
MARK_FRACTION = 0.5


def time_reversed(c: np.ndarray) -> np.ndarray:
    """Θ c = (1 ⊗ iσ_y) c* on interleaved spinor coefficients (..., N, n): states at −k."""
    out = np.empty_like(c)
    out[..., 0::2, :] = np.conj(c[..., 1::2, :])
    out[..., 1::2, :] = -np.conj(c[..., 0::2, :])
    return out


def line_kpoints(plane: tuple[int, float, int, int], t: np.ndarray, n_k: int) -> np.ndarray:
    """(n_lines, n_k, 3) k-points u = j/n_k along the loop axis at pump coordinates t/2."""
    fixed, value, pump, loop = plane
    k = np.zeros((len(t), n_k, 3))
    k[:, :, fixed] = value
    k[:, :, pump] = (np.asarray(t) / 2)[:, None]
    k[:, :, loop] = np.arange(n_k)[None, :] / n_k
    return k


def _grid_kpoints(plane: tuple[int, float, int, int], t: float, u: np.ndarray) -> np.ndarray:
    fixed, value, pump, loop = plane
    k = np.zeros((len(u), 3))
    k[:, fixed], k[:, pump], k[:, loop] = value, t / 2, u
    return k


def _chain(m: np.ndarray) -> np.ndarray:
    """Ordered products m[..., 0, :, :] @ m[..., 1, :, :] @ … over the axis −3, by pairs."""
    while m.shape[-3] > 1:
        n = m.shape[-3]
        paired = m[..., 0 : n - 1 : 2, :, :] @ m[..., 1:n:2, :, :]
        m = paired if n % 2 == 0 else np.concatenate([paired, m[..., -1:, :, :]], axis=-3)
    return m[..., 0, :, :]


def loop_overlaps(u: np.ndarray, closure: np.ndarray) -> np.ndarray:
    """(..., n, m, m) overlaps M_j = U_j† U_{j+1} of loops of states u (..., n, N, m), closed
    by G (closure: (N,) e^{-2πi G·τ})."""
    dagger = np.swapaxes(u, -1, -2).conj()
    m = np.empty((*u.shape[:-2], u.shape[-1], u.shape[-1]), dtype=complex)
    m[..., :-1, :, :] = dagger[..., :-1, :, :] @ u[..., 1:, :, :]
    m[..., -1, :, :] = dagger[..., -1, :, :] @ (closure[:, None] * u[..., 0, :, :])
    return m


def wcc_of_overlaps(m: np.ndarray) -> np.ndarray:
    """Sorted WCCs in [0, 1) (..., m) from loop overlaps (..., n, m, m): phases of eig(Π M_j)."""
    phases = np.angle(np.linalg.eigvals(_chain(m))) / (2 * np.pi) % 1.0
    return np.sort(phases, axis=-1)


def wilson_wcc(u: np.ndarray, closure: np.ndarray, step: int = 1) -> np.ndarray:
    """Sorted WCCs (n_lines, n_occ) from evenly spaced states u (n_lines, n_k, N, n_occ).

    closure: (N,) e^{-2πi G·τ}, mapping u(first point) to u(first point + G); `step` takes
    every step-th point.
    """
    return wcc_of_overlaps(loop_overlaps(u[:, ::step], closure))


@dataclass
class Line:
    """One line of a plane: positions p (ints on [0, D)), states while refining, WCCs.

    plane: (fixed axis, its value, pump axis, loop axis) of the plane that made the line;
    n_computed, e_bounds, messages: what refining it cost and saw (k-points diagonalised;
    lowest band, highest occupied, lowest empty, smallest direct gap in eV; limits hit).
    """

    t: float
    p: np.ndarray
    plane: tuple[int, float, int, int]
    u: np.ndarray | None = None  # (len(p), N, n_occ) periodic states at p
    wcc: np.ndarray | None = None
    converged: bool = False
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n_computed: int = 0
    e_bounds: list[float] = field(default_factory=lambda: [np.inf, -np.inf, np.inf, np.inf])
    messages: list[str] = field(default_factory=list)

    @property
    def n_k(self) -> int:
        return len(self.p)


class LineRefiner:
    """Occupied states and converged WCCs of lines (of any planes), batched over lines."""

    def __init__(self, problem: BandProblem, settings) -> None:  # type: ignore[no-untyped-def]
        self.problem = problem
        self.s = settings
        self.resolution = int(settings.k_start) * 2**LEVELS
        self._closures: dict[int, np.ndarray] = {}

    def closure(self, loop_axis: int) -> np.ndarray:
        """(N,) e^{-2πi G·τ} for G along the loop axis."""
        if loop_axis not in self._closures:
            g = np.zeros(3)
            g[loop_axis] = 1.0
            self._closures[loop_axis] = np.exp(-2j * np.pi * (self.problem.tau @ g))
        return self._closures[loop_axis]

    def even_grid(self, n_k: int) -> np.ndarray:
        return np.arange(n_k, dtype=np.int64) * (self.resolution // n_k)

    def _states(self, lines: list[Line]) -> list[np.ndarray]:
        """Periodic occupied states at each line's pending positions (sorted), one batch.

        On the time-reversal-invariant lines (t = 0, 1) of a time-reversal-symmetric H, a
        position whose partner D − p is also pending is not diagonalised when p > D − p:
        its states are Θ of the partner's.
        """
        D = self.resolution
        trs = self.problem.time_reversal_symmetric
        kpts, computed = [], []
        for ln in lines:
            p = ln.pending
            partner = (D - p) % D
            compute = np.ones(len(p), dtype=bool)
            if trs and ln.t in (0.0, 1.0):
                compute = (p <= partner) | ~np.isin(partner, p)
            kpts.append(_grid_kpoints(ln.plane, ln.t, p / D))
            computed.append(compute)
        k_all = np.concatenate([k[c] for k, c in zip(kpts, computed, strict=True)])
        energies, c = self.problem.occupied_states(k_all, gauge="lattice")
        out, start = [], 0
        for ln, k, compute in zip(lines, kpts, computed, strict=True):
            stop = start + int(compute.sum())
            _record(ln, energies[start:stop], self.problem.n_occupied)
            u = np.empty((len(k), *c.shape[1:]), dtype=complex)
            u[compute] = c[start:stop]
            start = stop
            if not compute.all():
                source = np.searchsorted(ln.pending, (D - ln.pending[~compute]) % D)
                u[~compute] = time_reversed(u[source])
            u *= np.exp(-2j * np.pi * (k @ self.problem.tau.T))[..., None]
            out.append(u)
        return out

    def converge(self, lines: list[Line]) -> None:
        """Refine each line's grid until its WCCs pass the check (or a limit is reached)."""
        todo = [ln for ln in lines if not ln.converged]
        for ln in todo:
            if ln.u is None:
                ln.pending, ln.p = np.sort(ln.p), np.zeros(0, dtype=np.int64)
        while todo:
            fresh = [ln for ln in todo if len(ln.pending)]
            if fresh:
                for ln, u in zip(fresh, self._states(fresh), strict=True):
                    p = np.concatenate([ln.p, ln.pending])
                    order = np.argsort(p)
                    ln.p = p[order]
                    ln.u = u if ln.u is None else np.concatenate([ln.u, u])[order]
                    ln.pending = np.zeros(0, dtype=np.int64)
            # lines of one size and loop axis: one batch
            for size, loop in sorted({(ln.n_k, ln.plane[3]) for ln in todo}):
                self._check([ln for ln in todo if (ln.n_k, ln.plane[3]) == (size, loop)])
            todo = [ln for ln in todo if not ln.converged]

    def _check(self, batch: list[Line]) -> None:
        """Set each line's WCCs; mark it converged, or set the positions to add next."""
        u = np.stack([ln.u for ln in batch])  # type: ignore[misc]
        closure = self.closure(batch[0].plane[3])
        m = loop_overlaps(u, closure)
        fine = wcc_of_overlaps(m)
        moved = max_move(fine, wcc_of_overlaps(loop_overlaps(u[:, ::2], closure)))
        deficit = np.maximum(u.shape[-1] - (np.abs(m) ** 2).sum(axis=(-1, -2)), 0.0)
        poor = _poor_overlaps(m, deficit)
        for ln, wcc, mv, di, turned in zip(batch, fine, moved, deficit, poor, strict=True):
            ln.wcc = wcc
            if not self.s.adaptive or (mv < self.s.pos_tol and not turned.any()):
                ln.converged, ln.u = True, None
                continue
            new = self._bisect(ln, di, turned)
            if len(new) == 0 or ln.n_k + len(new) > self.s.k_max:
                ln.converged, ln.u = True, None
                ln.messages.append(
                    f"line t={ln.t:.4f}: WCCs still move {mv:.3g} with {ln.n_k} k-points "
                    f"(k_max={self.s.k_max})"
                )
                continue
            ln.pending = new

    def _bisect(self, ln: Line, deficit: np.ndarray, turned: np.ndarray) -> np.ndarray:
        """Midpoints of the marked segments (and their mirror images on a TRI line), sorted."""
        D = self.resolution
        eta = deficit**1.5
        order = np.argsort(-eta, kind="stable")
        total = np.cumsum(eta[order])
        count = int(np.searchsorted(total, MARK_FRACTION * total[-1])) + 1
        marked = np.zeros(len(eta), dtype=bool)
        marked[order[:count]] = True
        marked |= turned
        start = ln.p
        end = np.append(ln.p[1:], D)
        ok = marked & (end - start >= 2)
        mid = (start[ok] + end[ok]) // 2
        if ln.t in (0.0, 1.0):  # keep the grid mirror-symmetric: Θ halves its cost
            mid = np.union1d(mid, (D - mid) % D)
        return np.setdiff1d(mid, ln.p)


def _record(line: Line, energies: np.ndarray, n_occ: int) -> None:
    """Count a line's diagonalised k-points and widen its band extrema."""
    line.n_computed += len(energies)
    if len(energies) == 0:
        return
    b = line.e_bounds
    b[0] = min(b[0], float(energies[:, 0].min()))
    b[1] = max(b[1], float(energies[:, n_occ - 1].max()))
    b[2] = min(b[2], float(energies[:, n_occ].min()))
    b[3] = min(b[3], float((energies[:, n_occ] - energies[:, n_occ - 1]).min()))


def _poor_overlaps(m: np.ndarray, deficit: np.ndarray) -> np.ndarray:
    """Segments whose smallest singular value is below MIN_OVERLAP (bool, deficit's shape).

    d_j ≥ 1 − σ_min², so only segments with d_j ≥ 1 − MIN_OVERLAP² need the singular values.
    """
    out = np.zeros(deficit.shape, dtype=bool)
    suspect = deficit >= 1 - MIN_OVERLAP**2
    if suspect.any():
        sigma = np.linalg.svd(m[suspect], compute_uv=False)[:, -1]
        out[suspect] = sigma < MIN_OVERLAP
    return out


def _circ(d: np.ndarray) -> np.ndarray:
    """Distance on the unit circle."""
    d = np.abs(d) % 1.0
    return np.minimum(d, 1.0 - d)


def max_move(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Largest displacement between two sets of sorted WCCs, minimised over cyclic matchings.

    a, b: (..., n) sorted; returns (...). The n cyclic shifts are one fancy index.
    """
    n = a.shape[-1]
    shifted = b[..., (np.arange(n)[:, None] + np.arange(n)[None, :]) % n]  # (..., shift, n)
    return _circ(a[..., None, :] - shifted).max(axis=-1).min(axis=-1)
