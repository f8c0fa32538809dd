"""Band gap and direct gap (eV) between band n_occ − 1 and band n_occ, refined near the edges.

A Γ-centred mesh (a multiple of 6 points per periodic axis, so that Γ, M, K, X, L-type points
are on it) finds the candidate band edges: only its points irreducible under the crystal's
point group and time reversal when H is checked to share that symmetry, else one of each k,
−k pair (E(k) = E(−k) under time reversal, which Z2 presumes anyway). Each edge is then
refined around its best mesh points (two in 2D, one in 3D) by a shrinking pattern search
(local grids of the centre, ±e_a and ±e_a ± e_b: 9 points in 2D, 19 in 3D; step halved each
round) that also probes the minimum of the quadratic through each grid (a Newton step: a
smooth edge between mesh points is reached in a round or two, where halving alone gains a
bit per round; the 3D corners, which a quadratic does not need, cost 8 of 27 points and
found no lower edge on Si or Bi2Se3), the unique k-points of all targets of a
round diagonalised in one batch, until a point stays best and that quadratic, cross terms
included, promises less than REFINE_TOL_EV (an edge on a mesh point is settled after one
round; a cusp there, as from InAs' linear-in-k splitting, can hide 0.04 meV). Edges on
kinks or rings (Bi(111), 1T'-MoS2) take every round. The true edges can only be
lower/higher than found, so the gap is an upper bound that the Wilson-loop k-points tighten
further (`GapResult.tightened`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from hamdb.topology.kspace import BandProblem

#: Mesh points compared with their symmetry images to measure H's asymmetry.
SYMMETRY_CHECKS = 12
#: Below this N²·(N + n_R) (N states, n_R translations) the whole time-reversal half costs
#: less than spglib's symmetry search (2-5 ms on a cubic cell): Fu–Kane–Mele (4 states) 2.6 ms
#: for its 868 points; a 16-state sp3 model already 20 ms, 11 ms with the symmetry.
SYMMETRY_MIN_WORK = 1_000
#: Above this asymmetry (eV) of band-edge energies the crystal's symmetry is not used.
SYMMETRY_TOL_EV = 0.01
#: spglib's tolerance (Å) for the crystal's symmetry.
SYMPREC = 1e-3
#: A refinement stops where the quadratic through its stencil promises less than this (eV).
REFINE_TOL_EV = 1e-5
#: A Newton step of the stencil's quadratic is probed when it stays within this many steps.
NEWTON_REACH = 2.0


@dataclass(frozen=True)
class GapResult:
    """Band edges in eV and where they are (fractional k)."""

    vbm_ev: float
    cbm_ev: float
    direct_gap_ev: float
    k_vbm: tuple[float, float, float]
    k_cbm: tuple[float, float, float]
    k_direct: tuple[float, float, float]
    n_kpoints: int

    @property
    def gap_ev(self) -> float:
        return self.cbm_ev - self.vbm_ev

    def tightened(
        self, max_occupied_ev: float, min_empty_ev: float, min_direct_ev: float
    ) -> GapResult:
        """The same edges, moved by band extrema seen elsewhere (e.g. on Wilson lines)."""
        return replace(
            self,
            vbm_ev=max(self.vbm_ev, max_occupied_ev),
            cbm_ev=min(self.cbm_ev, min_empty_ev),
            direct_gap_ev=min(self.direct_gap_ev, min_direct_ev),
        )


def mesh_size(
    reciprocal_lengths: np.ndarray, periodic: list[int], spacing: float, cap: int
) -> list[int]:
    """Points per axis: |b_i|/spacing rounded up to a multiple of 6, 1 on non-periodic axes."""
    n = [1, 1, 1]
    for axis in periodic:
        n[axis] = max(6, 6 * int(np.ceil(reciprocal_lengths[axis] / spacing / 6)))
    while np.prod(n) > cap and max(n) > 6:
        n = [max(6, x - 6) if x > 1 and x == max(n) else x for x in n]
    return n


def _scores(energies: np.ndarray, n_occ: int) -> np.ndarray:
    """What each target minimises: −E_v (VBM), E_c (CBM), E_c − E_v (direct gap)."""
    ev, ec = energies[:, n_occ - 1], energies[:, n_occ]
    return np.stack([-ev, ec, ec - ev], axis=1)


def _half_by_time_reversal(grid: np.ndarray, n: list[int]) -> np.ndarray:
    """One of each pair k, −k (E(k) = E(−k) with time reversal, which Z2 presumes anyway)."""
    index = np.round(grid * np.array(n)).astype(np.int64)
    partner = (-index) % np.array(n)
    flat = lambda i: (i[:, 0] * n[1] + i[:, 1]) * n[2] + i[:, 2]  # noqa: E731
    return grid[flat(index) <= flat(partner)]


def stencil_offsets(periodic: list[int]) -> np.ndarray:
    """(n, 3) integer offsets of a quadratic's stencil on the periodic axes, centre first.

    Centre, ±e_a and ±e_a ± e_b (no three-axis corners): exactly the points whose central
    differences give the gradient and every second derivative, 9 in 2D and 19 in 3D.
    """
    steps = [(-1, 0, 1) if a in periodic else (0,) for a in range(3)]
    out = [o for o in itertools.product(*steps) if sum(x != 0 for x in o) <= 2]
    out.sort(key=lambda o: sum(x != 0 for x in o))
    return np.array(out)


def quadratic_model(
    vals: np.ndarray, centre: np.ndarray, offsets: np.ndarray, periodic: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """(gradient (n, d), Hessian (n, d, d)) in stencil steps from values at `offsets`.

    Central differences: g_a = (f(+a) − f(−a))/2, C_aa = f(+a) + f(−a) − 2 f0,
    C_ab = (f(+a+b) − f(+a−b) − f(−a+b) + f(−a−b))/4; exact for a quadratic.
    """
    where = {tuple(o): i for i, o in enumerate(offsets.tolist())}

    def at(*pairs: tuple[int, int]) -> np.ndarray:
        o = [0, 0, 0]
        for axis, sign in pairs:
            o[axis] = sign
        return vals[:, where[tuple(o)]]

    d = len(periodic)
    g = np.empty((len(vals), d))
    c = np.empty((len(vals), d, d))
    for i, a in enumerate(periodic):
        plus, minus = at((a, 1)), at((a, -1))
        g[:, i] = (plus - minus) / 2
        c[:, i, i] = plus + minus - 2 * centre
        for j, b in enumerate(periodic[:i]):
            c[:, i, j] = c[:, j, i] = (
                at((a, 1), (b, 1)) - at((a, 1), (b, -1)) - at((a, -1), (b, 1))
                + at((a, -1), (b, -1))
            ) / 4  # fmt: skip
    return g, c


def newton_step(g: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(step δ = −C⁻¹g (n, d), promised gain ½ gᵀC⁻¹g (n,)) of quadratic models.

    Where C is not positive definite (a maximum, a saddle, a kink) the gain is infinite and
    the step NaN: the model promises nothing that can be trusted.
    """
    positive = np.linalg.eigvalsh(c)[:, 0] > 0
    step = np.full(g.shape, np.nan)
    gain = np.full(len(g), np.inf)
    if positive.any():
        step[positive] = -np.linalg.solve(c[positive], g[positive][..., None])[..., 0]
        gain[positive] = -0.5 * np.einsum("nd,nd->n", g[positive], step[positive])
    return step, gain


def _irreducible(
    problem: BandProblem, structure: Structure | None, n: list[int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """(k-points, their scores) standing in for the whole mesh, or None (use the TRS half).

    The crystal's point group with time reversal (spglib) maps the mesh onto far fewer
    points (Si 1728 -> 72, Bi2Se3 864 -> 161). A computed H is symmetric only to its noise
    (GPAW's grid ~1 meV, SIESTA Bi(111) ~1 meV, a Wannier H without symmetrisation tens of
    meV), so the band-edge energies at SYMMETRY_CHECKS points and their images give δ, the
    asymmetry: above SYMMETRY_TOL_EV the symmetry is not used. Otherwise every image of the
    points whose score is within 2δ + 1e-4 eV of a target's best is diagonalised too, so the
    mesh optimum of the actual H is found (the optimum lies in a star whose representative is
    within δ of the best representative).
    """
    if structure is None:
        return None
    import spglib

    cell = (
        np.asarray(structure.lattice.matrix),
        np.asarray(structure.frac_coords),
        [site.specie.Z for site in structure],
    )
    found = spglib.get_ir_reciprocal_mesh(n, cell, is_shift=[0, 0, 0], symprec=SYMPREC)
    if found is None:
        return None
    mapping, address = (np.asarray(x) for x in found)
    kpts = address / np.asarray(n, dtype=float)
    representatives = np.unique(mapping)
    if len(kpts) / 2 < 2 * (len(representatives) + 2 * SYMMETRY_CHECKS):
        return None  # a small saving on the TRS half does not pay for the checks
    n_occ = problem.n_occupied
    images = np.flatnonzero(mapping != np.arange(len(mapping)))
    pick = np.random.default_rng(0).choice(images, min(SYMMETRY_CHECKS, len(images)), False)
    both = _scores(problem.eigenvalues(np.concatenate([kpts[pick], kpts[mapping[pick]]])), n_occ)
    delta = float(np.abs(both[: len(pick)] - both[len(pick) :]).max(initial=0.0))
    if delta > SYMMETRY_TOL_EV:
        return None
    scores = _scores(problem.eigenvalues(kpts[representatives]), n_occ)
    if delta < 1e-9:
        return kpts[representatives], scores
    window = scores <= scores.min(axis=0) + 2 * delta + 1e-4  # (n_rep, 3)
    stars = np.isin(mapping, representatives[window.any(axis=1)])
    extra = np.flatnonzero(stars & (mapping != np.arange(len(mapping))))
    if len(extra) * 2 > len(kpts):
        return None
    extra_scores = _scores(problem.eigenvalues(kpts[extra]), n_occ)
    return (
        np.concatenate([kpts[representatives], kpts[extra]]),
        np.concatenate([scores, extra_scores]),
    )


def band_gap(
    problem: BandProblem,
    reciprocal_lengths: np.ndarray,
    periodic: list[int],
    spacing: float = 0.2,
    max_mesh: int = 3000,
    rounds: int = 6,
    structure: Structure | None = None,
) -> GapResult:
    """Indirect and direct gap around the occupied count of `problem`.

    reciprocal_lengths: |b_i| in 1/Å (with 2π); periodic: axes with dispersion; spacing: mesh
    spacing in 1/Å; rounds: halvings of the refinement step; structure: the crystal, whose
    symmetry (when H has it) reduces the mesh to its irreducible points.
    """
    n_occ = problem.n_occupied
    n = mesh_size(reciprocal_lengths, periodic, spacing, max_mesh)
    work = problem.n_states**2 * (problem.n_states + len(problem.R))
    reduced = _irreducible(problem, structure, n) if work >= SYMMETRY_MIN_WORK else None
    if reduced is not None:
        grid, scores = reduced
        count = len(grid) + 2 * min(SYMMETRY_CHECKS, len(grid))
    else:
        grid = np.stack(np.meshgrid(*[np.arange(m) / m for m in n], indexing="ij"), axis=-1)
        grid = _half_by_time_reversal(grid.reshape(-1, 3), n)
        scores = _scores(problem.eigenvalues(grid), n_occ)  # (n_k, 3): −E_v, E_c, E_c − E_v
        count = len(grid)
    offsets = stencil_offsets(periodic)
    # The starting points of all targets (VBM, CBM, direct) are refined together: one batch
    # of unique k-points per stencil and one per Newton probe, whichever targets share them.
    # Two starting points per target in 2D, one in 3D (stencils are dear there).
    per_target = 2 if len(periodic) < 3 else 1
    target = np.repeat(np.arange(3), per_target)
    order = np.argsort(scores, axis=0)[:per_target].T.reshape(-1)
    starts = grid[order]
    current = scores[order, target]
    h = 0.5 / np.array(n, dtype=float)
    active = np.ones(len(starts), dtype=bool)

    def evaluate(kpts: np.ndarray, targets: np.ndarray) -> np.ndarray:
        nonlocal count
        unique, inverse = np.unique(np.round(kpts, 12), axis=0, return_inverse=True)
        count += len(unique)
        values = _scores(problem.eigenvalues(unique), n_occ)[inverse.reshape(-1)]
        return values[np.arange(len(kpts)), targets]

    for _ in range(rounds):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        trial = starts[idx, None, :] + offsets[None, 1:, :] * h
        vals = evaluate(trial.reshape(-1, 3), np.repeat(target[idx], len(offsets) - 1))
        vals = np.concatenate([current[idx, None], vals.reshape(len(idx), -1)], axis=1)
        g, c = quadratic_model(vals, current[idx], offsets, periodic)
        step, gain = newton_step(g, c)
        pick = np.argmin(vals, axis=1)
        better = vals[np.arange(len(idx)), pick] < current[idx]
        # a centre that stays best, with a quadratic model that leaves less than
        # REFINE_TOL_EV to gain, is done: a gap is certain to that precision
        settled = ~better & (gain < REFINE_TOL_EV)
        centre = starts[idx].copy()
        starts[idx[better]] = trial[better, pick[better] - 1]
        current[idx] = vals.min(axis=1)
        # where the model has a minimum near the stencil, probe it: a smooth edge is then
        # reached in one or two rounds instead of a halving step per digit
        probe = ~settled & (np.abs(step).max(axis=1, initial=0.0) <= NEWTON_REACH)
        if probe.any():
            full = np.zeros((int(probe.sum()), 3))
            full[:, periodic] = step[probe]
            kp = centre[probe] + full * h
            found = evaluate(kp, target[idx[probe]])
            win = found < current[idx[probe]]
            starts[idx[probe][win]] = kp[win]
            current[idx[probe][win]] = found[win]
        h = h / 2
        active[idx[settled]] = False
    best = {}
    for t, name in enumerate(("vbm", "cbm", "direct")):
        mine = np.flatnonzero(target == t)
        winner = mine[int(np.argmin(current[mine]))]
        best[name] = (float(current[winner]), starts[winner] % 1.0)
    as_k = lambda v: tuple(float(x) for x in v)  # noqa: E731
    return GapResult(
        vbm_ev=-best["vbm"][0],
        cbm_ev=best["cbm"][0],
        direct_gap_ev=best["direct"][0],
        k_vbm=as_k(best["vbm"][1]),
        k_cbm=as_k(best["cbm"][1]),
        k_direct=as_k(best["direct"][1]),
        n_kpoints=count,
    )
