"""Band gap: refined edges agree with a brute-force fine mesh, and beat the coarse mesh."""

from __future__ import annotations

import numpy as np

from hamdb.physics.models import bhz, kane_mele
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
