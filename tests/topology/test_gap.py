"""Band gap: refined edges agree with a brute-force fine mesh, and beat the coarse mesh."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from hamdb.physics.basis import BasisSet
from hamdb.physics.models import bhz, fu_kane_mele, kane_mele
from hamdb.physics.slater_koster import SlaterKosterModel, slater_koster_hamiltonian
from hamdb.topology import gap as gap_module
from hamdb.topology.gap import band_gap, mesh_size
from hamdb.topology.kspace import BandProblem


def _brute(problem: BandProblem, n: int) -> tuple[float, float]:
    g = np.stack(np.meshgrid(np.arange(n) / n, np.arange(n) / n, [0.0], indexing="ij"), -1).reshape(
        -1, 3
    )
    e = problem.eigenvalues(g)
    occ = problem.n_occupied
    return float(e[:, occ].min() - e[:, occ - 1].max()), float((e[:, occ] - e[:, occ - 1]).min())


def test_refined_gap_matches_a_fine_mesh() -> None:
    """Kane–Mele with Rashba (edges near K) and a tilted BHZ (indirect gap off the TRIMs)."""
    for ham in (kane_mele(lambda_r=0.05, lambda_v=0.25), bhz(M=1.0, B=1.0, D=0.8, A=0.3)):
        problem = BandProblem.from_hamiltonian(ham)
        recip = np.asarray(ham.structure.lattice.reciprocal_lattice.abc)
        result = band_gap(problem, recip, [0, 1])
        gap, direct = _brute(problem, 240)
        assert result.gap_ev <= gap + 1e-4 and result.gap_ev > gap - 5e-3
        assert result.direct_gap_ev <= direct + 1e-4 and result.direct_gap_ev > direct - 5e-3
        assert result.direct_gap_ev >= result.gap_ev - 1e-12


def test_mesh_has_multiples_of_six_and_one_point_along_vacuum() -> None:
    assert mesh_size(np.array([2.9, 2.9, 0.4]), [0, 1], 0.2, 3000) == [18, 18, 1]
    assert np.prod(mesh_size(np.array([9.0, 9.0, 9.0]), [0, 1, 2], 0.2, 3000)) <= 3000


def _si_sp3_soc():  # type: ignore[no-untyped-def]
    """Si sp3 (Chadi–Cohen) with on-site SOC on p: an Fd-3m-symmetric spinor insulator."""
    a = 5.43
    lattice = Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]])
    structure = Structure(lattice, ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    basis = BasisSet("sp3", {"Si": (0, 1)}, {"Si": 4})
    v = {"sss": -2.075, "sps": 2.48, "pps": 2.7163, "ppp": -0.7150}
    model = SlaterKosterModel(
        {"Si": [-4.2, 1.715]}, {("Si", "Si"): v}, a * 3**0.5 / 4, 2.5, soc_ev={"Si": {1: 0.1}}
    )
    return slater_koster_hamiltonian(structure, basis, model, spin="soc")


def test_symmetric_h_uses_the_irreducible_mesh_with_the_same_edges() -> None:
    ham = _si_sp3_soc()
    problem = BandProblem.from_hamiltonian(ham, occupied=8)
    recip = np.asarray(ham.structure.lattice.reciprocal_lattice.abc)
    n = mesh_size(recip, [0, 1, 2], 0.2, 3000)
    assert gap_module._irreducible(problem, ham.structure, n) is not None
    reduced = band_gap(problem, recip, [0, 1, 2], structure=ham.structure)
    half = band_gap(problem, recip, [0, 1, 2])
    assert reduced.gap_ev == pytest.approx(half.gap_ev, abs=1e-9) and reduced.gap_ev > 0.5
    assert reduced.direct_gap_ev == pytest.approx(half.direct_gap_ev, abs=1e-9)
    assert reduced.n_kpoints < half.n_kpoints / 2


def test_h_breaking_the_crystal_symmetry_keeps_the_time_reversal_half() -> None:
    """Fu–Kane–Mele with δt1 on one bond is trigonal on a diamond (Fd-3m) structure."""
    ham = fu_kane_mele(delta_t1=0.4)
    problem = BandProblem.from_hamiltonian(ham)
    n = mesh_size(np.asarray(ham.structure.lattice.reciprocal_lattice.abc), [0, 1, 2], 0.2, 3000)
    assert gap_module._irreducible(problem, ham.structure, n) is None


def test_refinement_stops_where_parabolas_promise_nothing() -> None:
    """Values along ±x, ±y of a stencil: a symmetric minimum promises no gain (settled); a
    tilted one promises g²/4c; a kink (no positive curvature) is never settled."""
    pairs = np.array([[0, 1], [2, 3]])  # (+x, −x), (+y, −y)
    centre = np.array([0.0, 0.0, 0.0])
    vals = np.array([[1.0, 1.0, 2.0, 2.0], [1.5, 0.5, 1.0, 1.0], [-1.0, 1.0, 1.0, 1.0]])
    gain = gap_module._possible_gain(vals, centre, pairs)
    assert gain[0] == 0.0 and gain[1] == pytest.approx(0.0625) and gain[2] == np.inf
