"""Fixtures of the pipeline tests: a registered model version and many small structures."""

from __future__ import annotations

import copy
import sys
import uuid
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


def add_screened(
    session: Any,
    structure_id: int,
    *,
    model_version_id: int | None,
    z2: tuple[int, ...] | None,
    gap_ev: float | None,
    method: str = "wcc",
    converged: bool = True,
    is_metal: bool = False,
    uncertainty_ev: float | None = None,
    error: str | None = None,
    hamiltonian_id: int | None = None,
) -> tuple[int, int]:
    """A Hamiltonian row (predicted if model_version_id, else DFT) and a topology result.

    Rows only: the view and the report read rows, no file is needed for them. Returns
    (hamiltonian_id, topology_result_id).
    """
    from hamdb.db.models import BasisSetRow, HamiltonianRow, TopologyResultRow

    if hamiltonian_id is None:
        basis = session.query(BasisSetRow).filter_by(name="test-basis").one_or_none()
        if basis is None:
            basis = BasisSetRow(name="test-basis", shells={}, valence={}, sha256="0" * 64)
            session.add(basis)
            session.flush()
        kind = "predicted" if model_version_id is not None else "dft"
        ham = HamiltonianRow(
            structure_id=structure_id, basis_set_id=basis.id, kind=kind, spin="soc",
            method=f"model:{model_version_id}" if kind == "predicted" else "gpaw-test",
            model_version_id=model_version_id, uri=f"xx/{structure_id}-{kind}.h5",
            sha256="0" * 64, n_orbitals=4, n_edges=2, n_electrons=2.0,
            uncertainty_ev=uncertainty_ev,
        )  # fmt: skip
        session.add(ham)
        session.flush()
        hamiltonian_id = ham.id
    nus = list(z2) + [None] * (4 - len(z2)) if z2 is not None else [None] * 4
    result = TopologyResultRow(
        hamiltonian_id=hamiltonian_id, method=method,
        settings_hash=uuid.uuid4().hex,
        dimension=2 if z2 is not None and len(z2) == 1 else 3,
        z2=list(z2) if z2 is not None else None,
        nu0=nus[0], nu1=nus[1], nu2=nus[2], nu3=nus[3],
        gap_ev=gap_ev, direct_gap_ev=gap_ev, n_occupied=2,
        converged=converged, is_metal=is_metal, error=error,
    )  # fmt: skip
    session.add(result)
    session.flush()
    return hamiltonian_id, result.id


@pytest.fixture
def screened(session: Any, model_version_id: int) -> dict[str, int]:
    """Six structures with known predicted (and some DFT) topology results."""
    s = add_structures(session, 6)
    mv = model_version_id
    add_screened(
        session, s[0], model_version_id=mv, z2=(1, 0, 0, 0), gap_ev=0.30, uncertainty_ev=0.02
    )  # strong TI, DFT agrees below
    add_screened(
        session, s[1], model_version_id=mv, z2=(0, 0, 0, 1), gap_ev=0.08, uncertainty_ev=0.05
    )  # weak TI, DFT says trivial
    add_screened(session, s[2], model_version_id=mv, z2=(0, 0, 0, 0), gap_ev=1.2)  # trivial
    add_screened(
        session,
        s[3],
        model_version_id=mv,
        z2=None,
        gap_ev=0.0,
        is_metal=True,
        converged=False,
        error="metal: gap 0 eV",
    )
    add_screened(
        session, s[4], model_version_id=mv, z2=(1, 1, 1, 1), gap_ev=0.02, uncertainty_ev=0.001
    )  # strong but tiny gap, unverified
    h5, _ = add_screened(session, s[5], model_version_id=mv, z2=(1, 0, 0, 1), gap_ev=0.4)
    add_screened(
        session,
        s[5],
        model_version_id=None,
        z2=(0, 0, 0, 0),
        gap_ev=0.9,
        hamiltonian_id=h5,
        method="parity",
    )  # a cross-check row: not the view's
    add_screened(
        session, s[5], model_version_id=None, z2=(1, 0, 0, 0), gap_ev=0.5, hamiltonian_id=h5
    )  # screened again (other settings): the newest wins
    add_screened(session, s[0], model_version_id=None, z2=(1, 0, 0, 0), gap_ev=0.25)
    add_screened(session, s[1], model_version_id=None, z2=(0, 0, 0, 0), gap_ev=0.1)
    add_screened(session, s[2], model_version_id=None, z2=(0, 0, 0, 0), gap_ev=1.0)
    add_screened(session, s[3], model_version_id=None, z2=(1, 0, 0, 0), gap_ev=0.05)  # missed
    session.commit()
    return {"strong": s[0], "weak": s[1], "trivial": s[2], "metal": s[3], "tiny": s[4],
            "parity": s[5]}  # fmt: skip
