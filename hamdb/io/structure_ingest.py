"""Put crystal structures into the database with the two levels of identity of DESIGN.md §4.

A copy of a stored structure (rotated, translated, permuted, another cell choice or supercell,
another file format) is not inserted again: its (source, source_id) is recorded against the
stored row. A structure that is the same *material* as a stored group (a strained or relaxed
variant) is a new row sharing that group's `material_id`; one that fits no group founds one
(`material_id` = its own id). The matching itself, and why it stays fast when a
formula + space-group block holds thousands of strained variants, is in structure_identity.py.

Each structure is first validated, its symmetry found and its JSON written (structure_prepare):
in this process, or with `workers` >= 2 in worker processes while this one matches and
writes (structure_workers). A symmetry search that does not finish is killed and retried
with spglib, and the structure reported if that fails too (structure_symmetry): never a hang.

Atomicity. Rows are written in batches, one transaction each (structures, their material ids
and their sources together), so a kill leaves whole batches; a re-run skips every
(source, source_id) already recorded before doing any work, so it completes the job and adds
nothing twice. On PostgreSQL each batch holds a transaction-scoped advisory lock, so two
ingests never insert the same structure concurrently, and rows another process committed are
pulled into the block cache at the start of each batch. On SQLite, one writer at a time.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text, tuple_
from sqlalchemy.orm import Session

from hamdb.db.models import StructureRow, StructureSourceRow, elements_key
from hamdb.errors import InputError
from hamdb.io.structure_cells import PlainCrystal, plain_crystal, to_json
from hamdb.io.structure_identity import Block, Crystal, Match, Matcher
from hamdb.io.structure_prepare import BlockKey, Prepared, Unit, UnitResult, prepare, prepare_units
from hamdb.io.structure_rows import NewStructure, write_structures
from hamdb.io.structure_workers import Pipeline
from hamdb.io.structures import RawFile, ReadFailure

if TYPE_CHECKING:
    from pymatgen.core import Structure

DEFAULT_BATCH_SIZE = 500
#: Key of the PostgreSQL advisory lock that serialises ingest transactions.
INGEST_LOCK_KEY = 0x68616D6462_01

Item = tuple["Structure | PlainCrystal", str, str] | ReadFailure


def _new_row(item: Prepared, founder: _Entry | None) -> NewStructure:
    """The `structures` row to insert for `item`, in `founder`'s group (None: its own)."""
    return NewStructure(
        reduced_formula=item.reduced_formula,
        spacegroup_number=item.spacegroup_number,
        n_sites=item.crystal.n_sites,
        elements=item.elements,
        elements_text=to_json(item.elements),
        elements_key=elements_key(item.elements),
        structure_text=item.structure_text,
        material_id=None if founder is None or founder.row is not None else founder.material_id,
        founder=None if founder is None else founder.row,
    )


@dataclass(eq=False)
class _Entry:
    """A stored (or being-stored) structure: its ids, and its row until its batch is
    written (then the ids are copied from it)."""

    structure_id: int | None
    material_id: int | None
    is_founder: bool = False
    row: NewStructure | None = None

    def settle(self) -> None:
        if self.row is not None:
            self.structure_id, self.material_id = self.row.structure_id, self.row.material_id
            self.row = None


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
        """StructureMatcher fits run (pairs the numpy comparison could not decide)."""
        return self._matcher.fits if self._matcher is not None else 0

    @property
    def compared(self) -> int:
        """Pairs compared by structure_compare."""
        return self._matcher.compared if self._matcher is not None else 0

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
            crystal = Crystal.from_payload(row.structure_json)
            block.add(crystal, _Entry(row.id, row.material_id, is_founder=founder), founder=founder)

    def match(self, item: Prepared) -> Match:
        """The entry `item` is a copy of, else the founder of the group it belongs to."""
        return self.matcher.match(item.crystal, self.blocks.get(item.block))

    def add(self, item: Prepared, entry: _Entry) -> None:
        """Record an entry about to be inserted (its ids known after the write)."""
        block = self.blocks.setdefault(item.block, Block())
        block.add(item.crystal, entry, founder=entry.is_founder)

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
            ("read", "parse", "validate", "symmetry", "serialise", "matching", "database"), 0.0
        )
    )
    #: CPU seconds of this process in its own stages (read, matching, database, and the
    #: time taken receiving the workers' results: `from workers`).
    cpu_timings: dict[str, float] = field(default_factory=dict)
    #: Pairs compared by structure_compare, and the StructureMatcher fits it left to do.
    compared: int = 0
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
            f"{self.seen} read: {_count(self.inserted, 'new structure')} "
            f"({_count(self.new_materials, 'new material')}), "
            f"{_count(self.duplicates, 'copy', 'copies')} of stored structures, "
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
            "cpu_timings": {k: round(v, 3) for k, v in self.cpu_timings.items()},
            "compared": self.compared,
            "fits": self.fits,
        }


def _now() -> tuple[float, float]:
    """(wall, CPU seconds of this process): what stage clocks count from."""
    return time.perf_counter(), time.process_time()


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


# -- ingest --------------------------------------------------------------------------------


class _Ingester:
    """State of one ingest run: the index, the sources already recorded, the report."""

    def __init__(self, session: Session, dedup: bool, report: IngestReport) -> None:
        self.session = session
        self.dedup = dedup
        self.report = report
        self.index = StructureIndex()
        self.is_postgres = session.get_bind().dialect.name == "postgresql"
        #: {source: {source_id: structure id}} of recorded sources, loaded per source.
        self.known: dict[str, dict[str, int]] = {}
        #: {source: {file name: source ids}}, to hand a worker the ids of one file to skip.
        self.known_by_file: dict[str, dict[str, set[str]]] = {}
        #: Whether structures go to worker processes (then as PlainCrystals where possible).
        self.ship_plain = False

    def _clock(self, stage: str, since: tuple[float, float]) -> tuple[float, float]:
        """Add the wall and CPU seconds since `since` (a `_now()`) to `stage`."""
        now = _now()
        report = self.report
        report.timings[stage] = report.timings.get(stage, 0.0) + now[0] - since[0]
        report.cpu_timings[stage] = report.cpu_timings.get(stage, 0.0) + now[1] - since[1]
        return now

    def lock(self) -> None:
        if self.is_postgres:
            self.session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": INGEST_LOCK_KEY}
            )

    def known_ids(self, source: str) -> dict[str, int]:
        """{source_id: structure id} recorded for `source` (one query per source per run)."""
        ids = self.known.get(source)
        if ids is None:
            t = _now()
            rows = self.session.execute(
                select(StructureSourceRow.source_id, StructureSourceRow.structure_id).where(
                    StructureSourceRow.source == source
                )
            ).all()
            ids = self.known[source] = {row.source_id: row.structure_id for row in rows}
            by_file = self.known_by_file[source] = {}
            for source_id in ids:
                by_file.setdefault(source_id.split("#", 1)[0], set()).add(source_id)
            self._clock("database", t)
        return ids

    def remember(self, source: str, source_id: str, structure_id: int) -> None:
        self.known_ids(source)[source_id] = structure_id
        self.known_by_file[source].setdefault(source_id.split("#", 1)[0], set()).add(source_id)

    def units(self, items: Iterable[Item | RawFile], strict: bool) -> Iterator[Unit]:
        """Work for prepare_unit; read failures and recorded sources are handled here."""
        iterator = iter(items)
        while True:
            t = _now()
            try:
                item = next(iterator)
            except StopIteration:
                break
            finally:
                self._clock("read", t)
            if isinstance(item, ReadFailure):
                self.report.seen += 1
                self.fail(item, strict)
            elif isinstance(item, RawFile):
                self.known_ids(item.source)
                skip = self.known_by_file[item.source].get(item.name, set())
                yield item, frozenset(skip)
            elif item[2] in self.known_ids(item[1]):
                self.report.seen += 1
                self.report.already_ingested += 1
            elif self.ship_plain and not isinstance(item[0], PlainCrystal):
                # A PlainCrystal pickles several times faster than a Structure.
                t = _now()
                plain = plain_crystal(item[0])
                self._clock("to arrays", t)
                yield ((plain if plain is not None else item[0]), item[1], item[2]), frozenset()
            else:
                yield item, frozenset()

    def write_batch(self, batch: list[Prepared], strict: bool) -> list[int]:
        """Match and insert one batch inside the current transaction; structure ids in order.

        An item whose (source, source_id) was recorded meanwhile (e.g. twice in one run)
        gets that structure's id and adds nothing.
        """
        report, session = self.report, self.session
        t = _now()
        self.lock()
        if self.dedup:
            self.index.sync(session, {item.block for item in batch})
        t = self._clock("database", t)
        ids: list[int] = [-1] * len(batch)
        new: list[tuple[int, _Entry, Prepared]] = []
        matched: list[tuple[int, _Entry, Prepared]] = []
        pending: dict[tuple[str, str], int] = {}
        for slot, item in enumerate(batch):
            key = (item.source, item.source_id)
            recorded = self.known_ids(item.source).get(item.source_id)
            if recorded is not None or key in pending:
                report.already_ingested += 1
                ids[slot] = recorded if recorded is not None else -2
                continue
            pending[key] = slot
            match = self.index.match(item) if self.dedup else Match()
            if isinstance(match.same, _Entry):
                report.duplicates += 1
                matched.append((slot, match.same, item))
                continue
            founder = match.material if isinstance(match.material, _Entry) else None
            entry = _Entry(None, None, is_founder=founder is None, row=_new_row(item, founder))
            if self.dedup:
                self.index.add(item, entry)
            report.inserted += 1
            report.new_materials += entry.is_founder
            new.append((slot, entry, item))
        t = self._clock("matching", t)
        write_structures(
            session,
            [entry.row for _, entry, _ in new if entry.row is not None],
            [
                (
                    entry.row if entry.row is not None else entry.structure_id,
                    item.source,
                    item.source_id,
                )
                for _, entry, item in new + matched
            ],
        )
        for _, entry, _ in new:
            entry.settle()
        for slot, entry, item in new + matched:
            entry.settle()
            assert entry.structure_id is not None
            ids[slot] = entry.structure_id
            self.remember(item.source, item.source_id, entry.structure_id)
            self.index.watermark = max(self.index.watermark, entry.structure_id)
        for slot, item in enumerate(batch):
            if ids[slot] == -2:
                ids[slot] = ids[pending[(item.source, item.source_id)]]
        self._clock("database", t)
        return ids

    def fail(self, failure: ReadFailure, strict: bool) -> None:
        self.report.failures.append(failure)
        if strict:
            raise InputError(f"{failure} (--strict: nothing was written)")

    def forget(self) -> None:
        """After a rollback: the caches may hold rows and sources that do not exist."""
        self.index.forget()
        self.known.clear()
        self.known_by_file.clear()


def ingest(
    session: Session,
    items: Iterable[Item | RawFile],
    *,
    dedup: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> IngestReport:
    """Insert structures from `items`: (Structure, source, source_id) tuples, ReadFailures,
    or RawFiles (hamdb.io.structures.iter_raw_files), which are parsed here.

    Commits after every `batch_size` structures (one transaction each), and commits first
    whatever the session holds; with `strict`, everything is one transaction and the first bad
    item raises InputError with nothing written. `dedup=False` skips the identity checks:
    every new source becomes a new row and its own material (re-runs still add nothing, by
    source). `workers` is the number of processes: with 2 or more, `workers` - 1 worker
    processes parse, validate and analyse structures while this one matches and writes
    (the parse to serialise timings then add up seconds across them). `progress(n)` gets
    the number of structures handled so far after each batch.
    """
    report = IngestReport()
    ingester = _Ingester(session, dedup, report)
    ingester.ship_plain = workers > 1
    start = time.perf_counter()
    if session.in_transaction():
        session.commit()
    try:
        with _prepared(ingester.units(items, strict), workers, dedup, report) as results:
            batch: list[Prepared] = []
            for prepared, skipped, timings in results:
                for stage, seconds in timings.items():
                    report.timings[stage] = report.timings.get(stage, 0.0) + seconds
                report.seen += skipped + len(prepared)
                report.already_ingested += skipped
                for item in prepared:
                    if isinstance(item, ReadFailure):
                        ingester.fail(item, strict)
                    else:
                        batch.append(item)
                if len(batch) >= batch_size:
                    _write(ingester, batch, strict, progress)
                    batch = []
            if batch:
                _write(ingester, batch, strict, progress)
        if strict:
            t = _now()
            session.commit()
            ingester._clock("database", t)
    except BaseException:
        session.rollback()
        ingester.forget()
        raise
    report.fits = ingester.index.fits
    report.compared = ingester.index.compared
    report.seconds = time.perf_counter() - start
    return report


def _write(
    ingester: _Ingester, batch: list[Prepared], strict: bool, progress: Callable[[int], None] | None
) -> None:
    ingester.write_batch(batch, strict)
    if not strict:
        t = _now()
        ingester.session.commit()
        ingester._clock("database", t)
    if progress is not None:
        progress(ingester.report.seen)


#: Units prepared together in one process (one round trip to the symmetry helper).
_IN_PROCESS_CHUNK = 64


def _chunks(units: Iterator[Unit], size: int) -> Iterator[list[Unit]]:
    while chunk := list(itertools.islice(units, size)):
        yield chunk


@contextmanager
def _prepared(
    units: Iterator[Unit], workers: int, dedup: bool, report: IngestReport
) -> Iterator[Iterator[UnitResult]]:
    """prepare_unit's results, in order: in this process (`workers` <= 1), else in
    `workers` - 1 worker processes (structure_workers) while this one matches and writes.

    Workers find every crystal's reduced lengths (off this process); here only those that
    meet another in their block get them, and the cells to compare are made here either way.
    The time this process spent waiting for and unpickling the workers' results goes into
    `report` ("from workers").
    """
    if workers <= 1:
        yield (
            result
            for chunk in _chunks(units, _IN_PROCESS_CHUNK)
            for result in prepare_units(chunk, analyse=False)
        )
        return
    with Pipeline(workers - 1, analyse=dedup) as pipeline:
        yield pipeline.map(units)
    report.timings["from workers"] = pipeline.waited[0]
    report.cpu_timings["from workers"] = pipeline.waited[1]


def find_or_add_structure(
    session: Session, structure: Structure, source: str, source_id: str
) -> tuple[int, bool]:
    """(structure id, whether a new row was inserted) for one structure, in the caller's
    transaction (flushed, not committed). Raises InputError if the structure is invalid.
    """
    report = IngestReport()
    ingester = _Ingester(session, True, report)
    prepared = prepare(structure, source, source_id)
    if isinstance(prepared, ReadFailure):
        raise InputError(str(prepared))
    (structure_id,) = ingester.write_batch([prepared], strict=True)
    return structure_id, report.inserted == 1
