"""Ensemble uncertainty of predictions (the screen's gap, its overlap filter) and its
calibration against DFT gaps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from stub_model import StubPredictor

from hamdb.errors import ModelError
from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian
from hamdb.physics.orthogonal import PREDICTED_S_MIN
from hamdb.pipeline.uncertainty import EnsemblePredictor, calibration, gap_ev
from hamdb.topology.analysis import TopologySettings, analyse


def _crystal(species: list[str]) -> Structure:
    return Structure(Lattice.cubic(4.0), species, [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_members_that_agree_give_zero_and_disagreeing_ones_their_spread():
    s = _crystal(["Bi", "Se"])
    same = EnsemblePredictor(StubPredictor(1), [StubPredictor(2), StubPredictor(3)])
    (ham,) = same.predict([s])
    assert ham.uncertainty_ev == pytest.approx(0.0, abs=1e-9)
    members = [StubPredictor(2, scale=1.2), StubPredictor(3, scale=0.8)]
    spread = EnsemblePredictor(StubPredictor(1), members)
    (ham,) = spread.predict([s])
    gaps = [gap_ev(p.predict([s])[0]) for p in [StubPredictor(1), *members]]
    assert len(set(round(g, 6) for g in gaps)) == 3  # the members really differ
    mean = sum(gaps) / 3
    expected = (sum((g - mean) ** 2 for g in gaps) / 2) ** 0.5
    assert ham.uncertainty_ev == pytest.approx(expected, rel=1e-6)
    assert spread.model_version_id == 1


def test_a_failing_member_is_left_out():
    class Broken:
        model_version_id = 9

        def predict(self, structures):
            raise ModelError("this seed never saw Se")

    s = _crystal(["Bi", "Se"])
    (ham,) = EnsemblePredictor(StubPredictor(1), [Broken()]).predict([s])
    assert ham.uncertainty_ev == 0.01  # only one vote: the primary's own estimate stays


def test_calibration_counts_errors_within_one_and_two_sigma():
    rows = [
        {"gap_ev": 0.30, "dft_gap_ev": 0.25, "uncertainty_ev": 0.10},  # 0.5 sigma
        {"gap_ev": 0.30, "dft_gap_ev": 0.15, "uncertainty_ev": 0.10},  # 1.5 sigma
        {"gap_ev": 0.30, "dft_gap_ev": 0.00, "uncertainty_ev": 0.10},  # 3 sigma
        {"gap_ev": 0.30, "dft_gap_ev": None, "uncertainty_ev": 0.10},  # no DFT: ignored
    ]
    cal = calibration(rows)
    assert cal.n == 3
    assert cal.within_1sigma == pytest.approx(1 / 3) and cal.within_2sigma == pytest.approx(2 / 3)
    assert "68% if calibrated" in cal.format()
    assert calibration([]).n == 0


# -- the votes use the screen's overlap filter ------------------------------------------------
NEAR_DEPENDENT_S = 0.999  # S(k) eigenvalues 1 - s and 1 + s: a ratio of 5e-4, below 1e-2


def _near_dependent(structure: Structure, noise_ev: float) -> Hamiltonian:
    """One s orbital on each of three sites: site 0 occupied (-1 eV), sites 1 and 2 empty
    (ε = +1 eV) and overlapping almost completely (S12 = s = 0.999, so S(k) has a direction
    5e-4 of its largest, like GPAW's dzp). Their hopping is s·ε + noise_ev: the exact
    generalised eigenvalue of the near-null direction is ε - noise/(1 - s), 1000 × noise
    below ε, while the filtered (s_min = 1e-2) bands do not see the noise at all."""
    species = [site.specie.symbol for site in structure]
    basis = BasisSet("near-s", {el: (0,) for el in set(species)}, {el: 1.0 for el in species})
    eye = np.eye(2, dtype=complex)
    blocks, overlap = {}, {}
    for i, e0 in enumerate((-1.0, 1.0, 1.0)):
        blocks[(i, i, (0, 0, 0))] = e0 * eye
        overlap[(i, i, (0, 0, 0))] = np.eye(1)
    for R in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):  # a 3D crystal: site 0 disperses
        back = (-R[0], -R[1], -R[2])
        blocks[(0, 0, R)] = blocks[(0, 0, back)] = -0.02 * eye
        overlap[(0, 0, R)] = overlap[(0, 0, back)] = np.zeros((1, 1))
    hop = -0.05 * eye + np.array([[0.0, 0.01j], [0.01j, 0.0]])  # a spin-orbit-like term
    for j in (1, 2):  # the same to both: the near-null direction 1 - 2 stays uncoupled
        blocks[(0, j, (0, 0, 0))], blocks[(j, 0, (0, 0, 0))] = hop, hop.conj().T
        overlap[(0, j, (0, 0, 0))] = overlap[(j, 0, (0, 0, 0))] = np.zeros((1, 1))
    blocks[(1, 2, (0, 0, 0))] = blocks[(2, 1, (0, 0, 0))] = (NEAR_DEPENDENT_S + noise_ev) * eye
    overlap[(1, 2, (0, 0, 0))] = overlap[(2, 1, (0, 0, 0))] = NEAR_DEPENDENT_S * np.eye(1)
    return Hamiltonian.from_blocks(structure, basis, "soc", blocks, overlap, n_electrons=2.0)


class NoisyPredictor:
    """A model "seed" whose errors lie along the near-null overlap direction."""

    def __init__(self, model_version_id: int, noise_ev: float) -> None:
        self.model_version_id = model_version_id
        self.noise_ev = noise_ev

    def predict(self, structures: list[Structure]) -> list[Hamiltonian]:
        return [_near_dependent(s, self.noise_ev) for s in structures]


def _three_sites() -> Structure:
    return Structure(
        Lattice.cubic(4.0), ["Bi", "Se", "Se"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0.25]]
    )


def test_the_gap_is_the_screens_with_its_overlap_filter():
    ham = _near_dependent(_three_sites(), 1e-3)
    for s_min in (0.0, 1e-2):
        settings = TopologySettings(s_min=s_min)
        screen = analyse(ham, methods=("wcc",), settings=settings)
        assert gap_ev(ham, settings) == pytest.approx(max(screen.gap_ev, 0.0), abs=1e-9)
    # the noise moves the exact near-null band 1 eV down, into the gap; filtered, ~2 eV
    assert gap_ev(ham) < 1.0 < 1.8 < gap_ev(ham, TopologySettings(s_min=1e-2))


def test_ensemble_votes_filter_the_overlap_as_the_screen_does():
    s = _three_sites()
    seeds = [NoisyPredictor(1, 1e-3), NoisyPredictor(2, 0.5e-3), NoisyPredictor(3, 1.5e-3)]
    exact = EnsemblePredictor(seeds[0], seeds[1:], gap_s_min=0.0)
    filtered = EnsemblePredictor(seeds[0], seeds[1:], gap_s_min=1e-2)
    assert filtered.gap_settings == TopologySettings(s_min=1e-2)
    # by default the votes use the filter predictions are screened with
    assert EnsemblePredictor(seeds[0], seeds[1:]).gap_s_min == PREDICTED_S_MIN == 1e-2
    (spread,) = exact.predict([s])
    (agreed,) = filtered.predict([s])
    assert spread.uncertainty_ev > 0.3  # noise amplified 1000x: the votes disagree by ~0.5 eV
    assert agreed.uncertainty_ev < 0.01  # the gap the screen reports barely moves
    gaps = [gap_ev(p.predict([s])[0], TopologySettings(s_min=1e-2)) for p in seeds]
    assert agreed.uncertainty_ev == pytest.approx(np.std(gaps, ddof=1), abs=1e-12)


def test_predict_pending_gives_the_ensemble_the_screens_s_min(
    project: Any, session: Any, model_version_id: int
):
    """`hamdb predict --pending --model A+B+C --screen --s-min 1e-2`: the stored uncertainty
    is the spread of the gap the chained screen computes and stores."""
    from conftest import add_structures
    from sqlalchemy import select

    from hamdb.db.models import HamiltonianRow, TopologyResultRow
    from hamdb.pipeline import claims
    from hamdb.pipeline.workers import WorkerOptions, run_worker

    add_structures(session, 2, species=["Bi", "Se", "Se"])
    seeds = [NoisyPredictor(model_version_id, n) for n in (1e-3, 0.5e-3, 1.5e-3)]
    made: list[EnsemblePredictor] = []

    def ensemble(_project: Any, _spec: str) -> EnsemblePredictor:
        made.append(EnsemblePredictor(seeds[0], seeds[1:]))
        return made[-1]

    options = WorkerOptions(model="A+B+C", batch=2, screen=True, screen_s_min=1e-2)
    with claims.writer_lock(project.database_url):
        assert run_worker(project, options, ensemble).screened == 2
    assert made[0].gap_s_min == 1e-2
    session.rollback()
    uncertainties = session.scalars(select(HamiltonianRow.uncertainty_ev)).all()
    assert len(uncertainties) == 2 and all(u < 0.01 for u in uncertainties)
    gaps = session.scalars(
        select(TopologyResultRow.gap_ev).where(TopologyResultRow.current_screen)
    ).all()
    expected = gap_ev(seeds[0].predict([_three_sites()])[0], TopologySettings(s_min=1e-2))
    assert gaps == pytest.approx([expected] * 2, abs=1e-3)
