"""Read-side queries behind `hamdb info` and `hamdb structures list`.

Every filter value is a bound parameter: nothing a user types is formatted into SQL.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, func, inspect, make_url, select, table
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from hamdb.db.engine import make_engine
from hamdb.db.models import StructureElementRow, StructureRow, StructureSourceRow
from hamdb.errors import DatabaseError, InputError

_ELEMENT = re.compile(r"^[A-Z][a-z]{0,2}$")


def mask_url(url: str) -> str:
    """`url` with its password replaced by ***, fit for printing and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per table (every table the database has, except alembic's bookkeeping)."""
    try:
        names = sorted(set(inspect(engine).get_table_names()) - {"alembic_version"})
        with engine.connect() as connection:
            return {
                name: connection.execute(select(func.count()).select_from(table(name))).scalar_one()
                for name in names
            }
    except OperationalError as exc:
        raise DatabaseError(f"{mask_url(str(engine.url))}: cannot count rows: {exc.orig}") from None


@dataclass(frozen=True)
class StructureSummary:
    """One line of `hamdb structures list`."""

    id: int
    reduced_formula: str
    spacegroup_number: int
    n_sites: int
    elements: list[str]
    material_id: int | None
    source: str | None
    source_id: str | None
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["created_at"] = self.created_at.isoformat()
        return payload


@dataclass(frozen=True)
class StructureFilter:
    """What `hamdb structures list` selects; every field optional.

    elements: structures containing all of these (others may be present too).
    formula: reduced formula in any order of elements ("Se3Bi2" finds Bi2Se3).
    """

    elements: tuple[str, ...] = ()
    formula: str | None = None
    spacegroup: int | None = None
    max_sites: int | None = None

    def __post_init__(self) -> None:
        for element in self.elements:
            if not _ELEMENT.match(element):
                raise InputError(f"--elements: {element!r} is not an element symbol (e.g. Bi)")
        if self.spacegroup is not None and not 1 <= self.spacegroup <= 230:
            raise InputError(f"--spacegroup: {self.spacegroup} is not a space group number 1-230")


def normalise_formula(formula: str) -> str:
    """The reduced formula as ingest stores it (pymatgen's `Composition.reduced_formula`)."""
    from pymatgen.core import Composition

    try:
        return Composition(formula).reduced_formula
    except (ValueError, KeyError) as exc:
        raise InputError(f"--formula: {formula!r} is not a chemical formula ({exc})") from None


def _conditions(where: StructureFilter) -> list[ColumnElement[bool]]:
    # Elements through structure_elements' (element, structure_id) index on both databases.
    conditions = [StructureRow.has_element(el) for el in where.elements]
    if where.formula is not None:
        conditions.append(StructureRow.reduced_formula == normalise_formula(where.formula))
    if where.spacegroup is not None:
        conditions.append(StructureRow.spacegroup_number == where.spacegroup)
    if where.max_sites is not None:
        conditions.append(StructureRow.n_sites <= where.max_sites)
    return conditions


def structures_query(where: StructureFilter, *, limit: int | None = 50) -> Select[Any]:
    """The SELECT of `hamdb structures list`: matching structures by id, at most `limit`."""
    first_source_id = (
        select(func.min(StructureSourceRow.id))
        .where(StructureSourceRow.structure_id == StructureRow.id)
        .correlate(StructureRow)
        .scalar_subquery()
    )
    return (
        select(
            StructureRow.id,
            StructureRow.reduced_formula,
            StructureRow.spacegroup_number,
            StructureRow.n_sites,
            StructureRow.elements,
            StructureRow.material_id,
            StructureSourceRow.source,
            StructureSourceRow.source_id,
            StructureRow.created_at,
        )
        .outerjoin(StructureSourceRow, StructureSourceRow.id == first_source_id)
        .where(*_conditions(where))
        .order_by(StructureRow.id)
        .limit(limit)
    )


def structures_count(where: StructureFilter) -> Select[Any]:
    """How many structures match `where` (the total `hamdb structures list` reports).

    Filtered by elements only, the count is taken from structure_elements alone (one index
    range per element, joined on structure_id): its foreign key guarantees each structure
    exists, and a semi-join back to a large structures table costs ~20x more for a common
    element.
    """
    only_elements = where.formula is None and where.spacegroup is None and where.max_sites is None
    if where.elements and only_elements:
        first, *others = [aliased(StructureElementRow) for _ in where.elements]
        ids = select(first.structure_id).where(first.element == where.elements[0])
        for alias, element in zip(others, where.elements[1:], strict=True):
            ids = ids.join(
                alias, (alias.structure_id == first.structure_id) & (alias.element == element)
            )
        return select(func.count()).select_from(ids.subquery())
    return select(func.count()).select_from(StructureRow).where(*_conditions(where))


def list_structures(
    url: str, where: StructureFilter, *, limit: int | None = 50
) -> tuple[list[StructureSummary], int]:
    """Structures matching `where`, by id, at most `limit`; and how many match in all."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(structures_query(where, limit=limit)).all()
            total = connection.execute(structures_count(where)).scalar_one()
    except OperationalError as exc:
        raise DatabaseError(f"{mask_url(url)}: cannot list structures: {exc.orig}") from None
    return [StructureSummary(*row) for row in rows], total
