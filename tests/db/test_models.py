"""The ORM against a migrated database: defaults, constraints, cascades, UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from hamdb.db.models import (
    BasisSetRow,
    HamiltonianRow,
    ModelRow,
    ModelVersionRow,
    PredictionJobRow,
    StructureRow,
    StructureSourceRow,
    TopologyResultRow,
)


def _structure(formula: str = "Bi2Se3", sg: int = 166) -> StructureRow:
    return StructureRow(
        reduced_formula=formula,
        spacegroup_number=sg,
        n_sites=5,
        elements=["Bi", "Se"],
        elements_key="-Bi-Se-",
        structure_json={"@class": "Structure", "sites": []},
    )


def _hamiltonian(structure: StructureRow, basis: BasisSetRow, **kw: object) -> HamiltonianRow:
    values: dict[str, object] = dict(
        structure=structure,
        basis_set=basis,
        kind="dft",
        spin="soc",
        method="gpaw-lcao-pbe-dzp",
        uri="ab/abcd.h5",
        sha256="ab" * 32,
        n_orbitals=65,
        n_edges=120,
        n_electrons=28.0,
    )
    values.update(kw)
    return HamiltonianRow(**values)


def _basis() -> BasisSetRow:
    return BasisSetRow(
        name="gpaw-dzp", shells={"Bi": [0, 0, 1, 1, 2]}, valence={"Bi": 15}, sha256="0" * 64
    )


def test_round_trip_keeps_json_and_utc(session: Session) -> None:
    structure = _structure()
    session.add(structure)
    session.commit()
    session.expunge_all()
    loaded = session.scalars(select(StructureRow)).one()
    assert loaded.elements == ["Bi", "Se"]
    assert loaded.structure_json["@class"] == "Structure"
    assert loaded.created_at.tzinfo is not None
    assert abs(loaded.created_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_timestamps_from_another_zone_come_back_as_the_same_instant(session: Session) -> None:
    structure = _structure()
    basis = _basis()
    model = ModelRow(name="m")
    version = ModelVersionRow(
        model=model, version=1, weights_uri="w.pt", weights_sha256="1" * 64, config={}
    )
    session.add_all([structure, basis, model, version])
    session.flush()
    lease = datetime(2030, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=5)))
    job = PredictionJobRow(
        structure_id=structure.id, model_version_id=version.id, lease_expires_at=lease
    )
    session.add(job)
    session.commit()
    session.expunge_all()
    loaded = session.scalars(select(PredictionJobRow)).one()
    assert loaded.lease_expires_at == lease
    assert loaded.lease_expires_at.utcoffset() == timedelta(0)
    assert loaded.status == "pending" and loaded.attempts == 0


def test_naive_timestamps_are_refused(session: Session) -> None:
    structure = _structure()
    structure.created_at = datetime(2020, 1, 1)
    session.add(structure)
    with pytest.raises(StatementError, match="naive datetime"):
        session.commit()


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "experimental"},
        {"spin": "full"},
        {"kind": "predicted"},  # a prediction must name its model version
        {"n_orbitals": 0},
    ],
)
def test_check_constraints_refuse_bad_hamiltonians(session: Session, change: dict) -> None:
    session.add(_hamiltonian(_structure(), _basis(), **change))
    with pytest.raises(IntegrityError):
        session.commit()


def test_unique_hamiltonian_per_structure_kind_spin_method(session: Session) -> None:
    structure, basis = _structure(), _basis()
    session.add(_hamiltonian(structure, basis))
    session.commit()
    session.add(_hamiltonian(structure, basis, sha256="cd" * 32, uri="cd/cdef.h5"))
    with pytest.raises(IntegrityError):
        session.commit()


def test_deleting_a_structure_cascades_to_its_rows(session: Session) -> None:
    structure, basis = _structure(), _basis()
    hamiltonian = _hamiltonian(structure, basis)
    session.add_all(
        [
            StructureSourceRow(structure=structure, source="a.cif", source_id="0"),
            hamiltonian,
            TopologyResultRow(
                hamiltonian=hamiltonian, method="wcc", settings_hash="x", dimension=3
            ),
        ]
    )
    session.commit()
    session.delete(session.get(StructureRow, structure.id))
    session.commit()
    for table in (StructureSourceRow, HamiltonianRow, TopologyResultRow):
        assert session.scalars(select(table)).all() == []
    assert session.scalars(select(BasisSetRow)).one().name == "gpaw-dzp"


def test_a_basis_in_use_cannot_be_deleted(session: Session) -> None:
    structure, basis = _structure(), _basis()
    session.add(_hamiltonian(structure, basis))
    session.commit()
    session.delete(basis)
    with pytest.raises(IntegrityError):
        session.commit()
