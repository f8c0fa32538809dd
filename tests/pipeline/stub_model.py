"""A fast TEST DOUBLE of the model (never of the database): predicts a tiny SOC Hamiltonian.

The pipeline tests exercise claims, leases, stores and rows with real processes on real
SQLite/PostgreSQL; the e3nn model would only make them slow. This stand-in implements the
`PredictorLike` protocol of hamdb.pipeline.workers: one s orbital per atom, on-site energies
from the element, a spin-orbit-like imaginary term, so results are real SOC Hamiltonians that
the store and the catalog accept. Elements it does not "know" raise ModelError, as the real
model does for an element outside its training data.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from hamdb.errors import ModelError
from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian

UNKNOWN_ELEMENT = "Og"  # the stand-in model "was never trained" on oganesson


class StubPredictor:
    def __init__(self, model_version_id: int, delay_s: float = 0.0, scale: float = 1.0) -> None:
        self.model_version_id = model_version_id
        self.delay_s = delay_s
        self.scale = scale  # another "seed": on-site energies scaled

    def predict(self, structures: Sequence[Any]) -> list[Hamiltonian]:
        out = []
        for structure in structures:
            species = [site.specie.symbol for site in structure]
            if UNKNOWN_ELEMENT in species:
                raise ModelError(f"the model has never seen element {UNKNOWN_ELEMENT}")
            basis = BasisSet(
                "stub-s", {el: (0,) for el in set(species)}, {el: 1.0 for el in species}
            )
            blocks = {}
            for i, el in enumerate(species):
                e0 = self.scale * (-0.1 * (sum(map(ord, el)) % 17) - 0.5 * i)
                blocks[(i, i, (0, 0, 0))] = np.array([[e0, 0.0], [0.0, e0]], dtype=complex)
                for R in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):  # a 3D crystal: narrow bands
                    back = (-R[0], -R[1], -R[2])
                    blocks[(i, i, R)] = blocks[(i, i, back)] = -0.02 * np.eye(2, dtype=complex)
                j = (i + 1) % len(species)
                if j != i:
                    hop = np.array([[-0.05, 0.01j], [0.01j, -0.05]], dtype=complex)
                    blocks[(i, j, (0, 0, 0))] = hop
                    blocks[(j, i, (0, 0, 0))] = hop.conj().T
            if self.delay_s:
                time.sleep(self.delay_s)
            ham = Hamiltonian.from_blocks(
                structure, basis, "soc", blocks, n_electrons=float(len(species))
            )
            ham.uncertainty_ev = 0.01  # type: ignore[attr-defined]
            out.append(ham)
        return out


def factory(project: Any, spec: str) -> StubPredictor:
    """A `PredictorFactory`: spec is the model version id (the test registers it)."""
    return StubPredictor(int(spec), float(os.environ.get("HAMDB_STUB_DELAY_S", "0")))
