"""Graded Wilson-loop lines: accuracy against fine even grids, fewer points, symmetric TRI grids."""

from __future__ import annotations

import numpy as np
import pytest

from hamdb.physics.models import kane_mele
from hamdb.topology import lines as lines_module
from hamdb.topology.kspace import BandProblem
from hamdb.topology.lines import (
    Line,
    LineRefiner,
    _poor_overlaps,
    line_kpoints,
    loop_overlaps,
    max_move,
    wcc_of_overlaps,
    wilson_wcc,
)
from hamdb.topology.wcc import WccSettings

PLANE = (2, 0.0, 0, 1)


def _reference(problem: BandProblem, refiner: LineRefiner, t: float) -> np.ndarray:
    k = line_kpoints(PLANE, np.array([t]), 1024)[0]
    _, u = problem.occupied_states(k)
    return wcc_of_overlaps(loop_overlaps(u, refiner.closure(PLANE[3])))


def _converged_line(
    problem: BandProblem, t: float, settings: WccSettings
) -> tuple[Line, LineRefiner]:
    refiner = LineRefiner(problem, settings)
    line = Line(t, refiner.even_grid(settings.k_start), PLANE)
    refiner.converge([line])
    return line, refiner


def test_graded_grid_is_accurate_with_far_fewer_points_near_a_small_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kane–Mele just inside the QSH phase: on the line through K the occupied states turn
    within a small part of the loop. Bisecting where they turn converges with ≤ 16 points;
    bisecting every segment (even doubling) needs 64. Both are within pos_tol/2 of 1024 points.
    """
    problem = BandProblem.from_hamiltonian(kane_mele(lambda_r=0.0, lambda_v=0.28))
    settings = WccSettings()
    graded, refiner = _converged_line(problem, 2 / 3, settings)
    reference = _reference(problem, refiner, 2 / 3)
    assert graded.converged and not graded.messages
    assert graded.n_k <= 16 and graded.n_computed == graded.n_k
    assert max_move(graded.wcc, reference) < settings.pos_tol / 2
    monkeypatch.setattr(lines_module, "MARK_FRACTION", 1.0)  # every segment: even doubling
    even, _ = _converged_line(problem, 2 / 3, settings)
    assert even.n_k >= 64 and max_move(even.wcc, reference) < settings.pos_tol / 2


def test_non_uniform_loop_is_the_same_wilson_loop() -> None:
    """Dropping points of an even grid gives a valid (coarser) loop of the same line."""
    problem = BandProblem.from_hamiltonian(kane_mele())
    closure = LineRefiner(problem, WccSettings()).closure(PLANE[3])
    k = line_kpoints(PLANE, np.array([0.3]), 64)[0]
    _, u = problem.occupied_states(k)
    keep = np.r_[0:20, 20:44:4, 44:64]
    assert max_move(wcc_of_overlaps(loop_overlaps(u[keep], closure)),
                    wilson_wcc(u[None], closure)[0]) < 2e-3  # fmt: skip


def test_time_reversal_invariant_line_stays_mirror_symmetric_and_uses_theta() -> None:
    """A refined TRI line (Kane–Mele, t = 1) keeps p ↔ D − p pairs, diagonalises about half
    of its points, and its WCCs equal those of the same points all diagonalised."""
    problem = BandProblem.from_hamiltonian(kane_mele())
    settings = WccSettings(pos_tol=1e-4)
    line, refiner = _converged_line(problem, 1.0, settings)
    D = refiner.resolution
    assert line.n_k > settings.k_start  # it was refined
    assert set(((D - line.p) % D).tolist()) == set(line.p.tolist())
    assert line.n_computed <= line.n_k // 2 + 1
    k = np.zeros((line.n_k, 3))
    k[:, 0], k[:, 1] = 0.5, line.p / D
    _, u = problem.occupied_states(k)
    direct = wcc_of_overlaps(loop_overlaps(u, refiner.closure(PLANE[3])))
    assert max_move(line.wcc, direct) < 1e-10


def test_poorly_overlapping_segments_are_flagged() -> None:
    unitary = np.stack([np.eye(2), np.array([[0, 1], [1, 0]])]).astype(complex)
    half = np.diag([1.0, 0.3]).astype(complex)[None]
    m = np.concatenate([unitary, half])
    deficit = 2 - (np.abs(m) ** 2).sum(axis=(1, 2))
    assert _poor_overlaps(m, deficit).tolist() == [False, False, True]


def test_k_max_reached_leaves_the_line_not_converged_with_a_message() -> None:
    problem = BandProblem.from_hamiltonian(kane_mele(lambda_r=0.0, lambda_v=0.28))
    line, _ = _converged_line(problem, 2 / 3, WccSettings(pos_tol=1e-5, k_max=12))
    assert line.converged and line.n_k <= 12
    assert line.messages and "k_max=12" in line.messages[0]
