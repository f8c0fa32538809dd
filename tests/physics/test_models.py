"""The analytic reference models: Hermitian, time-reversal symmetric, atoms where they belong,
and gaps that close exactly where the cited papers put the transitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hamdb.physics.bloch import bloch_matrices, dense_hr
from hamdb.physics.models import bhz, bhz_z2, fu_kane_mele, fu_kane_mele_z2, kane_mele, kane_mele_z2

MODELS = {
    "kane_mele": lambda: kane_mele(lambda_r=0.05, lambda_v=0.1),
    "bhz": lambda: bhz(M=1.0, D=0.2),
    "fu_kane_mele": lambda: fu_kane_mele(delta_t1=0.4),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_hermitian_in_real_space(name: str) -> None:
    R, h, _ = dense_hr(MODELS[name]())
    index = {tuple(r): n for n, r in enumerate(R.tolist())}
    for n, r in enumerate(R.tolist()):
        partner = index[tuple(-x for x in r)]
        np.testing.assert_allclose(h[n], h[partner].conj().T, atol=1e-12)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_time_reversal_symmetric(name: str) -> None:
    """Θ H(k) Θ⁻¹ = H(−k) with Θ = (1 ⊗ iσ_y) K in the interleaved spinor order."""
    ham = MODELS[name]()
    k = np.random.default_rng(1).random((5, 3))
    hk, _ = bloch_matrices(ham, k)
    hmk, _ = bloch_matrices(ham, -k)
    theta = np.kron(np.eye(ham.n_orbitals), 1j * np.array([[0, -1j], [1j, 0]]))
    np.testing.assert_allclose(theta @ hk.conj() @ theta.conj().T, hmk, atol=1e-12)
    # and SOC is really there: the spin-up/down blocks are not copies of a real matrix
    assert np.abs(hk[:, 0::2, 0::2] - hk[:, 1::2, 1::2]).max() > 1e-3


@pytest.mark.parametrize("name", sorted(MODELS))
def test_atoms_off_origin_and_electrons(name: str) -> None:
    ham = MODELS[name]()
    assert np.all(np.abs(ham.structure.frac_coords).sum(axis=1) > 0.1)
    assert ham.spin == "soc" and ham.n_electrons == 2.0
    assert ham.basis.n_valence(ham.species) == ham.n_electrons


def _gap_at(ham, k: list[float], n_occ: int = 2) -> float:
    e = np.linalg.eigvalsh(bloch_matrices(ham, np.array([k]))[0])[0]
    return float(e[n_occ] - e[n_occ - 1])


def test_kane_mele_gap_closes_at_k_on_the_published_boundary() -> None:
    """At λ_R = 0 the gap at K is 2|3√3 λ_SO − λ_v| (Kane & Mele 2005): zero on the boundary."""
    so = 0.06
    for lv in (0.1, 0.25, 3 * math.sqrt(3) * so, 0.4):
        gap = _gap_at(kane_mele(lambda_so=so, lambda_r=0.0, lambda_v=lv), [1 / 3, 2 / 3, 0])
        assert gap == pytest.approx(2 * abs(3 * math.sqrt(3) * so - lv), abs=1e-9)
    assert kane_mele_z2(so, 0.25) == 1 and kane_mele_z2(so, 0.4) == 0


def test_bhz_mass_at_the_trims() -> None:
    """The gap at Γ, X and M is 2|M|, 2|M − 4B|, 2|M − 8B| (BHZ lattice form, A-terms vanish)."""
    B = 1.0
    for M in (-1.0, 1.0, 3.0, 6.0, 9.0):
        ham = bhz(M=M, B=B)
        for k, mass in (([0, 0, 0], M), ([0.5, 0, 0], M - 4 * B), ([0.5, 0.5, 0], M - 8 * B)):
            assert _gap_at(ham, k) == pytest.approx(2 * abs(mass), abs=1e-9)
    assert [bhz_z2(M, 1.0) for M in (-1, 1, 5, 9)] == [0, 1, 1, 0]


def test_fu_kane_mele_gap_closes_at_x_and_l() -> None:
    """f(X) = iδt1 and f(L_111) ∝ 2t − δt1: the gap closes at δt1 = 0 (X) and 2t (L)."""
    assert _gap_at(fu_kane_mele(delta_t1=0.0), [0.5, 0.5, 0.0]) < 1e-9
    assert _gap_at(fu_kane_mele(delta_t1=2.0), [0.5, 0.5, 0.5]) < 1e-9
    assert _gap_at(fu_kane_mele(delta_t1=0.3), [0.5, 0.5, 0.0]) == pytest.approx(0.6, abs=1e-9)
    assert fu_kane_mele_z2(0.3) == (1, 1, 1, 1) and fu_kane_mele_z2(-0.3) == (0, 1, 1, 1)
    with pytest.raises(ValueError, match="transition"):
        fu_kane_mele_z2(0.0)
