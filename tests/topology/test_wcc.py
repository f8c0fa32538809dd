"""WCC flow geometry and Wilson loops, against Z2Pack on the same H(k) with atoms off the origin."""

from __future__ import annotations

import numpy as np
import pytest

from hamdb.physics.bloch import bloch_matrices, state_positions
from hamdb.physics.models import bhz, fu_kane_mele, kane_mele
from hamdb.topology.kspace import BandProblem
from hamdb.topology.lines import line_kpoints, max_move, wilson_wcc
from hamdb.topology.wcc import (
    WccSettings,
    _orientation_sign,
    largest_gap,
    plane_flow,
    z2_3d,
    z2_from_flow,
)


def test_largest_gap_wraps_around_the_circle() -> None:
    pos, size = largest_gap(np.array([[0.1, 0.2, 0.9, 0.95]]))
    assert size[0] == pytest.approx(0.7) and pos[0] == pytest.approx(0.55)
    pos, size = largest_gap(np.array([[0.3, 0.4]]))
    assert size[0] == pytest.approx(0.9) and pos[0] == pytest.approx(0.85)


def test_max_move_matches_cyclically() -> None:
    a = np.array([0.05, 0.5])
    assert max_move(a, np.array([0.45, 0.98])) == pytest.approx(0.07)


def test_z2_counts_crossings_and_treats_no_jump_as_even() -> None:
    t = np.linspace(0, 1, 21)
    # a Kramers pair at 0 that separates and winds once: one WCC crosses the gap (nontrivial)
    winding = np.stack([(0.0 + 0.5 * t) % 1, (0.0 - 0.5 * t) % 1], axis=1)
    winding = np.sort(winding, axis=1)
    assert z2_from_flow(winding) == 1
    # the same pair separating and coming back: trivial
    back = np.sort(
        np.stack([0.2 * np.sin(np.pi * t) % 1, -0.2 * np.sin(np.pi * t) % 1], axis=1), axis=1
    )
    assert z2_from_flow(back) == 0
    # gap position constant (the sign function is exactly 0 there): must count as +1, ν = 0
    flat = np.tile([0.25, 0.25, 0.75, 0.75], (len(t), 1))
    assert z2_from_flow(flat) == 0


def test_orientation_is_consistent_when_the_gap_barely_moves() -> None:
    """Gap positions 1e-16 apart (from GPAW Bi2Se3's k3 = ½ plane): every WCC must fall on the
    same side. The sum-of-sines form gave 0 (read as +1) for one WCC and −1 for the others,
    an odd count, and so a false ν = 1 on that plane."""
    g1, g2 = 0.49999999999999956, 0.49999999999999944
    x = np.array([0.0, 0.0, 0.06135, 0.2, 0.40075, 0.59925, 0.8, 0.99999999999999])
    signs = _orientation_sign(np.float64(g1), np.float64(g2), x)
    assert len(set(signs.tolist())) == 1


def _z2pack_system(ham, n_occ: int):
    z2pack = pytest.importorskip("z2pack")
    ham_k = lambda k: bloch_matrices(ham, np.array([k]))[0][0]  # noqa: E731
    overlap = None
    if ham.s is not None:
        overlap = lambda k: bloch_matrices(ham, np.array([k]))[1][0]  # noqa: E731
    return z2pack, z2pack.hm.System(
        hamilton=ham_k, pos=state_positions(ham).tolist(), bands=n_occ, dim=3,
        basis_overlap=overlap, hermitian_tol=1e-6,
    )  # fmt: skip


@pytest.mark.parametrize(
    "ham, plane",
    [
        (kane_mele(lambda_v=0.1), (2, 0.0, 0, 1)),
        (bhz(M=1.0, D=0.3), (2, 0.0, 0, 1)),
        (fu_kane_mele(delta_t1=0.4), (0, 0.5, 1, 2)),
    ],
    ids=["kane_mele", "bhz", "fu_kane_mele"],
)
def test_line_wcc_equal_to_z2pack_with_positions(ham, plane) -> None:
    """Same line, same k-points, atoms off the origin: identical WCCs (the gauge uses τ)."""
    problem = BandProblem.from_hamiltonian(ham)
    z2pack, system = _z2pack_system(ham, problem.n_occupied)
    n_k = 12
    for t in (0.0, 0.37, 0.8):
        k = line_kpoints(plane, np.array([t]), n_k)[0]
        _, u = problem.occupied_states(k)
        g = np.zeros(3)
        g[plane[3]] = 1
        ours = wilson_wcc(u[None], np.exp(-2j * np.pi * problem.tau @ g))[0]
        line = lambda s, k0=k[0], g=g: list(k0 + s * g)  # noqa: E731
        ref = np.sort(
            z2pack.line.run(system=system, line=line, iterator=[n_k + 1], pos_tol=None).wcc
        )
        assert max_move(ours, ref) < 1e-8


def test_plane_z2_equal_to_z2pack_surface() -> None:
    """Kane–Mele, QSH and trivial: Z2Pack's surface run and ours agree on Z2."""
    for lv, expected in ((0.1, 1), (0.4, 0)):
        ham = kane_mele(lambda_v=lv)
        problem = BandProblem.from_hamiltonian(ham)
        z2pack, system = _z2pack_system(ham, problem.n_occupied)
        ref = z2pack.surface.run(system=system, surface=lambda s, u: [s / 2, u, 0])
        ours = plane_flow(problem, 2, 0.0)
        assert ours.converged and ours.z2 == z2pack.invariant.z2(ref) == expected


def test_adaptivity_is_what_gets_kane_mele_right_near_the_transition() -> None:
    """λ_v = 0.28 < 3√3 λ_SO = 0.312: QSH with a small gap at K. Fixed grids of 5 to 21
    lines miss the fast WCC winding there and answer 0; the adaptive run, from 5 lines, adds
    lines where the flow moves and gets 1."""
    problem = BandProblem.from_hamiltonian(kane_mele(lambda_r=0.0, lambda_v=0.28))
    for n in (5, 11, 21):
        assert plane_flow(problem, 2, 0.0, WccSettings(adaptive=False, num_lines=n)).z2 == 0
    adaptive = plane_flow(problem, 2, 0.0)
    assert adaptive.converged and adaptive.z2 == 1
    assert len(adaptive.t) > WccSettings().num_lines == 5


def test_limits_reached_means_not_converged_and_no_z2() -> None:
    problem = BandProblem.from_hamiltonian(kane_mele(lambda_r=0.0, lambda_v=0.28))
    starved = plane_flow(problem, 2, 0.0, WccSettings(min_neighbour_dist=0.04))
    assert not starved.converged and starved.z2 is None and starved.messages


def test_time_reversed_states_match_diagonalised_ones_on_tri_lines() -> None:
    """Θ-derived states at −k give the same WCCs as diagonalising there (FKM, exact TRS)."""
    problem = BandProblem.from_hamiltonian(fu_kane_mele(delta_t1=0.4))
    assert problem.time_reversal_symmetric
    plane = (0, 0.5, 1, 2)
    k = line_kpoints(plane, np.array([1.0]), 16)[0]  # a time-reversal-invariant line
    _, u = problem.occupied_states(k)
    g = np.zeros(3)
    g[2] = 1
    closure = np.exp(-2j * np.pi * problem.tau @ g)
    direct = wilson_wcc(u[None], closure)[0]
    flow = plane_flow(problem, 0, 0.5, WccSettings(num_lines=3, adaptive=False, k_start=16))
    assert max_move(flow.wcc[-1], direct) < 1e-10
    noisy = kane_mele()
    noisy = noisy.with_h(noisy.h + 1e-3 * (noisy.h != 0) * 1j * (np.arange(noisy.h.size) % 3 == 0))
    assert not BandProblem.from_hamiltonian(noisy, hermitian_tol=1.0).time_reversal_symmetric


def test_3d_planes_share_their_edge_lines_and_count_each_k_point_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The six planes converge their starting lines in one batch; an edge line common to two
    planes is computed once, counted once, and seen by both at their own t."""
    problem = BandProblem.from_hamiltonian(fu_kane_mele(delta_t1=0.4))
    seen = [0]
    original = problem.occupied_states

    def counting(k, gauge="atomic"):  # type: ignore[no-untyped-def]
        seen[0] += len(k)
        return original(k, gauge)

    monkeypatch.setattr(problem, "occupied_states", counting)
    planes = z2_3d(problem)
    assert sum(p.n_kpoints for p in planes) == seen[0]
    by_plane = {(p.fixed_axis, p.fixed_value): p for p in planes}
    # k1 = 0, k2 = ½ along k3: t = 1 of the plane k1 = 0, t = 0 of the plane k2 = ½
    a, b = by_plane[(0, 0.0)], by_plane[(1, 0.5)]
    assert a.t[-1] == 1.0 and b.t[0] == 0.0
    np.testing.assert_array_equal(a.wcc[-1], b.wcc[0])
    assert all(np.all(np.diff(p.t) > 0) for p in planes)
