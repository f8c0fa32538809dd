"""Put crystal structures into the database with the two levels of identity of DESIGN.md §4.

A copy of a stored structure (rotated, translated, permuted, another cell choice or supercell,
another file format) is not inserted again: its (source, source_id) is recorded against the
stored row. A structure that is the same *material* as a stored group (a strained or relaxed
variant) is a new row sharing that group's `material_id`; one that fits no group founds one
(`material_id` = its own id). The matching itself, and why it stays fast when a
formula + space-group block holds thousands of strained variants, is in structure_identity.py.

Atomicity. Rows are written in batches, one transaction each (structures, their material ids
and their sources together), so a kill leaves whole batches; a re-run skips every
(source, source_id) already recorded before doing any work, so it completes the job and adds
nothing twice. On PostgreSQL each batch holds a transaction-scoped advisory lock, so two
ingests never insert the same structure concurrently, and rows another process committed are
pulled into the block cache at the start of each batch. On SQLite, one writer at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text, tuple_
from sqlalchemy.orm import Session

from hamdb.db.models import StructureRow, StructureSourceRow
from hamdb.errors import InputError
from hamdb.io.structure_identity import Block, Crystal, Match, Matcher, symmetry_of
from hamdb.io.structures import ReadFailure, validate_structure

if TYPE_CHECKING:
    from pymatgen.core import Structure

DEFAULT_BATCH_SIZE = 500
#: Key of the PostgreSQL advisory lock that serialises ingest transactions.
INGEST_LOCK_KEY = 0x68616D6462_01

BlockKey = tuple[str, int]
Item = tuple["Structure", str, str] | ReadFailure


def elements_key(elements: Iterable[str]) -> str:
    """`structures.elements_key`: sorted symbols joined as "-Bi-Se-" (LIKE '%-Bi-%' filters)."""
    return "-" + "-".join(sorted(elements)) + "-"


@dataclass
class Prepared:
    """A validated structure with its indexed columns, ready to match and insert."""

    crystal: Crystal
    source: str
    source_id: str
    reduced_formula: str
    spacegroup_number: int
    elements: list[str]

    @property
    def block(self) -> BlockKey:
        return (self.reduced_formula, self.spacegroup_number)

    def row(self) -> StructureRow:
        structure = self.crystal.structure
        return StructureRow(
            reduced_formula=self.reduced_formula,
            spacegroup_number=self.spacegroup_number,
            n_sites=len(structure),
            elements=self.elements,
            elements_key=elements_key(self.elements),
            structure_json=structure.as_dict(),
        )


def prepare(structure: Structure, source: str, source_id: str) -> Prepared | ReadFailure:
    """Validate one structure and compute its block key; a ReadFailure says why not."""
    reason = validate_structure(structure)
    if reason is not None:
        return ReadFailure(source, source_id, reason)
    return prepare_valid(structure, source, source_id)


def prepare_valid(structure: Structure, source: str, source_id: str) -> Prepared | ReadFailure:
    """`prepare` for a structure that already passed validate_structure."""
    try:
        number, n_primitive = symmetry_of(structure)
    except InputError as exc:
        return ReadFailure(source, source_id, str(exc))
    composition = structure.composition
    return Prepared(
        crystal=Crystal(structure, n_primitive),
        source=source,
        source_id=source_id,
        reduced_formula=composition.reduced_formula,
        spacegroup_number=number,
        elements=sorted(el.symbol for el in composition.elements),
    )


@dataclass(eq=False)
class _Entry:
    """A stored (or being-stored) structure: its ids, and its row until the batch is flushed."""

    structure_id: int | None
    material_id: int | None
    row: StructureRow | None = None
    founder: _Entry | None = None  # the group's founder while ids are not yet known
    is_founder: bool = False


class StructureIndex:
    """The database's structures grouped by block, loaded lazily and kept in memory."""

    def __init__(self) -> None:
        self.blocks: dict[BlockKey, Block] = {}
        self.watermark = 0
        self._matcher: Matcher | None = None

    @property
    def matcher(self) -> Matcher:
        if self._matcher is None:
            self._matcher = Matcher()
        return self._matcher

    @property
    def fits(self) -> int:
        return self._matcher.fits if self._matcher is not None else 0

    def sync(self, session: Session, keys: Iterable[BlockKey]) -> None:
        """Load the blocks `keys` not yet cached, and rows others committed since last time.

        Call under the ingest lock: rows above the watermark are then other processes' rows.
        """
        latest = session.scalar(select(func.max(StructureRow.id))) or 0
        if latest > self.watermark and self.blocks:
            fresh = session.execute(
                select(
                    StructureRow.id, StructureRow.reduced_formula, StructureRow.spacegroup_number
                ).where(StructureRow.id > self.watermark)
            ).all()
            wanted = [row.id for row in fresh if (row[1], row[2]) in self.blocks]
            if wanted:
                self._load(session, StructureRow.id.in_(wanted))
        self.watermark = max(self.watermark, latest)
        missing = sorted({key for key in keys if key not in self.blocks})
        for start in range(0, len(missing), 400):
            chunk = missing[start : start + 400]
            for key in chunk:
                self.blocks[key] = Block()
            self._load(
                session,
                tuple_(StructureRow.reduced_formula, StructureRow.spacegroup_number).in_(chunk),
            )

    def _load(self, session: Session, condition: Any) -> None:
        from pymatgen.core import Structure

        rows = session.execute(
            select(
                StructureRow.id,
                StructureRow.material_id,
                StructureRow.reduced_formula,
                StructureRow.spacegroup_number,
                StructureRow.structure_json,
            )
            .where(condition)
            .order_by(StructureRow.id)
        ).all()
        for row in rows:
            founder = row.material_id == row.id
            block = self.blocks.setdefault((row.reduced_formula, row.spacegroup_number), Block())
            crystal = Crystal(Structure.from_dict(row.structure_json))
            block.add(crystal, _Entry(row.id, row.material_id, is_founder=founder), founder=founder)

    def match(self, item: Prepared) -> Match:
        """The entry `item` is a copy of, else the founder of the group it belongs to."""
        return self.matcher.match(item.crystal, self.blocks.get(item.block))

    def add(self, item: Prepared, row: StructureRow, founder: _Entry | None) -> _Entry:
        """Record a row about to be inserted (ids filled in after the flush)."""
        entry = _Entry(
            structure_id=None,
            material_id=founder.material_id if founder is not None else None,
            row=row,
            founder=founder,
            is_founder=founder is None,
        )
        block = self.blocks.setdefault(item.block, Block())
        block.add(item.crystal, entry, founder=founder is None)
        return entry

    def forget(self) -> None:
        """Drop everything (after a rollback the cache may hold rows that do not exist)."""
        self.blocks.clear()
        self.watermark = 0


# -- the report ----------------------------------------------------------------------------


@dataclass
class IngestReport:
    """What an ingest did. Times in seconds; `timings` splits them by stage."""

    seen: int = 0
    inserted: int = 0
    new_materials: int = 0
    duplicates: int = 0
    already_ingested: int = 0
    failures: list[ReadFailure] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(
            ("read", "validate", "symmetry", "matching", "serialise", "database"), 0.0
        )
    )
    fits: int = 0

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def nothing_new(self) -> bool:
        return self.inserted == 0 and self.duplicates == 0 and self.failed == 0

    def summary(self) -> str:
        """One line for people."""
        if self.nothing_new and self.already_ingested:
            return f"nothing new: all {self.already_ingested} structures were already ingested"
        rate = self.seen / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.seen} read: {self.inserted} new structures ({self.new_materials} new "
            f"materials), {self.duplicates} copies of stored structures, "
            f"{self.already_ingested} already ingested, {self.failed} failed "
            f"({self.seconds:.1f} s, {rate:.0f}/s)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "inserted": self.inserted,
            "new_materials": self.new_materials,
            "duplicates": self.duplicates,
            "already_ingested": self.already_ingested,
            "failed": self.failed,
            "failures": [
                {"source": f.source, "source_id": f.source_id, "reason": f.reason}
                for f in self.failures
            ],
            "seconds": round(self.seconds, 3),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "fits": self.fits,
        }


# -- ingest --------------------------------------------------------------------------------


class _Ingester:
    """State of one ingest run: the index, the report, and the batch being written."""

    def __init__(self, session: Session, dedup: bool, report: IngestReport) -> None:
        self.session = session
        self.dedup = dedup
        self.report = report
        self.index = StructureIndex()
        self.is_postgres = session.get_bind().dialect.name == "postgresql"

    def _clock(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.report.timings[stage] += now - since
        return now

    def lock(self) -> None:
        if self.is_postgres:
            self.session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": INGEST_LOCK_KEY}
            )

    def known_sources(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """{(source, source_id): structure id} for the pairs already recorded."""
        found: dict[tuple[str, str], int] = {}
        for start in range(0, len(pairs), 400):
            chunk = pairs[start : start + 400]
            rows = self.session.execute(
                select(
                    StructureSourceRow.source,
                    StructureSourceRow.source_id,
                    StructureSourceRow.structure_id,
                ).where(tuple_(StructureSourceRow.source, StructureSourceRow.source_id).in_(chunk))
            ).all()
            found.update({(r.source, r.source_id): r.structure_id for r in rows})
        return found

    def write_batch(self, batch: list[tuple[Structure, str, str]], strict: bool) -> list[int]:
        """Match and insert one batch inside the current transaction; structure ids in order.

        Items whose source is already recorded return that structure's id. Failed items are
        reported (and raise InputError when `strict`); their slot holds -1.
        """
        report, session = self.report, self.session
        t = time.perf_counter()
        self.lock()
        known = self.known_sources(sorted({(source, sid) for _, source, sid in batch}))
        t = self._clock("database", t)
        ids: list[int] = []
        todo: list[tuple[int, Prepared]] = []
        seen_now: dict[tuple[str, str], int] = {}
        for structure, source, source_id in batch:
            key = (source, source_id)
            if key in known or key in seen_now:
                report.already_ingested += 1
                ids.append(known.get(key, -2))
                continue
            seen_now[key] = len(ids)
            t = time.perf_counter()
            reason = validate_structure(structure)
            t = self._clock("validate", t)
            prepared: Prepared | ReadFailure
            if reason is not None:
                prepared = ReadFailure(source, source_id, reason)
            else:
                prepared = prepare_valid(structure, source, source_id)
                t = self._clock("symmetry", t)
            if isinstance(prepared, ReadFailure):
                self.fail(prepared, strict)
                ids.append(-1)
                continue
            todo.append((len(ids), prepared))
            ids.append(-1)
        t = time.perf_counter()
        if self.dedup:
            self.index.sync(session, {p.block for _, p in todo})
        t = self._clock("database", t)
        new: list[tuple[int, _Entry, Prepared]] = []
        matched: list[tuple[int, _Entry, Prepared]] = []
        for slot, item in todo:
            match = self.index.match(item) if self.dedup else Match()
            if isinstance(match.same, _Entry):
                report.duplicates += 1
                matched.append((slot, match.same, item))
                continue
            founder = match.material if isinstance(match.material, _Entry) else None
            t = self._clock("matching", t)
            row = item.row()
            t = self._clock("serialise", t)
            entry = (
                self.index.add(item, row, founder)
                if self.dedup
                else _Entry(None, None, row=row, is_founder=True)
            )
            report.inserted += 1
            report.new_materials += entry.is_founder
            new.append((slot, entry, item))
        t = self._clock("matching", t)
        session.add_all([entry.row for _, entry, _ in new if entry.row is not None])
        session.flush()
        for _, entry, _ in new:
            assert entry.row is not None
            entry.structure_id = entry.row.id
            self.index.watermark = max(self.index.watermark, entry.structure_id)
        for _, entry, _ in new:
            assert entry.row is not None
            if entry.is_founder:
                entry.material_id = entry.structure_id
            elif entry.material_id is None and entry.founder is not None:
                entry.material_id = entry.founder.material_id
            entry.row.material_id = entry.material_id
        sources = []
        for slot, entry, item in new + matched:
            assert entry.structure_id is not None
            ids[slot] = entry.structure_id
            sources.append(
                StructureSourceRow(
                    structure_id=entry.structure_id, source=item.source, source_id=item.source_id
                )
            )
        session.add_all(sources)
        session.flush()
        for _, entry, _ in new:
            entry.row = None
            entry.founder = None
        for slot, value in enumerate(ids):
            if value == -2:  # a repeat of an item earlier in this batch
                key = (batch[slot][1], batch[slot][2])
                ids[slot] = ids[seen_now[key]]
        self._clock("database", t)
        return ids

    def fail(self, failure: ReadFailure, strict: bool) -> None:
        self.report.failures.append(failure)
        if strict:
            raise InputError(f"{failure} (--strict: nothing was written)")


def _batches(
    items: Iterable[Item], size: int, ingester: _Ingester, strict: bool
) -> Iterator[list[tuple[Structure, str, str]]]:
    """Groups of `size` structures; read failures are reported on the way."""
    batch: list[tuple[Structure, str, str]] = []
    iterator = iter(items)
    while True:
        t = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            break
        finally:
            ingester._clock("read", t)
        ingester.report.seen += 1
        if isinstance(item, ReadFailure):
            ingester.fail(item, strict)
            continue
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def ingest(
    session: Session,
    items: Iterable[Item],
    *,
    dedup: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Insert structures from `items` ((Structure, source, source_id) or ReadFailure).

    Commits after every `batch_size` items (one transaction each); with `strict`, everything
    is one transaction and the first bad item raises InputError with nothing written.
    `dedup=False` skips the identity checks: every new source becomes a new row and its own
    material (re-runs still add nothing, by source). `progress(n)` is called with the number
    of items handled after each batch.
    """
    report = IngestReport()
    ingester = _Ingester(session, dedup, report)
    start = time.perf_counter()
    if session.in_transaction():
        session.commit()
    done = 0
    try:
        for batch in _batches(items, batch_size, ingester, strict):
            ingester.write_batch(batch, strict)
            if not strict:
                t = time.perf_counter()
                session.commit()
                ingester._clock("database", t)
                session.expunge_all()
            done += len(batch)
            if progress is not None:
                progress(done)
        if strict:
            t = time.perf_counter()
            session.commit()
            ingester._clock("database", t)
    except BaseException:
        session.rollback()
        ingester.index.forget()
        raise
    report.fits = ingester.index.fits
    report.seconds = time.perf_counter() - start
    return report


def find_or_add_structure(
    session: Session, structure: Structure, source: str, source_id: str
) -> tuple[int, bool]:
    """(structure id, whether a new row was inserted) for one structure, in the caller's
    transaction (flushed, not committed). Raises InputError if the structure is invalid.
    """
    report = IngestReport()
    ingester = _Ingester(session, True, report)
    (structure_id,) = ingester.write_batch([(structure, source, source_id)], strict=True)
    return structure_id, report.inserted == 1
