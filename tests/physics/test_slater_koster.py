"""The Slater–Koster table against an independent construction from the Wigner-D matrices."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hamdb.physics.checks import check_hamiltonian
from hamdb.physics.rotations import wigner_d
from hamdb.physics.slater_koster import sk_block
from hamdb.physics.spin import time_reversal_error

NAMES = "spd"
KEYS = ["sss", "sps", "pps", "ppp", "sds", "pds", "pdp", "dds", "ddp", "ddd"]


def bond_frame(l1: int, l2: int, v: dict[str, float]) -> np.ndarray:
    """The block for a bond along +z: diagonal in m, V_σ (m=0), V_π (|m|=1), V_δ (|m|=2)."""
    e = np.zeros((2 * l1 + 1, 2 * l2 + 1))
    for m in range(-min(l1, l2), min(l1, l2) + 1):
        e[l1 + m, l2 + m] = v[NAMES[l1] + NAMES[l2] + "spd"[abs(m)]]
    return e


@pytest.mark.parametrize("l1", range(3))
@pytest.mark.parametrize("l2", range(3))
def test_table_equals_rotated_bond_frame(l1, l2):
    """E(d) = D(Q) E_z D(Q)ᵀ with Q turning z onto d: the typed table and the computed D agree."""
    rng = np.random.default_rng(10 * l1 + l2)
    v = {
        k: float(rng.normal())
        for k in ["sss", "sps", "pps", "ppp", "sds", "pds", "pdp", "dds", "ddp", "ddd"]
    }
    for _ in range(5):
        d = rng.normal(size=3)
        q = Rotation.align_vectors([d / np.linalg.norm(d)], [[0, 0, 1]])[0].as_matrix()
        if l1 <= l2:
            want = wigner_d(l1, q) @ bond_frame(l1, l2, v) @ wigner_d(l2, q).T
        else:  # E_ab(d) = E_ba(−d)
            q_back = Rotation.align_vectors([-d / np.linalg.norm(d)], [[0, 0, 1]])[0].as_matrix()
            want = (wigner_d(l2, q_back) @ bond_frame(l2, l1, v) @ wigner_d(l1, q_back).T).T
        np.testing.assert_allclose(sk_block(l1, l2, d, v), want, atol=1e-12)


def test_spin_orbit_splitting_of_a_p_shell():
    """λ L·S on a p shell: j = 3/2 at +λ/2 (4 states), j = 1/2 at −λ (2 states)."""
    from pymatgen.core import Lattice, Structure

    from hamdb.physics.basis import BasisSet
    from hamdb.physics.bloch import bloch_matrices
    from hamdb.physics.slater_koster import SlaterKosterModel, slater_koster_hamiltonian

    lone = Structure(Lattice.cubic(20.0), ["Bi"], [[0, 0, 0]])
    basis = BasisSet("p", {"Bi": (1,)})
    model = SlaterKosterModel({"Bi": [0.0]}, {("Bi", "Bi"): {}}, 3.0, 3.0, soc_ev={"Bi": {1: 0.8}})
    ham = slater_koster_hamiltonian(lone, basis, model, "soc")
    check_hamiltonian(ham, herm_tol=1e-12)
    assert time_reversal_error(ham) < 1e-12
    levels = np.linalg.eigvalsh(bloch_matrices(ham, np.zeros((1, 3)))[0][0])
    np.testing.assert_allclose(levels, [-0.8, -0.8, 0.4, 0.4, 0.4, 0.4], atol=1e-10)
