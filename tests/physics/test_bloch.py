"""H(k), S(k): against the defining sum, hermiticity, periodicity, both gauges, both paths."""

from __future__ import annotations

import numpy as np
import pytest

from hamdb.physics import bloch
from hamdb.physics.bloch import bloch_matrices, state_positions
from hamdb.physics.synthetic import random_hamiltonian


def naive(ham, k):
    """The definition, one block at a time (slow, obviously right)."""
    n = ham.n_states
    ns = ham.n_spin
    start = ham.orbital_starts
    hk = np.zeros((n, n), complex)
    sk = np.zeros((ham.n_orbitals, ham.n_orbitals), complex)
    for e, ((i, j, r), block) in enumerate(ham.blocks()):
        phase = np.exp(2j * np.pi * np.dot(k, r))
        hk[start[i] * ns : start[i + 1] * ns, start[j] * ns : start[j + 1] * ns] += phase * block
        if ham.s is not None:
            sk[start[i] : start[i + 1], start[j] : start[j + 1]] += phase * ham.s_block(e)
    if ham.s is not None and ns == 2:
        sk = np.kron(sk, np.eye(2))
    return hk, (sk if ham.s is not None else None)


@pytest.mark.parametrize("spin", ["none", "soc"])
@pytest.mark.parametrize("dense", [True, False])
def test_matches_definition(gaas_like, spd_basis, spin, dense, monkeypatch):
    if not dense:
        monkeypatch.setattr(bloch, "DENSE_STACK_BUDGET", 0)
    ham = random_hamiltonian(gaas_like, spd_basis, spin, cutoff_angstrom=5.0, overlap=True, seed=3)
    kpts = np.random.default_rng(0).uniform(-1, 1, size=(7, 3))
    hk, sk = bloch_matrices(ham, kpts)
    for n, k in enumerate(kpts):
        want_h, want_s = naive(ham, k)
        np.testing.assert_allclose(hk[n], want_h, atol=1e-12)
        np.testing.assert_allclose(sk[n], want_s, atol=1e-12)
    np.testing.assert_allclose(hk, np.conj(np.swapaxes(hk, 1, 2)), atol=1e-12)


def test_chunks_give_the_same(gaas_like, spd_basis, monkeypatch):
    ham = random_hamiltonian(gaas_like, spd_basis, "soc", cutoff_angstrom=5.0, seed=1)
    kpts = np.random.default_rng(1).uniform(size=(9, 3))
    whole, _ = bloch_matrices(ham, kpts)
    monkeypatch.setattr(bloch, "CHUNK_BUDGET", 1)
    pieces, _ = bloch_matrices(random_hamiltonian(gaas_like, spd_basis, "soc", 5.0, seed=1), kpts)
    np.testing.assert_allclose(pieces, whole, atol=1e-13)


def test_lattice_gauge_is_periodic_atomic_gauge_is_not(gaas_like, spd_basis):
    ham = random_hamiltonian(gaas_like, spd_basis, "soc", cutoff_angstrom=5.0, seed=2)
    k = np.array([[0.13, -0.27, 0.31]])
    g = np.array([[1.0, 0.0, -2.0]])
    h1, _ = bloch_matrices(ham, k)
    h2, _ = bloch_matrices(ham, k + g)
    np.testing.assert_allclose(h1, h2, atol=1e-12)
    a1, _ = bloch_matrices(ham, k, gauge="atomic")
    a2, _ = bloch_matrices(ham, k + g, gauge="atomic")
    # atomic gauge: H(k + G) = V(G)† H(k) V(G), V = diag(e^{2πi G·τ}); atoms sit off the origin
    v = np.exp(2j * np.pi * (state_positions(ham) @ g[0]))
    np.testing.assert_allclose(a2[0], v.conj()[:, None] * a1[0] * v[None, :], atol=1e-12)
    assert np.abs(a2 - a1).max() > 1e-3


def test_atomic_gauge_definition_and_spectrum(gaas_like, spd_basis):
    ham = random_hamiltonian(
        gaas_like, spd_basis, "none", cutoff_angstrom=5.0, overlap=True, seed=4
    )
    k = np.array([0.21, 0.4, -0.1])
    tau = state_positions(ham)
    hk, sk = bloch_matrices(ham, k[None], gauge="atomic")
    want = np.zeros_like(hk[0])
    start = ham.orbital_starts
    frac = ham.structure.frac_coords
    for (i, j, r), block in ham.blocks():
        phase = np.exp(2j * np.pi * np.dot(k, np.add(r, frac[j] - frac[i])))
        want[start[i] : start[i + 1], start[j] : start[j + 1]] += phase * block
    np.testing.assert_allclose(hk[0], want, atol=1e-12)
    assert tau.shape == (ham.n_states, 3)
    lat, lat_s = bloch_matrices(ham, k[None])
    import scipy.linalg

    np.testing.assert_allclose(
        scipy.linalg.eigh(hk[0], sk[0], eigvals_only=True),
        scipy.linalg.eigh(lat[0], lat_s[0], eigvals_only=True),
        atol=1e-10,
    )


def test_rejects_bad_kpoints(gaas_like, spd_basis):
    from hamdb.errors import HamiltonianError

    ham = random_hamiltonian(gaas_like, spd_basis, "none", seed=0)
    with pytest.raises(HamiltonianError, match="k-points"):
        bloch_matrices(ham, np.zeros((4, 2)))
