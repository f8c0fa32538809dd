"""Z2 from the flow of hybrid Wannier charge centres (WCC) over time-reversal-invariant planes.

A plane of the Brillouin zone is k_c = const (c the fixed axis, const 0 or ½); on it, lines
k(t, u) = const·e_c + (t/2)·e_p + u·e_l, u ∈ [0, 1) closed along the loop axis l, t ∈ [0, 1]
pumping half the zone along p (t = 0 and t = 1 are the two time-reversal-invariant lines).
On each line the Wilson loop W = Π_j M_j, M_j = U(u_j)† U(u_{j+1}) of the occupied periodic
states (atomic gauge, closed by U(u+1) = e^{-2πi G·τ} U(u)) has eigenvalues e^{2πi x_n}: the
x_n are the WCCs (Soluyanov & Vanderbilt, PRB 83, 235401 (2011); Yu et al., PRB 84, 075119
(2011)).

Adaptive, as Z2Pack does it (Gresch et al., PRB 95, 075146 (2017)), with the same criteria:
* line: k-points added until the WCCs of all points and of every other point differ by less
  than `pos_tol` (the coarse loop is a subset, so the check costs no extra states); they are
  added where the occupied states turn fastest (hamdb.topology.lines), not evenly;
* surface: between neighbouring lines, the largest WCC gap of one line must stay farther than
  `gap_tol`·(its size) from every WCC of the other, and the WCCs may move at most
  `move_tol`·(the smaller largest gap); a failing pair gets a line in the middle, down to a
  spacing of `min_neighbour_dist` (a new line starts from its finer neighbour's k-grid).
  Hitting a limit leaves the plane not converged, and a plane that is not converged has no Z2.
Z2 is the parity of the number of WCCs the largest-gap position jumps over from t = 0 to 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hamdb.topology.lines import Line, LineRefiner, _circ, max_move

if TYPE_CHECKING:
    from hamdb.topology.kspace import BandProblem


@dataclass(frozen=True)
class WccSettings:
    """Convergence controls (Z2Pack's names and defaults where they exist)."""

    pos_tol: float = 0.01
    gap_tol: float = 0.3
    move_tol: float = 0.3
    num_lines: int = 5
    min_neighbour_dist: float = 0.001
    k_start: int = 8
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


# -- planes --------------------------------------------------------------------------------------
class _PlaneRun:
    """State of one adaptive plane computation (lines kept sorted by t).

    `initial_lines` makes the evenly spaced starting lines (the time-reversal-invariant edge
    lines shared with other planes through `shared`); once they are converged, possibly in
    one batch with other planes' (`z2_3d`), `finish` refines the surface and gives the result.
    """

    def __init__(
        self,
        problem: BandProblem,
        plane: tuple[int, float, int, int],
        s: WccSettings,
        refiner: LineRefiner,
        shared: dict[tuple, Line] | None = None,
    ):
        self.problem = problem
        self.shared = {} if shared is None else shared
        self.plane = plane
        self.s = s
        self.refiner = refiner
        self.messages: list[str] = []

    def _key(self, t: float) -> tuple:
        """Line identity: loop axis and the two other k-coordinates."""
        fixed, value, pump, loop = self.plane
        coords = {fixed: round(value, 12), pump: round(t / 2, 12)}
        return (loop, tuple(sorted(coords.items())))

    def initial_lines(self) -> list[Line]:
        grid = self.refiner.even_grid(self.s.k_start)
        lines = [Line(float(t), grid, self.plane) for t in np.linspace(0, 1, self.s.num_lines)]
        # The two time-reversal-invariant edge lines of a 3D plane are also edge lines of the
        # plane with the other fixed axis and the same loop axis: one object, computed once
        # (by the plane that made it; `finish` gives the other plane its own view of it).
        for end in (0, -1):
            lines[end] = self.shared.setdefault(self._key(lines[end].t), lines[end])
        return lines

    def _own_view(self, line: Line, t: float) -> Line:
        """A converged line of another plane seen at this plane's t (its k-points not counted)."""
        if line.plane == self.plane:
            return line
        return Line(
            t, line.p, self.plane, wcc=line.wcc, converged=True,
            e_bounds=list(line.e_bounds), messages=list(line.messages),
        )  # fmt: skip

    def run(self) -> PlaneResult:
        lines = self.initial_lines()
        self.refiner.converge(lines)
        return self.finish(lines)

    def finish(self, lines: list[Line]) -> PlaneResult:
        s = self.s
        lines = [self._own_view(lines[0], 0.0), *lines[1:-1], self._own_view(lines[-1], 1.0)]
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
                # start from the finer neighbour's grid: the states turn in the same places
                finer = left if left.n_k >= right.n_k else right
                new_lines.append(Line((left.t + right.t) / 2, finer.p.copy(), self.plane))
            if not new_lines or len(lines) + len(new_lines) > s.max_lines:
                self.messages.append(
                    f"{len(bad)} neighbouring line pair(s) still fail the gap/move checks at "
                    f"{len(lines)} lines (min_neighbour_dist={s.min_neighbour_dist}, "
                    f"max_lines={s.max_lines})"
                )
                break
            self.refiner.converge(new_lines)
            lines = sorted(lines + new_lines, key=lambda ln: ln.t)
        messages = [m for ln in lines for m in ln.messages] + self.messages
        converged = not messages
        wcc = np.stack([ln.wcc for ln in lines])  # type: ignore[misc]
        for end in (0, -1):
            w = wcc[end]
            split = min(
                float(_circ(w[0::2] - w[1::2]).max(initial=0.0)),
                float(_circ(np.roll(w, 1)[0::2] - np.roll(w, 1)[1::2]).max(initial=0.0)),
            )
            if split > s.kramers_tol:
                converged = False
                messages.append(
                    f"WCCs at t={lines[end].t:g} are not Kramers pairs (split {split:.3g}): "
                    f"time reversal is broken or the occupied count is wrong"
                )
        bounds = np.array([ln.e_bounds for ln in lines])
        e_bounds = (
            float(bounds[:, 0].min()), float(bounds[:, 1].max()),
            float(bounds[:, 2].min()), float(bounds[:, 3].min()),
        )  # fmt: skip
        # a line shared with another plane is counted by the plane that made it
        n_kpoints = sum(ln.n_computed for ln in lines if ln.plane == self.plane)
        fixed, value, pump, loop = self.plane
        return PlaneResult(
            fixed, value, pump, loop, np.array([ln.t for ln in lines]), wcc,
            n_kpoints, converged, z2_from_flow(wcc) if converged else None,
            messages, e_bounds,
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
    s = settings or WccSettings()
    others = [a for a in range(3) if a != fixed_axis]
    plane = (fixed_axis, float(fixed_value), others[0], others[1])
    return _PlaneRun(problem, plane, s, LineRefiner(problem, s)).run()


def z2_2d(
    problem: BandProblem, vacuum_axis: int, settings: WccSettings | None = None
) -> list[PlaneResult]:
    """The single plane of a layer: k along the vacuum axis = 0."""
    return [plane_flow(problem, vacuum_axis, 0.0, settings)]


def z2_3d(problem: BandProblem, settings: WccSettings | None = None) -> list[PlaneResult]:
    """The six time-reversal-invariant planes k_i = 0, ½ (i = 1, 2, 3), in that order.

    The starting lines of all six planes (26 distinct with 5 per plane: the edge lines are
    shared) are converged together, one batch of k-points per refinement round.
    """
    s = settings or WccSettings()
    refiner = LineRefiner(problem, s)
    shared: dict[tuple, Line] = {}
    runs = []
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        for value in (0.0, 0.5):
            runs.append(_PlaneRun(problem, (axis, value, others[0], others[1]), s, refiner, shared))
    starting = [run.initial_lines() for run in runs]
    distinct = list({id(ln): ln for lines in starting for ln in lines}.values())
    refiner.converge(distinct)
    return [run.finish(lines) for run, lines in zip(runs, starting, strict=True)]


def indices_3d(planes: list[PlaneResult]) -> tuple[list[int] | None, str | None]:
    """(ν0; ν1 ν2 ν3) from the six planes, or (None, why) if a plane failed or they disagree."""
    if any(p.z2 is None for p in planes):
        return None, "not every time-reversal-invariant plane converged"
    z = {(p.fixed_axis, p.fixed_value): int(p.z2) for p in planes}  # type: ignore[arg-type]
    sums = {(z[(a, 0.0)] + z[(a, 0.5)]) % 2 for a in range(3)}
    if len(sums) != 1:
        return None, f"planes give inconsistent ν0 ({z}): the flow is not converged"
    return [sums.pop(), z[(0, 0.5)], z[(1, 0.5)], z[(2, 0.5)]], None
