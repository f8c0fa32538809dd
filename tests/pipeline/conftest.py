"""Fixtures of the pipeline tests: a registered model version and many small structures."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # stub_model is imported by tests and by worker subprocesses
    sys.path.insert(0, str(HERE))


def _template(species: list[str]) -> dict[str, Any]:
    from pymatgen.core import Lattice, Structure

    coords = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.0, 0.25], [0.0, 0.5, 0.75]][: len(species)]
    return Structure(Lattice.cubic(4.0), species, coords).as_dict()


def add_structures(session: Any, n: int, species: list[str] | None = None) -> list[int]:
    """Insert n distinct small structures (cubic cells of growing lattice constant)."""
    from hamdb.db.models import StructureRow

    species = species or ["Bi", "Se"]
    template = _template(species)
    rows = []
    for k in range(n):
        data = copy.deepcopy(template)
        a = 4.0 + 0.001 * k
        data["lattice"] = {"matrix": [[a, 0, 0], [0, a, 0], [0, 0, a]], "pbc": [True] * 3}
        elements = sorted(set(species))
        rows.append(
            StructureRow(
                reduced_formula="".join(elements),
                spacegroup_number=221,
                n_sites=len(species),
                elements=elements,
                elements_key="-" + "-".join(elements) + "-",
                structure_json=data,
                material_id=None,
            )
        )
    session.add_all(rows)
    session.flush()
    for row in rows:
        row.material_id = row.id
    session.commit()
    return [row.id for row in rows]


def register_model(session: Any, name: str = "stub", version: int = 1) -> int:
    """A model + version row (the stand-in model's registry entry); returns the version id."""
    from hamdb.db.models import ModelRow, ModelVersionRow

    model = session.query(ModelRow).filter_by(name=name).one_or_none()
    if model is None:
        model = ModelRow(name=name, description="test double of the model")
        session.add(model)
        session.flush()
    mv = ModelVersionRow(
        model_id=model.id, version=version, weights_uri="none", weights_sha256="0" * 64,
        config={"stub": True},
    )  # fmt: skip
    session.add(mv)
    session.commit()
    return mv.id


@pytest.fixture
def model_version_id(session: Any) -> int:
    return register_model(session)
