"""What hamdb writes with every topology result for the candidates view (migrations 0004-0005).

ORM listeners on TopologyResultRow (imported by hamdb.db.models, so they are always active):
the structure copies, `current_screen` and the DFT-check pointer `dft_topology_result_id` of
a new result (before its INSERT, as subqueries of it), the retirement of the Hamiltonian's
older 'wcc' row and, for a DFT result, the pointers of its structure's predictions (after it).
The columns' meaning is documented on TopologyResultRow.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, exists, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper
from sqlalchemy.sql.elements import ColumnElement

from hamdb.db.models import STRUCTURE_COPIES, HamiltonianRow, StructureRow, TopologyResultRow


def _dft_check(structure_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """SQL scalar: the DFT check of structure `structure_id` (NULL without one).

    The newest 'wcc' result of the structure's newest DFT SOC Hamiltonian that has one: what
    the candidates view showed through revision 0004, computed per row at query time.
    """
    dh = HamiltonianRow.__table__.alias("dh")
    dtr = TopologyResultRow.__table__.alias("dtr")
    return (
        select(dtr.c.id)
        .join_from(dh, dtr, dtr.c.hamiltonian_id == dh.c.id)
        .where(dh.c.structure_id == structure_id, dh.c.kind == "dft", dh.c.spin == "soc",
               dtr.c.method == "wcc")
        .order_by(dh.c.id.desc(), dtr.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )  # fmt: skip


def _structure_of(hamiltonian_id: int, kind: str) -> ColumnElement[Any]:
    """SQL scalar: the structure of SOC Hamiltonian `hamiltonian_id` if it is of `kind`."""
    h = HamiltonianRow.__table__.alias(f"{kind}_h")
    return (
        select(h.c.structure_id)
        .where(h.c.id == hamiltonian_id, h.c.kind == kind, h.c.spin == "soc")
        .scalar_subquery()
    )


@event.listens_for(TopologyResultRow, "before_insert")
def _fill_screening_columns(
    _mapper: Mapper[Any], connection: Connection, row: TopologyResultRow
) -> None:
    """Set a new result's structure copies, `current_screen` and DFT check inside its INSERT.

    All are subqueries of the INSERT itself, not values read beforehand: on SQLite a read
    before the first write would make the transaction a reader that must later upgrade its
    lock (and fail at once if another worker wrote meanwhile). On PostgreSQL a 'wcc' result
    first locks its Hamiltonian row (FOR NO KEY UPDATE, which FK checks do not wait for), so
    two screens of one Hamiltonian commit one after the other and the second retires the
    first's row in `_retire_older_screens`; and it locks its structure row, shared by a
    prediction's result and exclusive for a DFT one, so a prediction's result and its
    structure's DFT check written at the same time by two transactions also commit one after
    the other, and whichever commits second sees the other (`_lock_for_the_dft_check`).
    SQLite has a single writer anyway.
    """
    hamiltonian = HamiltonianRow.__table__.c
    structure = StructureRow.__table__.c
    for name in STRUCTURE_COPIES:
        copy = (
            select(structure[name])
            .join_from(HamiltonianRow.__table__, StructureRow.__table__,
                       hamiltonian.structure_id == structure.id)
            .where(hamiltonian.id == row.hamiltonian_id)
            .scalar_subquery()
        )  # fmt: skip
        setattr(row, name, copy)
    if row.method != "wcc":
        row.current_screen = False
        row.dft_topology_result_id = None
        return
    if connection.dialect.name == "postgresql":
        _lock_for_the_dft_check(connection, row.hamiltonian_id)
    row.current_screen = exists().where(  # type: ignore[assignment]
        hamiltonian.id == row.hamiltonian_id,
        hamiltonian.kind == "predicted",
        hamiltonian.spin == "soc",
    )
    row.dft_topology_result_id = _dft_check(  # type: ignore[assignment]
        _structure_of(row.hamiltonian_id, "predicted")
    )


def _lock_for_the_dft_check(connection: Connection, hamiltonian_id: int) -> None:
    """PostgreSQL: lock the Hamiltonian, then its structure as `_fill_screening_columns` says.

    Without the structure lock, a prediction's result and a DFT result of its structure
    inserted by two concurrent transactions would each miss the other (READ COMMITTED) and
    the prediction would stay without its DFT check. Predictions' results share the lock, so
    screening workers never wait for each other on it.
    """
    hamiltonian = HamiltonianRow.__table__.c
    found = connection.execute(
        select(hamiltonian.kind, hamiltonian.spin, hamiltonian.structure_id)
        .where(hamiltonian.id == hamiltonian_id)
        .with_for_update(key_share=True)
    ).first()
    if found is None or found.spin != "soc":
        return
    lock = select(StructureRow.__table__.c.id).where(
        StructureRow.__table__.c.id == found.structure_id
    )
    if found.kind == "dft":
        connection.execute(lock.with_for_update(key_share=True))
    else:
        connection.execute(lock.with_for_update(read=True))


@event.listens_for(TopologyResultRow, "after_insert")
def _retire_older_screens(
    _mapper: Mapper[Any], connection: Connection, row: TopologyResultRow
) -> None:
    """A new 'wcc' result replaces its Hamiltonian's older one in the candidates view.

    After the INSERT (not before): in one flush every row's before_insert runs before any
    INSERT, so only here does a second 'wcc' row of the same Hamiltonian see the first.
    """
    if row.method != "wcc":
        return
    table = TopologyResultRow.__table__.c
    connection.execute(
        update(TopologyResultRow.__table__)
        .where(
            table.hamiltonian_id == row.hamiltonian_id,
            table.method == "wcc",
            table.current_screen,
            table.id < row.id,
        )
        .values(current_screen=False, dft_topology_result_id=None)
    )


@event.listens_for(TopologyResultRow, "after_insert")
def _point_predictions_at_dft_check(
    _mapper: Mapper[Any], connection: Connection, row: TopologyResultRow
) -> None:
    """A new 'wcc' result of a DFT SOC Hamiltonian: its structure's current predicted rows
    get their DFT check again (`_dft_check`: not necessarily this row, if the structure has a
    newer DFT Hamiltonian). One UPDATE that changes nothing for any other result."""
    if row.method != "wcc":
        return
    table = TopologyResultRow.__table__.c
    structure_id = _structure_of(row.hamiltonian_id, "dft")
    predicted = HamiltonianRow.__table__.alias("predicted_h")
    predictions = select(predicted.c.id).where(
        predicted.c.structure_id == structure_id,
        predicted.c.kind == "predicted",
        predicted.c.spin == "soc",
    )
    connection.execute(
        update(TopologyResultRow.__table__)
        .where(table.current_screen, table.hamiltonian_id.in_(predictions))
        .values(dft_topology_result_id=_dft_check(structure_id))
    )
