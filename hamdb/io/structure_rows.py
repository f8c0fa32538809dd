"""Ingest's bulk writes: a batch of structures, their elements and their sources, in few
statements.

PostgreSQL: ids are drawn from the table's sequence in one query, so every material_id is
known before the rows go out, and the rows are streamed with COPY (the server parses no SQL
per row). SQLite: the rows of new material groups go in first with RETURNING, their
material_id is set to their own id by one UPDATE, then the other rows go in with theirs.

The JSON columns arrive as text already serialised (structure_cells.to_json, in the worker
processes, where the float formatting costs nothing to the writer): the same JSON values as
SQLAlchemy's JSON type writes (without its blanks between items), so rows read back alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, bindparam, insert, text, update
from sqlalchemy.orm import Session

from hamdb.db.models import StructureRow, StructureSourceRow, utcnow

#: The structures columns written, in COPY order.
_COLUMNS = (
    "id",
    "reduced_formula",
    "spacegroup_number",
    "n_sites",
    "elements",
    "elements_key",
    "structure_json",
    "material_id",
    "created_at",
)


@dataclass
class NewStructure:
    """One row to insert. `material_id` None means: founds a group (its own id); `founder`
    is the NewStructure of this batch whose id becomes the material_id."""

    reduced_formula: str
    spacegroup_number: int
    n_sites: int
    elements: list[str]
    elements_text: str
    elements_key: str
    structure_text: str
    material_id: int | None = None
    founder: NewStructure | None = None
    structure_id: int | None = None

    def row(self, created_at: datetime) -> dict[str, Any]:
        return {
            "id": self.structure_id,
            "reduced_formula": self.reduced_formula,
            "spacegroup_number": self.spacegroup_number,
            "n_sites": self.n_sites,
            "elements": self.elements_text,
            "elements_key": self.elements_key,
            "structure_json": self.structure_text,
            "material_id": self.material_id,
            "created_at": created_at,
        }


def _elements_table() -> Any:
    """The `structure_elements` index table where the schema has it (migration 0004), else
    None: ingest fills it as the ORM does on its own inserts of StructureRow."""
    return StructureRow.metadata.tables.get("structure_elements")


def write_structures(
    session: Session, rows: Sequence[NewStructure], sources: Sequence[tuple[Any, str, str]]
) -> None:
    """Insert `rows` (founders of new groups before their members) and fill in their
    structure_id and material_id; then the (row or structure id, source, source_id) triples
    of `sources`, a row standing for its id."""
    if session.get_bind().dialect.name == "postgresql":
        _copy(session, rows, sources)
    else:
        _insert(session, rows, sources)


def _resolve(rows: Sequence[NewStructure]) -> None:
    for row in rows:
        if row.material_id is None:
            row.material_id = row.structure_id if row.founder is None else row.founder.material_id


def _source_rows(sources: Sequence[tuple[Any, str, str]]) -> list[tuple[int, str, str]]:
    out = []
    for owner, source, source_id in sources:
        structure_id = owner.structure_id if isinstance(owner, NewStructure) else owner
        out.append((int(structure_id), source, source_id))
    return out


def _copy(
    session: Session, rows: Sequence[NewStructure], sources: Sequence[tuple[Any, str, str]]
) -> None:
    now = utcnow()
    connection = session.connection()
    if rows:
        ids = connection.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('structures', 'id'))"
                " FROM generate_series(1, :n)"
            ),
            {"n": len(rows)},
        ).scalars()
        for row, structure_id in zip(rows, sorted(ids), strict=True):
            row.structure_id = structure_id
        _resolve(rows)
    cursor = connection.connection.dbapi_connection.cursor()  # psycopg, in this transaction
    try:
        if rows:
            with cursor.copy(f"COPY structures ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    values = row.row(now)
                    copy.write_row([values[name] for name in _COLUMNS])
            if _elements_table() is not None:
                with cursor.copy(
                    "COPY structure_elements (structure_id, element) FROM STDIN"
                ) as copy:
                    for row in rows:
                        for element in row.elements:
                            copy.write_row((row.structure_id, element))
        if sources:
            with cursor.copy(
                "COPY structure_sources (structure_id, source, source_id, created_at) FROM STDIN"
            ) as copy:
                for structure_id, source, source_id in _source_rows(sources):
                    copy.write_row((structure_id, source, source_id, now))
    finally:
        cursor.close()


def _insert(
    session: Session, rows: Sequence[NewStructure], sources: Sequence[tuple[Any, str, str]]
) -> None:
    now = utcnow()
    table = StructureRow.__table__
    statement = (
        insert(table)
        .values(
            {
                name: bindparam(name, type_=Text)
                if name in ("elements", "structure_json")
                else bindparam(name)
                for name in _COLUMNS
                if name != "id"
            }
        )
        .returning(table.c.id, sort_by_parameter_order=True)
    )
    founders = [row for row in rows if row.founder is None and row.material_id is None]
    members = [row for row in rows if not (row.founder is None and row.material_id is None)]
    for group in (founders, members):
        if not group:
            continue
        _resolve(group)
        values = []
        for row in group:
            value = row.row(now)
            del value["id"]
            values.append(value)
        ids = session.execute(statement, values).scalars().all()
        for row, structure_id in zip(group, ids, strict=True):
            row.structure_id = structure_id
        if group is founders:
            _resolve(group)
            session.execute(
                update(table)
                .where(table.c.id.in_(bindparam("ids", expanding=True)))
                .values(material_id=table.c.id),
                {"ids": list(ids)},
            )
    elements = _elements_table()
    if rows and elements is not None:
        session.execute(
            insert(elements),
            [
                {"structure_id": row.structure_id, "element": e}
                for row in rows
                for e in row.elements
            ],
        )
    if sources:
        session.execute(
            insert(StructureSourceRow.__table__),
            [
                {"structure_id": sid, "source": source, "source_id": source_id, "created_at": now}
                for sid, source, source_id in _source_rows(sources)
            ],
        )
