"""Z2 from the flow of hybrid Wannier charge centres (WCC) over time-reversal-invariant planes.

A plane of the Brillouin zone is k_c = const (c the fixed axis, const 0 or ½); on it, lines
k(t, u) = const·e_c + (t/2)·e_p + u·e_l, u ∈ [0, 1) closed along the loop axis l, t ∈ [0, 1]
pumping half the zone along p (t = 0 and t = 1 are the two time-reversal-invariant lines).
On each line the Wilson loop W = Π_j M_j, M_j = U(u_j)† U(u_{j+1}) of the occupied periodic
states (atomic gauge, closed by U(u+1) = e^{-2πi G·τ} U(u)) has eigenvalues e^{2πi x_n}: the
x_n are the WCCs (Soluyanov & Vanderbilt, PRB 83, 235401 (2011); Yu et al., PRB 84, 075119
(2011)).

Adaptive, as Z2Pack does it (Gresch et al., PRB 95, 075146 (2017)), with the same criteria:
* line: k-points doubled until the WCCs move less than `pos_tol` (the half-resolution result
  is the every-other-point subset of the current one, so the check costs no extra states);
* surface: between neighbouring lines, the largest WCC gap of one line must stay farther than
  `gap_tol`·(its size) from every WCC of the other, and the WCCs may move at most
  `move_tol`·(the smaller largest gap); a failing pair gets a line in the middle, down to a
  spacing of `min_neighbour_dist`. Hitting a limit leaves the plane not converged, and a
  plane that is not converged has no Z2.
Z2 is the parity of the number of WCCs the largest-gap position jumps over from t = 0 to 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hamdb.topology.kspace import BandProblem


@dataclass(frozen=True)
class WccSettings:
    """Convergence controls (Z2Pack's names and defaults where they exist)."""

    pos_tol: float = 0.01
    gap_tol: float = 0.3
    move_tol: float = 0.3
    num_lines: int = 7
    min_neighbour_dist: float = 0.001
    k_start: int = 12
    k_max: int = 256
    max_lines: int = 200
    adaptive: bool = True
    kramers_tol: float = 1e-3


@dataclass
class PlaneResult:
    """WCC flow of one plane: t (n_lines,), wcc (n_lines, n_occ) sorted in [0, 1)."""

    fixed_axis: int
    fixed_value: float
    pump_axis: int
    loop_axis: int
    t: np.ndarray
    wcc: np.ndarray
    n_kpoints: int
    converged: bool
    z2: int | None
    messages: list[str] = field(default_factory=list)
    #: (lowest band, highest occupied, lowest empty, smallest direct gap) in eV on its k-points
    band_extrema: tuple[float, float, float, float] = (np.inf, -np.inf, np.inf, np.inf)

    @property
    def gap_pos(self) -> np.ndarray:
        return largest_gap(self.wcc)[0]

    @property
    def gap_size(self) -> np.ndarray:
        return largest_gap(self.wcc)[1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "fixed_axis": self.fixed_axis, "fixed_value": self.fixed_value,
            "pump_axis": self.pump_axis, "loop_axis": self.loop_axis,
            "t": self.t.tolist(), "wcc": self.wcc.tolist(), "z2": self.z2,
            "converged": self.converged, "n_kpoints": self.n_kpoints, "messages": self.messages,
        }  # fmt: skip


# -- WCC geometry on the circle -----------------------------------------------------------------
def largest_gap(wcc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position, size) of the largest gap between sorted WCCs on the unit circle, per line."""
    w = np.sort(np.atleast_2d(wcc), axis=-1)
    gaps = np.diff(np.concatenate([w, w[:, :1] + 1.0], axis=1), axis=1)
    best = np.argmax(gaps, axis=1)
    rows = np.arange(len(w))
    pos = (w[rows, best] + gaps[rows, best] / 2) % 1.0
    return pos, gaps[rows, best]


def _circ(d: np.ndarray) -> np.ndarray:
    """Distance on the unit circle."""
    d = np.abs(d) % 1.0
    return np.minimum(d, 1.0 - d)


def max_move(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Largest displacement between two sets of sorted WCCs, minimised over cyclic matchings.

    a, b: (..., n) sorted; returns (...). n cyclic shifts are tried at once.
    """
    n = a.shape[-1]
    shifts = np.stack([np.roll(b, s, axis=-1) for s in range(n)], axis=-2)  # (..., n, n)
    return _circ(a[..., None, :] - shifts).max(axis=-1).min(axis=-1)


def _orientation_sign(g1: np.ndarray, g2: np.ndarray, x: np.ndarray) -> np.ndarray:
    """±1: which of the two arcs between g1 and g2 holds x; 0 (g1 = g2 or x on an end) -> +1.

    sin 2πa + sin 2πb + sin 2πc = −4 sin πa sin πb sin πc for a + b + c = 0 (a = g2 − g1,
    b = x − g2, c = g1 − x): the product form keeps its sign where the sum of sines is all
    round-off, e.g. g2 = g1 − 1e-16 with x opposite them (seen on GPAW Bi2Se3: a false Z2 = 1).
    """
    val = -np.sin(np.pi * (g2 - g1)) * np.sin(np.pi * (x - g2)) * np.sin(np.pi * (g1 - x))
    return np.where(val < 0, -1, 1)


def z2_from_flow(wcc: np.ndarray) -> int:
    """Parity of the WCCs crossed by the largest-gap position between neighbouring lines.

    For each pair of lines (i, i+1) the product over the WCCs x of line i+1 of the orientation
    of (g_i, g_{i+1}, x) is (−1)^(WCCs on one arc from g_i to g_{i+1}); with an even number of
    WCCs either arc gives the same parity. A zero (no jump) counts as +1.
    """
    pos, _ = largest_gap(wcc)
    signs = _orientation_sign(pos[:-1, None], pos[1:, None], wcc[1:])
    return int(np.prod(signs) < 0)


# -- Wilson loops -------------------------------------------------------------------------------
def time_reversed(c: np.ndarray) -> np.ndarray:
    """Θ c = (1 ⊗ iσ_y) c* on interleaved spinor coefficients (..., N, n): states at −k."""
    out = np.empty_like(c)
    out[..., 0::2, :] = np.conj(c[..., 1::2, :])
    out[..., 1::2, :] = -np.conj(c[..., 0::2, :])
    return out


def _line_kpoints(plane: tuple[int, float, int, int], t: np.ndarray, n_k: int) -> np.ndarray:
    """(n_lines, n_k, 3) k-points u = j/n_k along the loop axis at pump coordinates t/2."""
    fixed, value, pump, loop = plane
    k = np.zeros((len(t), n_k, 3))
    k[:, :, fixed] = value
    k[:, :, pump] = (np.asarray(t) / 2)[:, None]
    k[:, :, loop] = np.arange(n_k)[None, :] / n_k
    return k


def wilson_wcc(u: np.ndarray, closure: np.ndarray, step: int = 1) -> np.ndarray:
    """Sorted WCCs (n_lines, n_occ) from periodic states u (n_lines, n_k, N, n_occ).

    closure: (N,) e^{-2πi G·τ}, mapping u(first point) to u(first point + G). `step` takes
    every step-th point (the coarser loop used for the line convergence check).
    """
    v = u[:, ::step]
    n_lines, n_k, _, m = v.shape
    overlaps = v[:, :-1].conj().transpose(0, 1, 3, 2) @ v[:, 1:]  # (n_lines, n_k-1, m, m)
    last = v[:, -1].conj().transpose(0, 2, 1) @ (closure[None, :, None] * v[:, 0])
    w = np.broadcast_to(np.eye(m, dtype=complex), (n_lines, m, m)).copy()
    for j in range(n_k - 1):
        w = w @ overlaps[:, j]
    w = w @ last
    phases = np.angle(np.linalg.eigvals(w)) / (2 * np.pi) % 1.0
    return np.sort(phases, axis=1)


@dataclass
class _Line:
    t: float
    n_k: int
    u: np.ndarray | None = None  # (n_k, N, n_occ) while refining
    wcc: np.ndarray | None = None
    converged: bool = False


class _PlaneRun:
    """State of one adaptive plane computation (lines kept sorted by t)."""

    def __init__(
        self,
        problem: BandProblem,
        plane: tuple[int, float, int, int],
        s: WccSettings,
        shared: dict[tuple, _Line] | None = None,
    ):
        self.problem = problem
        self.shared = {} if shared is None else shared
        self.plane = plane
        self.s = s
        g = np.zeros(3)
        g[plane[3]] = 1.0
        self.closure = np.exp(-2j * np.pi * (problem.tau @ g))
        self.n_kpoints = 0
        self.messages: list[str] = []
        # min band, max occupied, min empty, min direct gap (eV) over the computed k-points
        self.e_bounds = [np.inf, -np.inf, np.inf, np.inf]

    def _states(self, t: np.ndarray, n_k: int, odd_only: bool) -> np.ndarray:
        """Occupied periodic states (n_lines, n_k or n_k/2, N, n_occ) on lines at t.

        On the time-reversal-invariant lines (t = 0, 1) only one of each pair u, −u is
        diagonalised; the other is Θ of it (when H is time-reversal symmetric).
        """
        k = _line_kpoints(self.plane, t, n_k)
        j = np.arange(n_k)
        if odd_only:
            k, j = k[:, 1::2], j[1::2]
        n_lines, m = k.shape[:2]
        partner = (n_k - j) % n_k
        compute = np.ones((n_lines, m), dtype=bool)
        tri = np.isin(t, (0.0, 1.0)) & self.problem.time_reversal_symmetric
        compute[tri] = j <= partner
        energies, c = self.problem.occupied_states(k[compute], gauge="lattice")
        self.n_kpoints += len(energies)
        n_occ = self.problem.n_occupied
        self.e_bounds[0] = min(self.e_bounds[0], float(energies[:, 0].min()))
        self.e_bounds[1] = max(self.e_bounds[1], float(energies[:, n_occ - 1].max()))
        self.e_bounds[2] = min(self.e_bounds[2], float(energies[:, n_occ].min()))
        direct = energies[:, n_occ] - energies[:, n_occ - 1]
        self.e_bounds[3] = min(self.e_bounds[3], float(direct.min()))
        u = np.empty((n_lines, m, *c.shape[1:]), dtype=complex)
        u[compute] = c
        if tri.any():
            missing = j > partner
            source = np.searchsorted(j, partner[missing])
            for line in np.flatnonzero(tri):
                u[line, missing] = time_reversed(u[line, source])
        u *= np.exp(-2j * np.pi * (k @ self.problem.tau.T))[..., None]
        return u

    def converge_lines(self, lines: list[_Line]) -> None:
        """Double the k-points of each line until its WCCs move less than pos_tol."""
        todo = [ln for ln in lines if not ln.converged]
        # Lines that share n_k are computed in one batch.
        while todo:
            n_k = min(ln.n_k for ln in todo)
            batch = [ln for ln in todo if ln.n_k == n_k]
            fresh = [ln for ln in batch if ln.u is None]
            if fresh:
                u = self._states(np.array([ln.t for ln in fresh]), n_k, odd_only=False)
                for ln, ui in zip(fresh, u, strict=True):
                    ln.u = ui
            u_all = np.stack([ln.u for ln in batch])  # type: ignore[misc]
            fine = wilson_wcc(u_all, self.closure)
            coarse = wilson_wcc(u_all, self.closure, step=2)
            moved = max_move(fine, coarse)
            for ln, wcc, mv in zip(batch, fine, moved, strict=True):
                ln.wcc = wcc
                if mv < self.s.pos_tol or not self.s.adaptive:
                    ln.converged, ln.u = True, None
                elif 2 * n_k > self.s.k_max:
                    ln.converged, ln.u = True, None
                    self.messages.append(
                        f"line t={ln.t:.4f}: WCCs still move {mv:.3g} at k_max={self.s.k_max}"
                    )
            grow = [ln for ln in batch if not ln.converged]
            if grow:
                new = self._states(np.array([ln.t for ln in grow]), 2 * n_k, odd_only=True)
                for ln, odd in zip(grow, new, strict=True):
                    merged = np.empty((2 * n_k, *odd.shape[1:]), dtype=complex)
                    merged[0::2], merged[1::2] = ln.u, odd
                    ln.u, ln.n_k = merged, 2 * n_k
            todo = [ln for ln in todo if not ln.converged]

    def _key(self, t: float) -> tuple:
        """Line identity: loop axis and the two other k-coordinates."""
        fixed, value, pump, loop = self.plane
        coords = {fixed: round(value, 12), pump: round(t / 2, 12)}
        return (loop, tuple(sorted(coords.items())))

    def run(self) -> PlaneResult:
        s = self.s
        lines = [_Line(float(t), s.k_start) for t in np.linspace(0, 1, s.num_lines)]
        # The two time-reversal-invariant edge lines of a 3D plane are also edge lines of the
        # plane with the other fixed axis and the same loop axis: computed once.
        for end in (lines[0], lines[-1]):
            done = self.shared.get(self._key(end.t))
            if done is not None:
                end.n_k, end.wcc, end.converged = done.n_k, done.wcc, True
        self.converge_lines(lines)
        for end in (lines[0], lines[-1]):
            self.shared.setdefault(self._key(end.t), end)
        limit_hit = bool(self.messages)
        while s.adaptive:
            wcc = np.stack([ln.wcc for ln in lines])  # type: ignore[misc]
            bad = np.flatnonzero(~_neighbours_ok(wcc, s))
            if len(bad) == 0:
                break
            new_lines = []
            for i in bad:
                left, right = lines[i], lines[i + 1]
                if right.t - left.t < 2 * s.min_neighbour_dist:
                    continue
                new_lines.append(_Line((left.t + right.t) / 2, max(left.n_k, right.n_k)))
            if not new_lines or len(lines) + len(new_lines) > s.max_lines:
                limit_hit = True
                self.messages.append(
                    f"{len(bad)} neighbouring line pair(s) still fail the gap/move checks at "
                    f"{len(lines)} lines (min_neighbour_dist={s.min_neighbour_dist}, "
                    f"max_lines={s.max_lines})"
                )
                break
            self.converge_lines(new_lines)
            limit_hit = limit_hit or bool(self.messages)
            lines = sorted(lines + new_lines, key=lambda ln: ln.t)
        wcc = np.stack([ln.wcc for ln in lines])  # type: ignore[misc]
        converged = not limit_hit
        for end in (0, -1):
            w = wcc[end]
            split = min(
                float(_circ(w[0::2] - w[1::2]).max(initial=0.0)),
                float(_circ(np.roll(w, 1)[0::2] - np.roll(w, 1)[1::2]).max(initial=0.0)),
            )
            if split > s.kramers_tol:
                converged = False
                self.messages.append(
                    f"WCCs at t={lines[end].t:g} are not Kramers pairs (split {split:.3g}): "
                    f"time reversal is broken or the occupied count is wrong"
                )
        fixed, value, pump, loop = self.plane
        return PlaneResult(
            fixed, value, pump, loop, np.array([ln.t for ln in lines]), wcc,
            self.n_kpoints, converged, z2_from_flow(wcc) if converged else None,
            self.messages, tuple(self.e_bounds),
        )  # fmt: skip


def _neighbours_ok(wcc: np.ndarray, s: WccSettings) -> np.ndarray:
    """Gap and move checks between lines i and i+1, (n_lines - 1,) bool."""
    pos, size = largest_gap(wcc)
    a, b = wcc[:-1], wcc[1:]
    gap_ok = np.all(_circ(b - pos[:-1, None]) > s.gap_tol * size[:-1, None], axis=1) & np.all(
        _circ(a - pos[1:, None]) > s.gap_tol * size[1:, None], axis=1
    )
    move_ok = max_move(a, b) < s.move_tol * np.minimum(size[:-1], size[1:])
    return gap_ok & move_ok


def plane_flow(
    problem: BandProblem, fixed_axis: int, fixed_value: float, settings: WccSettings | None = None
) -> PlaneResult:
    """Adaptive WCC flow and Z2 of the plane k_fixed = fixed_value (0 or 0.5)."""
    others = [a for a in range(3) if a != fixed_axis]
    plane = (fixed_axis, float(fixed_value), others[0], others[1])
    return _PlaneRun(problem, plane, settings or WccSettings()).run()


def z2_2d(
    problem: BandProblem, vacuum_axis: int, settings: WccSettings | None = None
) -> list[PlaneResult]:
    """The single plane of a layer: k along the vacuum axis = 0."""
    return [plane_flow(problem, vacuum_axis, 0.0, settings)]


def z2_3d(problem: BandProblem, settings: WccSettings | None = None) -> list[PlaneResult]:
    """The six time-reversal-invariant planes k_i = 0, ½ (i = 1, 2, 3), in that order."""
    shared: dict[tuple, _Line] = {}
    out = []
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        for value in (0.0, 0.5):
            plane = (axis, value, others[0], others[1])
            out.append(_PlaneRun(problem, plane, settings or WccSettings(), shared).run())
    return out


def indices_3d(planes: list[PlaneResult]) -> tuple[list[int] | None, str | None]:
    """(ν0; ν1 ν2 ν3) from the six planes, or (None, why) if a plane failed or they disagree."""
    if any(p.z2 is None for p in planes):
        return None, "not every time-reversal-invariant plane converged"
    z = {(p.fixed_axis, p.fixed_value): int(p.z2) for p in planes}  # type: ignore[arg-type]
    sums = {(z[(a, 0.0)] + z[(a, 0.5)]) % 2 for a in range(3)}
    if len(sums) != 1:
        return None, f"planes give inconsistent ν0 ({z}): the flow is not converged"
    return [sums.pop(), z[(0, 0.5)], z[(1, 0.5)], z[(2, 0.5)]], None
