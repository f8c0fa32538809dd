"""Bands: generalized eigenproblem, S(k) guard, k-paths in the given cell, gaps, Fermi level."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation

from hamdb.errors import HamiltonianError
from hamdb.physics.bands import (
    band_gap,
    eigensystem,
    eigenvalues,
    fermi_level,
    kmesh,
    kpath,
    n_occupied,
    plot_bands,
    summarize,
)
from hamdb.physics.basis import BasisSet
from hamdb.physics.bloch import bloch_matrices
from hamdb.physics.hamiltonian import Hamiltonian
from hamdb.physics.slater_koster import SlaterKosterModel, slater_koster_hamiltonian
from hamdb.physics.synthetic import random_hamiltonian


def ssh_chain(t1: float, t2: float) -> Hamiltonian:
    """Su–Schrieffer–Heeger chain along a1 (vacuum along a2, a3): gap 2|t1 − t2| at k = 1/2."""
    structure = Structure(
        Lattice.orthorhombic(4.0, 15.0, 15.0), ["H", "H"], [[0, 0, 0], [0.5, 0, 0]]
    )
    basis = BasisSet("s", {"H": (0,)}, {"H": 1})
    z = np.zeros((1, 1))
    blocks = {
        (0, 0, (0, 0, 0)): z, (1, 1, (0, 0, 0)): z,
        (0, 1, (0, 0, 0)): z + t1, (1, 0, (0, 0, 0)): z + t1,
        (1, 0, (1, 0, 0)): z + t2, (0, 1, (-1, 0, 0)): z + t2,
    }  # fmt: skip
    return Hamiltonian.from_blocks(structure, basis, "none", blocks, n_electrons=2.0)


def test_ssh_gap_and_fermi_level():
    ham = ssh_chain(-1.0, -0.6)
    k = kmesh((40, 1, 1))
    eigs = eigenvalues(ham, k)
    np.testing.assert_allclose(eigs[:, 0], -np.abs(-1.0 - 0.6 * np.exp(2j * np.pi * k[:, 0])))
    assert n_occupied(ham) == 1
    gap, direct = band_gap(eigs, 1)
    assert gap == pytest.approx(0.8) and direct == pytest.approx(0.8)
    assert fermi_level(eigs, 2.0, 2) == pytest.approx(0.0, abs=1e-12)
    summary = summarize(ham, eigs)
    assert summary.vbm_ev == pytest.approx(-0.4) and summary.cbm_ev == pytest.approx(0.4)


def test_metal_has_zero_gap_and_fermi_level_inside_band():
    ham = ssh_chain(-1.0, -1.0)  # undimerised: a metal, the bands touch at k = 1/2
    eigs = eigenvalues(ham, kmesh((41, 1, 1), shift=(0.5, 0, 0)))
    gap, direct = band_gap(eigs, 1)
    assert gap < 1e-12 and direct < 1e-12
    one_electron = fermi_level(eigs, 1.0, 2)  # quarter filling: inside the lower band
    assert eigs[:, 0].min() < one_electron < eigs[:, 0].max()


def test_indirect_gap_is_below_direct():
    eigs = np.array([[0.0, 1.0], [0.5, 2.0]])  # VBM at k1, CBM at k0
    assert band_gap(eigs, 1) == (0.5, 1.0)
    overlapping = np.array([[0.0, 1.0], [1.5, 2.0]])
    assert band_gap(overlapping, 1) == (0.0, 0.5)


def test_occupied_count_by_spin_kind(gaas_like, spd_basis):
    plain = random_hamiltonian(gaas_like, spd_basis, "none", 4.0)  # 8 electrons
    assert n_occupied(plain) == 4
    from hamdb.physics.spin import to_soc

    assert n_occupied(to_soc(plain)) == 8
    odd = plain.with_h(plain.h, n_electrons=7.0)
    with pytest.raises(HamiltonianError, match="do not fill whole bands"):
        n_occupied(odd)


@pytest.mark.parametrize("spin", ["none", "soc"])
def test_generalized_eigenproblem(gaas_like, spd_basis, spin):
    ham = random_hamiltonian(gaas_like, spd_basis, spin, 5.0, overlap=True, seed=11)
    k = np.random.default_rng(2).uniform(size=(4, 3))
    eigs, vecs = eigensystem(ham, k)
    h_k, s_k = bloch_matrices(ham, k)
    for n in range(len(k)):
        np.testing.assert_allclose(h_k[n] @ vecs[n], s_k[n] @ vecs[n] * eigs[n], atol=1e-10)
        np.testing.assert_allclose(
            vecs[n].conj().T @ s_k[n] @ vecs[n], np.eye(ham.n_states), atol=1e-10
        )
        l_inv = np.linalg.inv(np.linalg.cholesky(s_k[n]))
        np.testing.assert_allclose(
            eigs[n], np.linalg.eigvalsh(l_inv @ h_k[n] @ l_inv.conj().T), atol=1e-10
        )
    np.testing.assert_allclose(eigenvalues(ham, k), eigs)
    atomic, _ = eigensystem(ham, k, vectors=False, gauge="atomic")
    np.testing.assert_allclose(atomic, eigs, atol=1e-10)


def test_overlap_not_positive_definite_names_the_k_point(gaas_like, spd_basis):
    ham = random_hamiltonian(gaas_like, spd_basis, "none", 5.0, overlap=True, seed=1)
    onsite = (ham.edges[:, 0] == ham.edges[:, 1]) & (ham.edges[:, 2:] == 0).all(axis=1)
    scale = np.repeat(np.where(onsite, 1.0, 40.0), np.diff(ham.s_offsets))
    bad = Hamiltonian(
        ham.structure, ham.basis, ham.spin, ham.edges, ham.offsets, ham.h,
        ham.s * scale, ham.s_offsets,
    )  # fmt: skip
    k = np.array([[0, 0, 0], [0.1, 0.2, 0.3], [0.5, 0.5, 0.5]])
    with pytest.raises(
        HamiltonianError,
        match=r"not positive definite at k = \(.*\) \(k-point \d\): smallest eigenvalue -",
    ):
        eigenvalues(bad, k)


def si_sp3(structure: Structure) -> Hamiltonian:
    """Si sp3 nearest-neighbour model (Chadi & Cohen 1975 parameters, eV)."""
    basis = BasisSet("sp3", {"Si": (0, 1)}, {"Si": 4})
    v = {"sss": -2.075, "sps": 2.48, "pps": 2.7163, "ppp": -0.7150}
    model = SlaterKosterModel({"Si": [-4.2, 1.715]}, {("Si", "Si"): v}, 5.43 * 3**0.5 / 4, 2.5)
    return slater_koster_hamiltonian(structure, basis, model)


def test_kpath_is_expressed_in_the_given_cell(diamond):
    plain, turned = diamond(), diamond(Rotation.random(random_state=3).as_matrix())
    path = kpath(plain)
    names = {label for _, label in path.labels}
    assert {"Γ", "X", "L"} <= names
    x_point = path.kpts[next(n for n, label in path.labels if label == "X")]
    k_cart = x_point @ plain.lattice.reciprocal_lattice.matrix
    assert np.linalg.norm(k_cart) == pytest.approx(2 * np.pi / 5.43)
    # the same crystal turned in space has the same bands along its own path
    e_plain = eigenvalues(si_sp3(plain), path.kpts)
    path_turned = kpath(turned)
    e_turned = eigenvalues(si_sp3(turned), path_turned.kpts)
    assert len(path_turned.kpts) == len(path.kpts)
    np.testing.assert_allclose(e_turned, e_plain, atol=1e-9)


def test_si_sp3_levels_at_gamma(tmp_path, diamond):
    """At Γ the sp3 model is analytic: Γ1 = E_s + 4V_ssσ (−12.5 eV), Γ15 = E_p ∓ V_xx with
    V_xx = 4/3 (V_ppσ + 2V_ppπ); the gap of this model (no s*) is the direct Γ15v–Γ15c one."""
    ham = si_sp3(diamond())
    path = kpath(ham.structure)
    eigs = eigenvalues(ham, path.kpts)
    summary = summarize(ham, eigs)
    assert summary.n_occupied == 4
    gamma = next(n for n, label in path.labels if label == "Γ")
    assert eigs[gamma, 3] == pytest.approx(summary.vbm_ev)  # the valence top is at Γ
    assert eigs[gamma, 0] == pytest.approx(-4.2 + 4 * -2.075)
    v_xx = 4 / 3 * (2.7163 + 2 * -0.7150)
    assert summary.vbm_ev == pytest.approx(1.715 - v_xx)
    assert summary.gap_ev == pytest.approx(2 * v_xx) == summary.direct_gap_ev
    out = tmp_path / "bands.png"
    plot_bands(path, eigs, str(out), summary.fermi_level_ev, title="Si sp3")
    assert out.stat().st_size > 10_000
