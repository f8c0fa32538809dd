"""GPAW LCAO + SOC Hamiltonians against what physics and GPAW itself guarantee.

The traps the issue names are tested, not assumed: the Bloch phase sign and the projector
conjugation (eigenvalues of our H(R), S(R) at k off the mesh against GPAW's own, non-SOC and,
through `soc_eigenstates`, SOC), the orbital order and signs (the Hamiltonian keeps the crystal's
space-group symmetry with DESIGN's Wigner-D matrices; a swapped p_x/p_y does not).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gpaw")

from pymatgen.core import Lattice, Structure

from hamdb.dft.gpaw_lcao import (
    LcaoResult,
    LcaoSettings,
    check_eigenvalues,
    compute,
    compute_overlap,
)
from hamdb.errors import DFTError
from hamdb.physics.hamiltonian import Hamiltonian

pytestmark = pytest.mark.gpaw
TOL_EV = 1e-4
FAST = LcaoSettings(kdensity=1.5, grid_spacing=0.25)


def silicon() -> Structure:
    """Diamond Si with atom 1 one lattice vector out of the cell (0.25, −0.75, 1.25): GPAW wraps
    positions into the cell, H(R) must still refer to the structure's own positions (a real
    bug once: every block of such an atom landed on the wrong R)."""
    a = 5.43
    lattice = Lattice(0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]))
    return Structure(lattice, ["Si", "Si"], [[0, 0, 0], [0.25, -0.75, 1.25]])


def bi2se3() -> Structure:
    """Bi2Se3, R-3m, 5-atom rhombohedral cell (a = 4.138 Å, c = 28.64 Å hexagonal)."""
    hexagonal = Structure.from_spacegroup(
        166, Lattice.hexagonal(4.138, 28.64), ["Bi", "Se", "Se"],
        [[0, 0, 0.4008], [0, 0, 0], [0, 0, 0.2117]],
    )  # fmt: skip
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    # the a = b = c rhombohedral setting: GPAW's grid from h is then already symmetric
    return SpacegroupAnalyzer(hexagonal).get_primitive_standard_structure()


def graphene() -> Structure:
    """A one-atom-thick layer with a small vacuum (c = 10 Å: one k-point along c)."""
    frac = [[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]]
    return Structure(Lattice.hexagonal(2.46, 10.0), ["C", "C"], frac)


@pytest.fixture(scope="module")
def si() -> LcaoResult:
    return compute(silicon(), FAST)


def test_si_eigenvalues_off_the_mesh_match_gpaw(si: LcaoResult) -> None:
    dev = check_eigenvalues(si, np.array([[0.13, -0.27, 0.41], [0.5, 0.0, 0.0]]))
    assert dev["max_dev_none_ev"] < TOL_EV
    assert dev["max_dev_soc_ev"] < TOL_EV


def test_si_hamiltonians_are_hermitian_time_reversal_symmetric_and_complete(si: LcaoResult) -> None:
    from hamdb.physics.checks import hermiticity_error
    from hamdb.physics.spin import soc_correction, time_reversal_error

    for ham in (si.h_none, si.h_soc):
        assert hermiticity_error(ham) < 1e-8
        assert ham.n_electrons == 8.0 and ham.fermi_level_ev is not None
        assert ham.origin["code"] == "gpaw" and ham.origin["settings"]["mesh"] == list(si.mesh)
    assert time_reversal_error(si.h_soc) < 1e-8
    correction = soc_correction(si.h_soc, si.h_none)
    assert 1e-4 < np.abs(correction.h).max() < 0.1  # Si: a small but present SOC


def test_overlap_without_scf_equals_the_runs_overlap(si: LcaoResult) -> None:
    """compute_overlap (real space, no k-mesh) reproduces the full-zone S(R) on the same edges."""
    overlap = compute_overlap(silicon(), FAST)
    assert np.array_equal(overlap.edges, si.h_none.edges)
    assert np.abs(overlap.s - si.h_none.s).max() < 1e-12
    assert not overlap.h.any()


def _swap_px_py(ham: Hamiltonian) -> Hamiltonian:
    """The same H and S with p_y and p_x exchanged in every p shell (a plausible wrong order)."""
    perm = np.arange(13)
    for p in (1, 5):  # Si dzp shells s, p, s', p', d: p shells start at orbitals 1 and 5
        perm[p], perm[p + 2] = p + 2, p
    h, s = ham.h.copy(), ham.s.copy()
    for e in range(ham.n_edges):
        h[ham.offsets[e] : ham.offsets[e + 1]] = ham.h_block(e)[np.ix_(perm, perm)].ravel()
        s[ham.s_offsets[e] : ham.s_offsets[e + 1]] = ham.s_block(e)[np.ix_(perm, perm)].ravel()
    return Hamiltonian(
        ham.structure, ham.basis, "none", ham.edges, ham.offsets, h, s, ham.s_offsets
    )


def test_si_keeps_the_diamond_space_group_in_design_order(si: LcaoResult) -> None:
    """Orbital order and signs: S (analytic two-centre integrals) is symmetric under all 48
    operations with DESIGN's Wigner-D to rounding; H to GPAW's real-space grid accuracy (the
    egg-box effect: 6e-3 eV at h = 0.25 Å, 4e-4 eV at 0.15 Å). A p_x/p_y swap breaks both."""
    from hamdb.physics.rotations import symmetry_report

    report = symmetry_report(si.h_none)
    assert report.n_operations == 48
    assert report.overlap_error < 1e-10
    assert report.error_ev < 2e-2
    assert symmetry_report(si.h_soc).error_ev < 2e-2
    wrong = symmetry_report(_swap_px_py(si.h_none))
    assert wrong.overlap_error > 1e-2 and wrong.error_ev > 0.1


def test_bi2se3_strong_soc_matches_soc_eigenstates() -> None:
    result = compute(bi2se3(), LcaoSettings(kdensity=1.0, grid_spacing=0.25))
    dev = check_eigenvalues(result, np.array([[0.1, 0.2, -0.3]]))
    assert dev["max_dev_none_ev"] < TOL_EV
    assert dev["max_dev_soc_ev"] < TOL_EV
    from hamdb.physics.bands import eigenvalues

    k = np.array([[0.0, 0.0, 0.0]])
    split = eigenvalues(result.h_soc, k)[0, 0::2] - eigenvalues(result.h_none, k)[0]
    assert np.abs(split).max() > 0.1  # Bi 6p: SOC of order eV, not a rounding effect


def test_two_dimensional_layer_with_small_vacuum() -> None:
    result = compute(graphene(), FAST)
    assert result.scf_mesh[2] == 1
    dev = check_eigenvalues(result, np.array([[0.21, -0.34, 0.0], [0.4, 0.1, 0.25]]))
    assert max(dev.values()) < TOL_EV


def test_too_small_mesh_names_the_mesh_needed() -> None:
    with pytest.raises(DFTError, match=r"k-mesh 3x3x3 is too small .* at least \d+x\d+x\d+"):
        compute(silicon(), LcaoSettings(mesh=(3, 3, 3)))


def test_overlapping_atoms_and_missing_setups_are_refused_before_any_scf() -> None:
    s = silicon()
    s.append("Si", [0.01, 0.0, 0.0])
    with pytest.raises(DFTError, match="atoms overlap"):
        compute(s)
    po = Structure(Lattice.cubic(3.35), ["Po"], [[0, 0, 0]])
    with pytest.raises(DFTError, match="no PBE setup or dzp basis for element Po"):
        compute(po)
