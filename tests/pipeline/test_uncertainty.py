"""Ensemble uncertainty of predictions and its calibration against DFT gaps."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure
from stub_model import StubPredictor

from hamdb.errors import ModelError
from hamdb.pipeline.uncertainty import EnsemblePredictor, calibration, gap_ev


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
