"""Fu–Kane parity: inversion centres, the operator, applicability."""

from __future__ import annotations

import numpy as np
import pytest

from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian
from hamdb.physics.models import bhz, fu_kane_mele, kane_mele
from hamdb.topology.kspace import BandProblem
from hamdb.topology.parity import inversion_map, inversion_matrix, parity_z2


def test_inversion_map_of_the_diamond_lattice() -> None:
    ham = fu_kane_mele()
    perm, L = inversion_map(ham)
    assert perm.tolist() == [1, 0]  # the two sublattices swap
    frac = ham.structure.frac_coords
    c2 = frac[0] + frac[perm[0]]
    for i, p in enumerate(perm):  # −τ_i + 2c = τ_p(i) + L_i
        np.testing.assert_allclose(c2 - frac[i], frac[p] + L[i], atol=1e-9)


def test_inversion_commutes_with_h_at_every_trim_and_squares_to_one() -> None:
    ham = bhz(M=1.0, D=0.3)
    perm, L = inversion_map(ham)
    problem = BandProblem.from_hamiltonian(ham)
    for k in ([0, 0, 0], [0.5, 0, 0], [0.5, 0.5, 0]):
        P = inversion_matrix(ham, perm, L, np.array(k, float))
        hk = problem._bloch(np.array([k], float))[0]
        np.testing.assert_allclose(P @ hk, hk @ P, atol=1e-12)
        np.testing.assert_allclose(P @ P, np.eye(len(P)), atol=1e-12)


def test_wrong_angular_momenta_make_parity_not_applicable() -> None:
    """Declaring BHZ's s+p site as p+s (same orbital count) breaks (−1)^l: refused, not guessed."""
    ham = bhz(M=1.0)
    wrong = BasisSet("wrong-l", {"Hg": (1, 0)}, {"Hg": 2.0})
    relabelled = Hamiltonian.from_blocks(
        ham.structure, wrong, "soc", dict(ham.blocks()), n_electrons=2.0
    )
    result = parity_z2(relabelled, BandProblem.from_hamiltonian(relabelled), 2, 2)
    assert not result.applicable and "breaks the inversion" in result.reason
    good = parity_z2(ham, BandProblem.from_hamiltonian(ham), 2, 2)
    assert good.applicable and good.z2 == [1] and good.max_asymmetry_ev < 1e-12


def test_inversion_breaking_is_measured_and_refused_when_it_could_close_the_gap() -> None:
    """λ_v breaks the A<->B inversion of the honeycomb by 2 λ_v (spectral norm at the TRIMs):
    accepted while below the direct gap 2|3√3 λ_SO − λ_v|, refused beyond (the symmetrised H
    would be another phase)."""
    critical = 3 * np.sqrt(3) * 0.06
    weak = kane_mele(lambda_v=0.1, lambda_r=0.0)
    result = parity_z2(weak, BandProblem.from_hamiltonian(weak), 2, 2, 2 * abs(critical - 0.1))
    assert result.applicable and result.z2 == [1]
    assert result.max_asymmetry_ev == pytest.approx(2 * 0.1, rel=1e-6)
    strong = kane_mele(lambda_v=0.33, lambda_r=0.0)
    result = parity_z2(strong, BandProblem.from_hamiltonian(strong), 2, 2, 2 * abs(critical - 0.33))
    assert not result.applicable and "breaks the inversion" in result.reason
