"""Per-prediction uncertainty: the spread of the band gap over an ensemble of model versions.

A screen flags a candidate by its gap and Z2; a wrong gap sign or size is what turns a real
topological insulator into a metal or a trivial one. So the uncertainty hamdb records is the
sample standard deviation (eV) of the band gap predicted by K model versions trained alike but
with different seeds (`hamdb train soc --seed 1`, `--seed 2`, ...): the primary version's
Hamiltonian is stored, the others only vote on the gap. Where members disagree, the data did
not pin the answer down; where they agree, the estimate is small. It is a lower bound of the
error (members share the architecture and the data), which is why `calibration` compares it
with the real gap error on every structure that has a DFT check: a calibrated estimate has
~68% of |gap_pred − gap_dft| within 1σ and ~95% within 2σ.

The gap each member votes with is the screen's own (`gap_ev`): the same overlap filter s_min,
mesh and tolerances as hamdb.topology.analysis with the chained screen's settings
(`hamdb predict --pending --model A+B+C --s-min 1e-2` sets both). A predicted H in a nearly
dependent basis such as dzp needs the filter (the model card's s_min, 1e-2 for hamdb-small):
with exact generalised eigenvalues, meV element noise along the near-null directions of S(k)
moves bands by eV, and the spread would measure that noise, not the gap the screen reports.

Without an ensemble the model's own figure is kept (hamdb.ml.inference sets the version's
held-out gap MAE on insulators, overlap-filtered).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hamdb.errors import HamdbError
from hamdb.physics.orthogonal import PREDICTED_S_MIN

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from hamdb.physics.hamiltonian import Hamiltonian
    from hamdb.pipeline.workers import PredictorLike
    from hamdb.topology.analysis import TopologySettings


def gap_ev(ham: Hamiltonian, settings: TopologySettings | None = None) -> float:
    """Band gap (eV) at the Hamiltonian's electron count, as the screen computes it; a metal
    gives 0.

    `settings` (default: the screen's defaults) gives the overlap filter s_min, the mesh
    spacing (1/Å) and the Hermiticity tolerance: the step of hamdb.topology.analysis.analyse
    that finds the gap, before any Z2 work.
    """
    from hamdb.topology.analysis import TopologySettings, resolve_dimension
    from hamdb.topology.gap import band_gap
    from hamdb.topology.kspace import BandProblem

    s = settings or TopologySettings()
    problem = BandProblem.from_hamiltonian(ham, None, s.hermitian_tol, s.s_min)
    _, vacuum = resolve_dimension(ham, None)
    periodic = [a for a in range(3) if a != vacuum]
    recip = np.asarray(ham.structure.lattice.reciprocal_lattice.abc, dtype=float)
    gap = band_gap(problem, recip, periodic, spacing=s.mesh_spacing, structure=ham.structure)
    return max(float(gap.gap_ev), 0.0)


class EnsemblePredictor:
    """The primary predictor's Hamiltonians, with `uncertainty_ev` = std of the members' gaps.

    `members` are further predictors (other seeds); the primary counts as one member too.
    A member that fails on a structure is left out of that structure's vote; with fewer than
    two votes the primary's own estimate stays. `gap_s_min`: the overlap filter of the votes,
    the screen's s_min (hamdb.pipeline.workers sets it from `--s-min`, as for the chained
    screen); by default PREDICTED_S_MIN, the screen's default for predictions; 0 = exact.
    """

    def __init__(
        self,
        primary: PredictorLike,
        members: Sequence[PredictorLike],
        gap_s_min: float = PREDICTED_S_MIN,
    ) -> None:
        self.primary = primary
        self.members = list(members)
        self.model_version_id = primary.model_version_id
        self.gap_s_min = gap_s_min

    @property
    def gap_settings(self) -> TopologySettings:
        """The settings of the chained screen (`{"s_min": gap_s_min}`) the votes use."""
        from hamdb.topology.analysis import TopologySettings

        return TopologySettings(s_min=self.gap_s_min)

    def predict(self, structures: Sequence[Structure]) -> list[Hamiltonian]:
        hams = self.primary.predict(structures)
        settings = self.gap_settings
        votes: list[list[float]] = [[] for _ in structures]
        for k, ham in enumerate(hams):
            try:
                votes[k].append(gap_ev(ham, settings))
            except HamdbError:
                continue
        for member in self.members:
            try:
                others = member.predict(structures)
            except HamdbError:
                continue
            for k, other in enumerate(others):
                try:
                    votes[k].append(gap_ev(other, settings))
                except HamdbError:
                    continue
        for ham, gaps in zip(hams, votes, strict=True):
            if len(gaps) >= 2:
                ham.uncertainty_ev = float(np.std(gaps, ddof=1))  # type: ignore[attr-defined]
        return hams


@dataclass(frozen=True)
class Calibration:
    """How the recorded uncertainty compares with the real gap error against DFT."""

    n: int
    within_1sigma: float | None
    within_2sigma: float | None
    mean_abs_error_ev: float | None
    mean_uncertainty_ev: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def format(self) -> str:
        if not self.n:
            return "uncertainty calibration: no structure with a gap, an uncertainty and a DFT gap"
        return (
            f"uncertainty calibration over {self.n} DFT-checked predictions: "
            f"{100 * (self.within_1sigma or 0):.0f}% of |gap - gap_DFT| within 1 sigma "
            f"(68% if calibrated), {100 * (self.within_2sigma or 0):.0f}% within 2 sigma (95%); "
            f"mean |error| {self.mean_abs_error_ev:.3f} eV vs mean sigma "
            f"{self.mean_uncertainty_ev:.3f} eV"
        )


def calibration(rows: Sequence[dict[str, Any]]) -> Calibration:
    """From candidates-view rows: the share of gap errors within 1 and 2 recorded sigmas."""
    pairs = [
        (abs(r["gap_ev"] - r["dft_gap_ev"]), r["uncertainty_ev"])
        for r in rows
        if r.get("gap_ev") is not None
        and r.get("dft_gap_ev") is not None
        and r.get("uncertainty_ev") is not None
        and math.isfinite(r["uncertainty_ev"])
    ]
    if not pairs:
        return Calibration(0, None, None, None, None)
    errors = np.array([p[0] for p in pairs])
    sigmas = np.array([max(p[1], 1e-12) for p in pairs])
    return Calibration(
        n=len(pairs),
        within_1sigma=float(np.mean(errors <= sigmas)),
        within_2sigma=float(np.mean(errors <= 2 * sigmas)),
        mean_abs_error_ev=float(errors.mean()),
        mean_uncertainty_ev=float(sigmas.mean()),
    )
