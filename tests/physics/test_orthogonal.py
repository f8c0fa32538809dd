"""Orthonormalised H(k), exact (s_min = 0) and with near-dependent overlap directions filtered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from hamdb.errors import HamiltonianError
from hamdb.physics.bands import eigensystem
from hamdb.physics.bloch import bloch_matrices
from hamdb.physics.orthogonal import (
    SingularOverlapError,
    cholesky_spin_blocks,
    lowdin_transform,
    orthonormal_hamiltonian,
    orthonormal_system,
    spin_block_product,
    to_original_basis,
)
from hamdb.physics.synthetic import random_hamiltonian

BI_HSX = (
    Path(__file__).resolve().parents[2].parent
    / "shared/topology_testdata/sisl-files/Bi_hexagonal/Bi_hexagonal.HSX"
)


def _previous_lowdin(hk: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The Löwdin H' exactly as hamdb.topology.kspace built it before orthogonal.py existed."""
    nk, n = len(hk), hk.shape[-1]
    m = n // 2
    w, v = np.linalg.eigh(s)
    x = (v * w[:, None, :] ** -0.5) @ v.conj().transpose(0, 2, 1)
    blocks = hk.reshape(nk, m, 2, m, 2).transpose(0, 2, 4, 1, 3)
    blocks = x[:, None, None] @ blocks @ x[:, None, None]
    hk = blocks.transpose(0, 3, 1, 4, 2).reshape(nk, n, n)
    return 0.5 * (hk + hk.conj().transpose(0, 2, 1))


@pytest.mark.parametrize("spin", ["none", "soc"])
def test_exact_mode_is_the_previous_lowdin_and_the_generalized_problem(gaas_like, spd_basis, spin):
    ham = random_hamiltonian(gaas_like, spd_basis, spin, 5.0, overlap=True, seed=3)
    k = np.random.default_rng(4).uniform(size=(5, 3))
    hk, sk = bloch_matrices(ham, k)
    spinless = sk[:, :: ham.n_spin, :: ham.n_spin]
    hp, dropped = orthonormal_hamiltonian(hk, spinless, ham.n_spin)
    assert not dropped.any()
    if spin == "soc":  # bit for bit what the topology engine computed before
        np.testing.assert_array_equal(hp, _previous_lowdin(hk, spinless))
        # the spinor S ⊗ σ0 is accepted in place of the spinless S
        np.testing.assert_array_equal(orthonormal_hamiltonian(hk, sk, 2)[0], hp)
    np.testing.assert_array_equal(hp, hp.conj().transpose(0, 2, 1))
    for n in range(len(k)):
        ref = scipy.linalg.eigh(hk[n], sk[n], eigvals_only=True)
        np.testing.assert_allclose(np.linalg.eigvalsh(hp[n]), ref, atol=1e-10)
    # a single matrix works too
    single, count = orthonormal_hamiltonian(hk[0], spinless[0], ham.n_spin)
    np.testing.assert_array_equal(single, hp[0])
    assert count == 0


def _redundant_chain(eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A gapped two-band chain written in a nearly dependent basis, at 9 k-points.

    True orthonormal space: φ_A, φ_B (an ionic chain, bands around ∓2 eV, gap ≈ 2.6 eV) and a
    high orbital χ on each site (+30 eV). Basis: b1 = φ_A, b2 = φ_B, b3 = φ_A + eps·χ_A,
    b4 = φ_B + eps·χ_B (a "double zeta" that barely differs from the first), so S = T†T has two
    eigenvalues ~eps²/2. Returns (k, H(k) = T† h T, S(k) = T†T, exact bands of h restricted
    to φ_A, φ_B (nk, 2)).
    """
    k = np.linspace(0.0, 0.5, 9)
    t = 0.8 * (1 + np.exp(-2j * np.pi * k))  # A–B hopping of the chain
    h = np.zeros((len(k), 4, 4), dtype=complex)  # order φ_A, φ_B, χ_A, χ_B
    h[:, 0, 0], h[:, 1, 1], h[:, 2, 2], h[:, 3, 3] = -2.0, 2.0, 30.0, 30.0
    h[:, 0, 1], h[:, 1, 0] = t, t.conj()
    h[:, 0, 2] = h[:, 2, 0] = 0.3  # weak φ–χ mixing
    h[:, 1, 3] = h[:, 3, 1] = 0.3
    T = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, eps, 0], [0, 0, 0, eps]], dtype=complex)
    H = T.conj().T @ h @ T
    S = np.broadcast_to(T.conj().T @ T, H.shape).copy()
    return k, H, S, np.linalg.eigvalsh(h[:, :2, :2])


def _hermitian_noise(shape: tuple[int, ...], scale: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(scale=scale, size=shape) + 1j * rng.normal(scale=scale, size=shape)
    return 0.5 * (a + a.conj().transpose(0, 2, 1))


def test_filter_removes_the_spurious_in_gap_band_of_a_perturbed_h() -> None:
    """A 2 meV error on H: exact Löwdin puts a band in the 2.6 eV gap (the 1/w ≈ 2e5
    amplification of the near-dependent directions); s_min = 1e-3 drops them and recovers the
    gap and the occupied band to within the error of H."""
    _, H, S, physical = _redundant_chain(eps=1e-2)
    w = np.linalg.eigvalsh(S[0])
    assert w[0] < 1e-4 * w[-1]  # nearly dependent, like GPAW's dzp (3e-5 for Si at Γ)
    noisy = H + _hermitian_noise(H.shape, 2e-3, seed=5)

    exact = np.linalg.eigvalsh(orthonormal_hamiltonian(noisy, S, 1)[0])
    valence, conduction = physical[:, 0].max(), physical[:, 1].min()
    in_gap = (exact > valence + 0.2) & (exact < conduction - 0.2)
    assert in_gap.any() or np.abs(exact[:, 0] - physical[:, 0]).max() > 0.5  # spurious

    hp, dropped = orthonormal_hamiltonian(noisy, S, 1, s_min=1e-3)
    np.testing.assert_array_equal(dropped, 2)
    np.testing.assert_allclose(hp, hp.conj().transpose(0, 2, 1), atol=0)
    filtered = np.linalg.eigvalsh(hp)
    bands = filtered[:, :2]  # the two kept states; the dropped ones sit far above
    assert (filtered[:, 2:] > bands.max() + 1.0).all()
    # kept bands: the φ bands shifted by the weak φ–χ mixing (≤ 0.3²/28 eV) and the error of H
    assert np.abs(bands - physical).max() < 0.01
    assert not ((bands > valence + 0.2) & (bands < conduction - 0.2)).any()


def test_filter_changes_occupied_bands_of_an_exact_h_by_a_measured_small_amount() -> None:
    """Without noise, dropping the near-dependent directions removes only their small share
    of the χ admixture: the occupied band moves by 6.6 meV here (measured), not more."""
    _, H, S, _ = _redundant_chain(eps=1e-2)
    exact = np.linalg.eigvalsh(orthonormal_hamiltonian(H, S, 1)[0])
    filtered = np.linalg.eigvalsh(orthonormal_hamiltonian(H, S, 1, s_min=1e-3)[0])
    shift = np.abs(filtered[:, 0] - exact[:, 0]).max()
    assert 1e-3 < shift < 1e-2


@pytest.mark.skipif(not BI_HSX.exists(), reason="../shared/topology_testdata is absent")
def test_well_conditioned_dft_basis_is_untouched_by_the_filter() -> None:
    """SIESTA SZP Bi(111) (λ_min of S(k) ≈ 0.11, λ_max ≈ 2.3): s_min = 1e-2 drops nothing and
    the eigenvalues are those of the exact solve."""
    from hamdb.io.formats import read_hamiltonian

    ham = read_hamiltonian(BI_HSX, "siesta")
    k = np.random.default_rng(1).random((6, 3)) * [1, 1, 0]
    hk, sk = bloch_matrices(ham, k)
    exact, _ = orthonormal_hamiltonian(hk, sk, 2)
    filtered, dropped = orthonormal_hamiltonian(hk, sk, 2, s_min=1e-2)
    assert not dropped.any()
    np.testing.assert_allclose(np.linalg.eigvalsh(filtered), np.linalg.eigvalsh(exact), atol=1e-12)


@pytest.mark.parametrize("spin", ["none", "soc"])
def test_filtered_bands_and_vectors_through_eigensystem(gaas_like, spd_basis, spin):
    """bands.eigensystem with s_min: S-orthonormal Ritz vectors of the kept space (c†Sc = 1,
    c†Hc = diag E); a threshold below every S eigenvalue gives the exact solve; dropped states
    are NaN, at the end of each k."""
    ham = random_hamiltonian(gaas_like, spd_basis, spin, 5.0, overlap=True, seed=11)
    k = np.random.default_rng(2).uniform(size=(4, 3))
    exact, _ = eigensystem(ham, k)
    tiny, _ = eigensystem(ham, k, vectors=False, s_min=1e-14)
    np.testing.assert_allclose(tiny, exact, atol=1e-9)
    hk, sk = bloch_matrices(ham, k)
    w = np.linalg.eigvalsh(sk)
    s_min = float(np.median(w[:, 0] / w[:, -1])) * 1.5  # drops one direction at some k
    energies, vectors = eigensystem(ham, k, s_min=s_min)
    assert np.isnan(energies).any()
    for n in range(len(k)):
        good = ~np.isnan(energies[n])
        c = vectors[n][:, good]
        np.testing.assert_allclose(c.conj().T @ sk[n] @ c, np.eye(good.sum()), atol=1e-8)
        np.testing.assert_allclose(c.conj().T @ hk[n] @ c, np.diag(energies[n, good]), atol=1e-8)
        assert np.isnan(energies[n, good.sum() :]).all()
        assert not vectors[n][:, ~good].any()


def test_original_basis_vectors_and_errors() -> None:
    _, H, S, _ = _redundant_chain(eps=1e-2)
    hp, x, dropped = orthonormal_system(H, S, 1, s_min=1e-3)
    np.testing.assert_array_equal(dropped, 2)
    _, y = np.linalg.eigh(hp)
    c = to_original_basis(x, y[:, :, :2], 1)
    np.testing.assert_allclose(
        c.conj().transpose(0, 2, 1) @ S @ c, np.broadcast_to(np.eye(2), (9, 2, 2)), atol=1e-10
    )
    singular = S.copy()
    singular[:, 3, :] = singular[:, 2, :] = S[:, 0, :]
    singular[:, :, 3] = singular[:, :, 2] = S[:, :, 0]
    with pytest.raises(SingularOverlapError, match="singular or not positive definite") as info:
        orthonormal_hamiltonian(H, singular, 1)
    assert info.value.index == 0
    broken = S - 2 * np.eye(4)
    with pytest.raises(HamiltonianError, match=r"not positive definite.*broken overlap"):
        orthonormal_hamiltonian(H, broken, 1, s_min=1e-3)
    with pytest.raises(HamiltonianError, match="not S ⊗ σ0"):
        spinor = np.kron(S, np.eye(2))
        spinor[:, 0, 1] = 0.1
        orthonormal_hamiltonian(np.kron(H, np.eye(2)), spinor, 2)


def test_spin_block_products_are_the_spinor_products_from_three_blocks(
    gaas_like, spd_basis
) -> None:
    """(X ⊗ σ0) H (X ⊗ σ0)† from H↑↑, H↑↓, H↓↓ only: the spinor product to round-off, the
    lower-left block exactly the adjoint of the upper-right one. The Cholesky form (energies
    only: spin-block order, lower triangle) has the generalized eigenvalues."""
    ham = random_hamiltonian(gaas_like, spd_basis, "soc", 5.0, overlap=True, seed=3)
    k = np.random.default_rng(4).uniform(size=(5, 3))
    hk, sk = bloch_matrices(ham, k)
    s = sk[:, ::2, ::2]
    blocks = np.stack([hk[:, 0::2, 0::2], hk[:, 0::2, 1::2], hk[:, 1::2, 1::2]], axis=1)
    x = lowdin_transform(s)[0]
    spinor_x = np.kron(x, np.eye(2))
    out = spin_block_product(x, blocks)
    np.testing.assert_allclose(out, spinor_x @ hk @ spinor_x, atol=1e-10)
    np.testing.assert_array_equal(out[:, 1::2, 0::2], out[:, 0::2, 1::2].conj().transpose(0, 2, 1))
    energies_only = cholesky_spin_blocks(s, blocks)
    assert energies_only is not None
    ref = [scipy.linalg.eigh(hk[n], sk[n], eigvals_only=True) for n in range(len(k))]
    np.testing.assert_allclose(np.linalg.eigvalsh(energies_only), ref, atol=1e-10)


def test_cholesky_path_has_the_generalized_eigenvalues_and_the_same_refusals() -> None:
    """Also with a nearly dependent basis (λ_min/λ_max ~ 1e-5) the Cholesky form has the
    eigenvalues of H c = E S c; a singular S is refused at the same k-point as by Löwdin, a
    non-positive one too, and one below the 1e-8 ratio that Cholesky would factor as well."""
    _, H, S, _ = _redundant_chain(eps=1e-2)
    spinor_h = np.kron(H, np.eye(2))
    blocks = np.stack(
        [spinor_h[:, 0::2, 0::2], spinor_h[:, 0::2, 1::2], spinor_h[:, 1::2, 1::2]], 1
    )
    ref = [scipy.linalg.eigh(H[n], S[n], eigvals_only=True).repeat(2) for n in range(len(H))]
    out = cholesky_spin_blocks(S, blocks)
    assert out is not None
    np.testing.assert_allclose(np.linalg.eigvalsh(out), ref, rtol=1e-9, atol=1e-9)
    singular = S.copy()
    singular[4, 3, :] = singular[4, 2, :] = S[4, 0, :]
    singular[4, :, 3] = singular[4, :, 2] = S[4, :, 0]
    for bad in (singular, S - 2 * np.eye(4)):
        with pytest.raises(SingularOverlapError) as chol:
            cholesky_spin_blocks(bad, blocks)
        with pytest.raises(SingularOverlapError) as lowdin:
            lowdin_transform(bad)
        assert chol.value.index == lowdin.value.index
    tiny = np.diag([1.0, 1.0, 1e-9, 1.0])[None]
    with pytest.raises(SingularOverlapError):
        cholesky_spin_blocks(tiny, blocks[:1])
