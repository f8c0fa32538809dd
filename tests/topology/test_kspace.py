"""BandProblem's Bloch sums over half the translations and its lowest-states solver."""

from __future__ import annotations

import numpy as np

from hamdb.physics.basis import BasisSet
from hamdb.physics.bloch import bloch_matrices
from hamdb.physics.orthogonal import orthonormal_hamiltonian
from hamdb.physics.synthetic import random_hamiltonian
from hamdb.topology import kspace
from hamdb.topology.kspace import BandProblem, _lowest_states, hermitian_half


def test_hermitian_half_is_the_hermitian_part_of_the_full_sum() -> None:
    """Including a translation whose partner −R is missing (its h.c. is implied)."""
    rng = np.random.default_rng(0)
    R = np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 2, -1], [0, -1, 0]])
    m = rng.normal(size=(5, 3, 3)) + 1j * rng.normal(size=(5, 3, 3))
    positive, k0, half = hermitian_half(R, m)
    assert all(tuple(r) > (0, 0, 0) for r in positive.tolist()) and len(positive) == 3
    k = rng.random((4, 3))
    full = np.einsum("kr,rij->kij", np.exp(2j * np.pi * k @ R.T), m)
    full = 0.5 * (full + full.conj().transpose(0, 2, 1))
    a = (np.exp(2j * np.pi * k @ positive.T) @ half).reshape(4, 3, 3)
    np.testing.assert_allclose(k0 + a + a.conj().transpose(0, 2, 1), full, atol=1e-13)


def test_bloch_of_the_problem_matches_physics_bloch(gaas_like) -> None:  # type: ignore[no-untyped-def]
    basis = BasisSet("test-spd", {"Ga": (0, 1, 2), "As": (0, 1)}, {"Ga": 3, "As": 5})
    ham = random_hamiltonian(gaas_like, basis, "soc", 5.0, overlap=True, seed=3)
    problem = BandProblem.from_hamiltonian(ham, occupied=8)
    k = np.random.default_rng(1).random((3, 3))
    hk, sk = bloch_matrices(ham, k)
    expected, _ = orthonormal_hamiltonian(hk, sk, 2)
    assert problem.spin_blocks  # a SOC H with an overlap: the spin-block path
    np.testing.assert_allclose(problem._bloch(k), expected, atol=1e-12)
    # energies only (Cholesky frame): the same eigenvalues
    np.testing.assert_allclose(
        np.linalg.eigvalsh(problem._bloch(k, vectors=False)), np.linalg.eigvalsh(expected),
        atol=1e-10,
    )  # fmt: skip
    np.testing.assert_allclose(problem.eigenvalues(k), np.linalg.eigvalsh(expected), atol=1e-10)
    filtered = BandProblem.from_hamiltonian(ham, occupied=8, s_min=1e-3)
    ref, dropped = orthonormal_hamiltonian(hk, sk, 2, s_min=1e-3)
    np.testing.assert_allclose(filtered._bloch(k), ref, atol=1e-10)
    assert filtered.max_dropped == dropped.max()


def test_lowest_states_subset_solver_equals_full_eigh() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 40, 40)) + 1j * rng.normal(size=(3, 40, 40))
    h = a + a.conj().transpose(0, 2, 1)
    assert kspace.SUBSET_SHARE * 40 >= 9 and kspace.SUBSET_MIN_SIZE <= 40  # the subset path
    w, v = _lowest_states(h, 9)
    w_all, v_all = np.linalg.eigh(h)
    np.testing.assert_allclose(w, w_all[:, :9], atol=1e-12)
    # the same eigenvectors up to phases: equal projectors
    p, p_all = (
        v @ v.conj().transpose(0, 2, 1),
        v_all[:, :, :9] @ v_all[:, :, :9].conj().transpose(0, 2, 1),
    )
    np.testing.assert_allclose(p, p_all, atol=1e-10)
    w_big, _ = _lowest_states(h, 30)  # above the share: the batched solver
    np.testing.assert_allclose(w_big, w_all[:, :30], atol=1e-12)


def test_time_reversal_check_on_the_translations_agrees_with_bloch_sums(
    gaas_like, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The check on K(R) (spin-block layout, with an overlap) answers as the comparison of
    H'(k) with H'(−k) on the sparse path does, for a time-reversal-symmetric H and not."""
    basis = BasisSet("test-spd", {"Ga": (0, 1, 2), "As": (0, 1)}, {"Ga": 3, "As": 5})
    for symmetric in (True, False):
        ham = random_hamiltonian(
            gaas_like, basis, "soc", 5.0, overlap=True, time_reversal=symmetric, seed=5
        )
        dense = BandProblem.from_hamiltonian(ham, occupied=8)
        assert dense.spin_blocks and dense.time_reversal_symmetric is symmetric
        with monkeypatch.context() as m:
            m.setattr(kspace, "DENSE_BYTES", 0)
            sparse = BandProblem.from_hamiltonian(ham, occupied=8)
            assert sparse.hr is None and sparse.time_reversal_symmetric is symmetric
