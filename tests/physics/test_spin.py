"""Spin algebra: exact identities (property tests) and time reversal."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hamdb.errors import HamiltonianError
from hamdb.physics.bloch import bloch_matrices
from hamdb.physics.checks import check_hamiltonian
from hamdb.physics.spin import (
    compose,
    decompose,
    soc_correction,
    time_reversal_error,
    time_reversal_error_k,
    to_soc,
)
from hamdb.physics.synthetic import random_hamiltonian

SIGMA = np.array([[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])
seeds = st.integers(min_value=0, max_value=2**31)
EPS = 1e-14


@settings(max_examples=25, deadline=None)
@given(seed=seeds, tr=st.booleans())
def test_compose_inverts_decompose(gaas_like, spd_basis, seed, tr):
    ham = random_hamiltonian(
        gaas_like, spd_basis, "soc", 4.0, overlap=True, time_reversal=tr, seed=seed
    )
    parts = decompose(ham)
    back = compose(*parts)
    np.testing.assert_allclose(back.h, ham.h, rtol=0, atol=EPS * np.abs(ham.h).max())
    np.testing.assert_array_equal(back.edges, ham.edges)
    np.testing.assert_array_equal(back.s, ham.s)
    for part in parts:  # each Pauli component is Hermitian on its own
        check_hamiltonian(part, herm_tol=1e-13)


@settings(max_examples=15, deadline=None)
@given(seed=seeds)
def test_decompose_matches_pauli_sum_in_k(gaas_like, spd_basis, seed):
    ham = random_hamiltonian(gaas_like, spd_basis, "soc", 4.0, time_reversal=False, seed=seed)
    k = np.random.default_rng(seed).uniform(-0.5, 0.5, size=(2, 3))
    h_k, _ = bloch_matrices(ham, k)
    want = sum(
        np.kron(bloch_matrices(p, k)[0][n], SIGMA[a])
        for a, p in enumerate(decompose(ham))
        for n in [0]
    )
    np.testing.assert_allclose(h_k[0], want, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=seeds)
def test_to_soc_is_spin_degenerate(gaas_like, spd_basis, seed):
    ham = random_hamiltonian(gaas_like, spd_basis, "none", 4.0, overlap=True, seed=seed)
    soc = to_soc(ham)
    h0, hx, hy, hz = decompose(soc)
    np.testing.assert_array_equal(h0.h, ham.h)
    for part in (hx, hy, hz):
        assert not part.h.any()
    assert not soc_correction(soc, ham).h.any()
    assert time_reversal_error(soc) == 0.0
    k = np.array([[0.1, 0.2, 0.3]])
    e_none = np.linalg.eigvalsh(bloch_matrices(ham, k)[0][0])
    e_soc = np.linalg.eigvalsh(bloch_matrices(soc, k)[0][0])
    np.testing.assert_allclose(e_soc, np.repeat(e_none, 2), atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=seeds)
def test_soc_correction_adds_back(gaas_like, spd_basis, seed):
    soc = random_hamiltonian(gaas_like, spd_basis, "soc", 4.0, seed=seed)
    plain = random_hamiltonian(gaas_like, spd_basis, "none", 3.0, seed=seed + 1)  # fewer edges
    delta = soc_correction(soc, plain)
    assert delta.n_edges == soc.n_edges  # the union: plain's edges are a subset here
    back = delta.with_h(delta.h + to_soc(plain.on_edges(delta.edges)).h)
    np.testing.assert_allclose(back.h, soc.on_edges(delta.edges).h, atol=1e-14)


def test_time_reversal_real_and_k_space_agree(gaas_like, spd_basis):
    kpts = np.random.default_rng(0).uniform(-1, 1, size=(5, 3))
    good = random_hamiltonian(gaas_like, spd_basis, "soc", 4.0, time_reversal=True, seed=5)
    assert time_reversal_error(good) < 1e-15
    assert time_reversal_error_k(good, kpts) < 1e-12
    h0, hx, hy, hz = decompose(good)
    assert np.abs(h0.h.imag).max() < 1e-15
    for part in (hx, hy, hz):
        assert np.abs(part.h.real).max() < 1e-15
    bad = random_hamiltonian(gaas_like, spd_basis, "soc", 4.0, time_reversal=False, seed=5)
    assert time_reversal_error(bad) > 0.1
    assert time_reversal_error_k(bad, kpts) > 0.1


def test_kramers_pairs_at_trim(gaas_like, spd_basis):
    """Time reversal makes every level at a time-reversal-invariant momentum twofold."""
    ham = random_hamiltonian(gaas_like, spd_basis, "soc", 4.0, time_reversal=True, seed=9)
    h_k, _ = bloch_matrices(ham, np.array([[0.5, 0.0, 0.5], [0.2, 0.1, 0.0]]))
    trim, generic = np.linalg.eigvalsh(h_k)
    np.testing.assert_allclose(trim[0::2], trim[1::2], atol=1e-10)
    assert np.abs(generic[0::2] - generic[1::2]).max() > 1e-3


def test_magnetic_exchange_breaks_time_reversal(gaas_like, spd_basis):
    ham = random_hamiltonian(gaas_like, spd_basis, "soc", 4.0, time_reversal=True, seed=2)
    h0, hx, hy, hz = decompose(ham)
    onsite = np.zeros_like(hz.h)
    for site in range(len(gaas_like)):
        e = hz.edge_index[(site, site, (0, 0, 0))]
        n = int(hz.orbital_counts[site])
        onsite[hz.offsets[e] : hz.offsets[e + 1]] = (0.2 * np.eye(n)).ravel()
    magnet = compose(h0, hx, hy, hz.with_h(hz.h + onsite))
    assert time_reversal_error(magnet) == pytest.approx(0.4)


def test_wrong_spin_kind_is_refused(gaas_like, spd_basis):
    plain = random_hamiltonian(gaas_like, spd_basis, "none", 4.0)
    with pytest.raises(HamiltonianError, match="spin 'soc'"):
        decompose(plain)
    with pytest.raises(HamiltonianError, match="spin 'none'"):
        to_soc(to_soc(plain))
