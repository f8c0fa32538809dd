"""Wigner-D in the DESIGN.md real basis, spin rotations, and the symmetry test of H(R)."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation

from hamdb.physics.basis import BasisSet
from hamdb.physics.rotations import (
    angular_momentum,
    real_harmonics,
    space_group_operations,
    spin_rotation,
    symmetry_error,
    symmetry_report,
    wigner_d,
)
from hamdb.physics.slater_koster import SlaterKosterModel, slater_koster_hamiltonian

SIGMA = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])
KEYS = ["sss", "sps", "pps", "ppp", "sds", "pds", "pdp", "dds", "ddp", "ddd"]


def random_orthogonal(seed: int, improper: bool) -> np.ndarray:
    w = Rotation.random(random_state=seed).as_matrix()
    return -w if improper else w


@pytest.mark.parametrize("l", range(4))
def test_wigner_d_is_an_orthogonal_representation(l):  # noqa: E741
    for seed in range(5):
        a = random_orthogonal(seed, improper=seed % 2 == 1)
        b = random_orthogonal(seed + 10, improper=seed % 3 == 0)
        np.testing.assert_allclose(wigner_d(l, a @ b), wigner_d(l, a) @ wigner_d(l, b), atol=1e-12)
        d = wigner_d(l, a)
        np.testing.assert_allclose(d @ d.T, np.eye(2 * l + 1), atol=1e-12)
    np.testing.assert_allclose(wigner_d(l, -np.eye(3)), (-1) ** l * np.eye(2 * l + 1), atol=1e-12)


@pytest.mark.parametrize("l", range(4))
def test_wigner_d_rotates_the_functions(l):  # noqa: E741
    """Definition: Y(W⁻¹ r) = Y(r) D(W) at arbitrary points (not the fitting samples)."""
    w = random_orthogonal(3, improper=True)
    r = np.random.default_rng(1).normal(size=(20, 3))
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    np.testing.assert_allclose(
        real_harmonics(l, r @ w), real_harmonics(l, r) @ wigner_d(l, w), atol=1e-12
    )


def test_harmonics_are_orthonormal_and_in_design_order():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(200_000, 3))
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    for l in range(4):  # noqa: E741
        y = real_harmonics(l, r)
        gram = 4 * np.pi * y.T @ y / len(r)
        np.testing.assert_allclose(gram, np.eye(2 * l + 1), atol=0.03)
    point = np.array([[0.48, 0.6, 0.64]])  # x, y, z all positive and distinct
    x, y, z = point[0]
    p = real_harmonics(1, point)[0]
    np.testing.assert_allclose(p / p[0], [1, z / y, x / y])  # (p_y, p_z, p_x)
    d = real_harmonics(2, point)[0]
    np.testing.assert_allclose(d[[0, 1, 3]] / d[0], [1, y * z / (x * y), x * z / (x * y)])
    assert d[2] > 0 and d[4] < 0  # 3z² − 1 > 0 and x² − y² < 0 here: positive coefficients


def test_quarter_turn_sends_px_to_py():
    """A rotation by +90° about z carries the function x to y (active rotation)."""
    w = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    d = wigner_d(1, w)
    np.testing.assert_allclose(d[:, 2], [1, 0, 0], atol=1e-12)  # p_x -> p_y
    np.testing.assert_allclose(d[:, 0], [0, 0, -1], atol=1e-12)  # p_y -> -p_x


def test_spin_rotation_turns_pauli_vector_like_space():
    for seed in range(4):
        w = random_orthogonal(seed, improper=seed % 2 == 1)
        u = spin_rotation(w)
        proper = w * np.linalg.det(w)
        for a in range(3):
            rotated = u @ SIGMA[a] @ u.conj().T
            np.testing.assert_allclose(
                rotated, np.einsum("b,bij->ij", proper[:, a], SIGMA), atol=1e-12
            )
    a, b = random_orthogonal(1, False), random_orthogonal(2, False)
    prod, sep = spin_rotation(a @ b), spin_rotation(a) @ spin_rotation(b)
    assert min(np.abs(prod - sep).max(), np.abs(prod + sep).max()) < 1e-12  # double cover: ±


@pytest.mark.parametrize("l", [1, 2, 3])
def test_angular_momentum(l):  # noqa: E741
    big_l = angular_momentum(l)
    l2 = sum(big_l[a] @ big_l[a] for a in range(3))
    np.testing.assert_allclose(l2, l * (l + 1) * np.eye(2 * l + 1), atol=1e-10)
    np.testing.assert_allclose(big_l[0] @ big_l[1] - big_l[1] @ big_l[0], 1j * big_l[2], atol=1e-10)
    w = random_orthogonal(5, improper=False)
    d = wigner_d(l, w)
    for a in range(3):  # L is a vector operator: D L_a Dᵀ = Σ_b W_ba L_b
        np.testing.assert_allclose(
            d @ big_l[a] @ d.T, np.einsum("b,bij->ij", w[:, a], big_l), atol=1e-9
        )
    if l == 1:  # L_z = −i ∂φ: L_z p_x = i p_y
        assert big_l[2][0, 2] == pytest.approx(1j)


# -- the symmetry test on models symmetric by construction ---------------------------------------
@pytest.fixture(scope="module")
def integrals():
    rng = np.random.default_rng(0)
    return {k: float(rng.normal()) for k in KEYS}


def wurtzite() -> Structure:
    """GaN-like wurtzite, P6_3mc: 3-fold axes in a non-orthogonal cell, a screw axis."""
    a, c, u = 3.19, 5.19, 0.377
    return Structure(
        Lattice.hexagonal(a, c),
        ["Ga", "Ga", "N", "N"],
        [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, u], [2 / 3, 1 / 3, 0.5 + u]],
    )


@pytest.fixture(scope="module")
def si_soc(integrals):
    basis = BasisSet("sk-spd", {"Si": (0, 1, 2)}, {"Si": 4})
    model = SlaterKosterModel(
        {"Si": [-5.0, 1.0, 6.0]}, {("Si", "Si"): integrals}, 2.35, 4.0,
        soc_ev={"Si": {1: 0.3, 2: 0.1}},
    )  # fmt: skip
    return basis, model


def test_diamond_spd_soc_is_symmetric(si_soc, diamond):
    basis, model = si_soc
    for spin in ("none", "soc"):
        ham = slater_koster_hamiltonian(diamond(), basis, model, spin)
        report = symmetry_report(ham)
        assert report.n_operations == 48
        assert report.error_ev < 1e-10, report.describe()


def test_rotated_frame_is_still_symmetric(si_soc, diamond):
    """Cartesian operations are not signed permutations in a rotated frame."""
    basis, model = si_soc
    ham = slater_koster_hamiltonian(diamond(random_orthogonal(7, False)), basis, model, "soc")
    assert symmetry_error(ham) < 1e-10


def test_wurtzite_two_species_is_symmetric(integrals):
    basis = BasisSet("sk", {"Ga": (0, 1, 2), "N": (0, 1)}, {"Ga": 3, "N": 5})
    other = {k: v * 0.7 + 0.1 for k, v in integrals.items()}
    model = SlaterKosterModel(
        {"Ga": [-3.0, 2.0, -12.0], "N": [-10.0, 0.5]},
        {("Ga", "N"): integrals, ("Ga", "Ga"): other, ("N", "N"): other},
        1.95, 3.3, soc_ev={"Ga": {1: 0.1, 2: 0.05}, "N": {1: 0.02}},
    )  # fmt: skip
    structure = wurtzite()
    assert len(space_group_operations(structure)) == 12
    ham = slater_koster_hamiltonian(structure, basis, model, "soc")
    assert symmetry_error(ham) < 1e-10


def _permute_orbitals(ham, element: str, perm: np.ndarray, signs: np.ndarray):
    """What a reader with a wrong orbital order or sign would produce: P H P for one element."""
    blocks = {}
    n_spin = ham.n_spin
    for key, block in ham.blocks():
        i, j, _ = key
        b = block.copy()
        if ham.species[i] == element:
            p = np.kron(np.diag(signs)[perm], np.eye(n_spin))
            b = p @ b
        if ham.species[j] == element:
            p = np.kron(np.diag(signs)[perm], np.eye(n_spin))
            b = b @ p.T
        blocks[key] = b
    return type(ham).from_blocks(ham.structure, ham.basis, ham.spin, blocks)


@pytest.mark.parametrize(
    "perm, signs",
    [
        ([2, 1, 0, 3, 4, 5, 6, 7, 8], None),  # s <-> p_z
        ([0, 3, 2, 1, 4, 5, 6, 7, 8], None),  # p_y <-> p_x: the (x, y, z) vs (y, z, x) mix-up
        ([0, 1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 1, -1, 1, 1, 1, 1, 1]),  # p_x sign flipped
        ([0, 1, 2, 3, 8, 5, 6, 7, 4], None),  # d_xy <-> d_x²−y²
        ([0, 1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 1, 1, 1, 1, -1, 1, 1]),  # d_z² sign flipped
    ],
)
def test_one_wrong_orbital_or_sign_fails(si_soc, diamond, perm, signs):
    basis, model = si_soc
    ham = slater_koster_hamiltonian(diamond(), basis, model, "none")
    signs = np.ones(9) if signs is None else np.asarray(signs, float)
    bad = _permute_orbitals(ham, "Si", np.asarray(perm), signs)
    report = symmetry_report(bad)
    assert report.error_ev > 1e-2, report.describe()
    assert "W=" in report.operation and len(report.edge) == 5


def test_spin_mix_up_fails(si_soc, diamond):
    """↑ and ↓ exchanged (blocked/interleaved confusion): σx H σx is no longer symmetric."""
    basis, model = si_soc
    ham = slater_koster_hamiltonian(diamond(), basis, model, "soc")
    flip = {}
    for key, block in ham.blocks():
        n = block.shape[0] // 2
        sx = np.kron(np.eye(n), SIGMA[0])
        m = block.shape[1] // 2
        flip[key] = sx @ block @ np.kron(np.eye(m), SIGMA[0])
    bad = type(ham).from_blocks(ham.structure, ham.basis, "soc", flip)
    assert symmetry_error(bad) > 1e-2


def test_missing_symmetric_partner_is_reported(si_soc, diamond):
    basis, model = si_soc
    ham = slater_koster_hamiltonian(diamond(), basis, model, "none")
    drop = next(k for k in ham.edge_index if k[0] != k[1] and k[2] == (0, 0, 0))
    reverse = (drop[1], drop[0], (0, 0, 0))
    blocks = {k: b for k, b in ham.blocks() if k not in (drop, reverse)}
    report = symmetry_report(type(ham).from_blocks(ham.structure, basis, "none", blocks))
    assert report.error_ev > 1e-2 and report.target_missing
