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


def test_quadratic_model_and_newton_step_of_a_stencil() -> None:
    """Central differences on the 3^d stencil are exact for a quadratic with cross terms: the
    Newton step lands on its minimum and promises its depth; a saddle promises nothing."""
    periodic = [0, 1]
    offsets = gap_module.stencil_offsets(periodic)
    assert len(offsets) == 9 and not offsets[0].any()
    assert len(gap_module.stencil_offsets([0, 1, 2])) == 19  # no three-axis corners
    hessian = np.array([[2.0, 1.5], [1.5, 3.0]])
    minimum = np.array([0.3, -0.6])

    def f(x: np.ndarray) -> np.ndarray:
        d = x - minimum
        return 0.5 * np.einsum("...i,ij,...j->...", d, hessian, d) - 1.0

    vals = f(offsets[:, :2].astype(float))[None]
    g, c = gap_module.quadratic_model(vals, vals[:, 0], offsets, periodic)
    np.testing.assert_allclose(c[0], hessian, atol=1e-12)
    step, gain = gap_module.newton_step(g, c)
    np.testing.assert_allclose(step[0], minimum, atol=1e-12)
    assert gain[0] == pytest.approx(float(f(np.zeros(2))) + 1.0)
    saddle = np.array([[[1.0, 0.0], [0.0, -1.0]]])
    step, gain = gap_module.newton_step(np.array([[0.1, 0.1]]), saddle)
    assert gain[0] == np.inf and np.isnan(step).all()


def test_small_models_skip_the_symmetry_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 4-state model: the whole time-reversal half costs less than spglib's search."""
    ham = _si_sp3_soc()
    problem = BandProblem.from_hamiltonian(ham, occupied=8)
    recip = np.asarray(ham.structure.lattice.reciprocal_lattice.abc)
    calls: list[int] = []
    original = gap_module._irreducible
    monkeypatch.setattr(gap_module, "_irreducible", lambda *a: calls.append(1) or original(*a))
    band_gap(problem, recip, [0, 1, 2], structure=ham.structure)
    assert calls  # 16 states: worth it
    calls.clear()
    fkm = fu_kane_mele(delta_t1=0.4)
    band_gap(BandProblem.from_hamiltonian(fkm), recip, [0, 1, 2], structure=fkm.structure)
    assert not calls
