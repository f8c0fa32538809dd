"""Put crystal structures into the database with the two levels of identity of DESIGN.md §4.

* *The same structure*: a copy that pymatgen's `StructureMatcher(ltol=0.02, stol=0.05,
  angle_tol=0.5, primitive_cell=True, scale=False)` fits onto a stored one (rotated, translated,
  permuted, another cell choice or supercell, another file format). It is not inserted again;
  its (source, source_id) is recorded against the stored row.
* *The same material*: Materials Project tolerances (ltol=0.2, stol=0.3, angle_tol=5,
  scale=True). A new row that shares the `material_id` of the group it fits (strained or
  relaxed variants); a structure that fits no group founds one (`material_id` = its own id).

Both are blocked by reduced formula + space-group number (symprec 0.1 Å, angle tolerance 5°,
computed with moyopy, a fast Rust implementation of spglib's algorithm).

Speed. Matching only ever looks inside one block, and inside it cheap tests run before
`StructureMatcher`:
  1. volume per atom (invariant under rotation, translation, permutation, supercells): a tight
     match changes lattice lengths by ≤ 2 %, so copies whose volume per atom differs by more
     than `VOLUME_TOLERANCE` (log ratio) are skipped, vectorised over the whole block;
  2. the Niggli-reduced primitive cell of each structure, computed once and cached (pymatgen's
     own reduction, so `fit(..., skip_structure_reduction=True)` gives the same answer as a
     plain `fit`); inputs that moyopy finds already primitive skip the primitive search;
  3. equal primitive site counts and close sorted reduced lattice lengths (the successive
     minima of the lattice, continuous in the lattice, so a tolerance never loses a match);
  4. for "same material", only each group's founder is tried, not every member.
A new structure in a block of n rows with g material groups costs O(n) float comparisons,
about one `fit` per real candidate, and ≤ g material fits: a block of thousands of strained
variants stays fast because different strains have different volumes or lattice lengths.

Atomicity. Rows are written in batches, one transaction each (structures, their material ids
and their sources together), so a kill leaves whole batches; a re-run skips every
(source, source_id) already recorded before doing any work, so it completes the job and adds
nothing twice. On PostgreSQL each batch holds a transaction-scoped advisory lock, so two
ingests never insert the same structure concurrently; rows that another process committed are
pulled into the block cache at the start of each batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select, text, tuple_
from sqlalchemy.orm import Session

from hamdb.db.models import StructureRow, StructureSourceRow
from hamdb.errors import InputError
from hamdb.io.structures import ReadFailure, validate_structure

if TYPE_CHECKING:
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

SYMPREC = 0.1
ANGLE_TOLERANCE_DEG = 5.0
SAME_STRUCTURE = {
    "ltol": 0.02,
    "stol": 0.05,
    "angle_tol": 0.5,
    "primitive_cell": True,
    "scale": False,
}
SAME_MATERIAL = {"ltol": 0.2, "stol": 0.3, "angle_tol": 5.0, "primitive_cell": True, "scale": True}
#: |log(volume-per-atom ratio)| above which two structures cannot be the same (ltol 2 % on
#: three lengths is ≤ 6 %, plus the angle tolerance; a wide margin loses no match).
VOLUME_TOLERANCE = 0.10
#: |log(ratio)| of sorted Niggli lengths above which no fit is tried: ltol (0.02) plus the
#: effect of the angle tolerance, with margin.
LENGTH_TOLERANCE_STRUCTURE = 0.04
LENGTH_TOLERANCE_MATERIAL = 0.50
DEFAULT_BATCH_SIZE = 500
#: Key of the PostgreSQL advisory lock that serialises ingest transactions.
INGEST_LOCK_KEY = 0x68616D6462_01

BlockKey = tuple[str, int]
Item = tuple["Structure", str, str] | ReadFailure


# -- per-structure preparation -------------------------------------------------------------


def symmetry_of(structure: Structure) -> tuple[int, bool]:
    """(space-group number at symprec 0.1, whether the cell given is already primitive)."""
    import moyopy

    cell = moyopy.Cell(
        structure.lattice.matrix.tolist(),
        structure.frac_coords.tolist(),
        [site.specie.Z for site in structure],
    )
    try:
        data = moyopy.MoyoDataset(
            cell, symprec=SYMPREC, angle_tolerance=math.radians(ANGLE_TOLERANCE_DEG)
        )
    except BaseException as exc:  # moyopy raises a Rust panic type not derived from Exception
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise InputError(f"symmetry search failed ({exc})") from None
    return int(data.number), len(data.prim_std_cell.numbers) == len(structure)


def elements_key(elements: Iterable[str]) -> str:
    """`structures.elements_key`: sorted symbols joined as "-Bi-Se-" (LIKE '%-Bi-%' filters)."""
    return "-" + "-".join(sorted(elements)) + "-"


@dataclass
class Prepared:
    """A validated structure with its indexed columns, ready to match and insert."""

    structure: Structure
    source: str
    source_id: str
    reduced_formula: str
    spacegroup_number: int
    is_primitive: bool
    volume_per_atom: float
    elements: list[str]
    _reduced: Structure | None = field(default=None, repr=False)
    _lengths: np.ndarray | None = field(default=None, repr=False)

    @property
    def block(self) -> BlockKey:
        return (self.reduced_formula, self.spacegroup_number)

    def reduced(self) -> Structure:
        """Niggli-reduced primitive cell, computed once (what StructureMatcher compares)."""
        if self._reduced is None:
            self._reduced = reduced_structure(self.structure, self.is_primitive)
        return self._reduced

    def lengths(self) -> np.ndarray:
        if self._lengths is None:
            self._lengths = _lengths(self.reduced())
        return self._lengths

    def row(self) -> StructureRow:
        return StructureRow(
            reduced_formula=self.reduced_formula,
            spacegroup_number=self.spacegroup_number,
            n_sites=len(self.structure),
            elements=self.elements,
            elements_key=elements_key(self.elements),
            structure_json=self.structure.as_dict(),
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
        number, is_primitive = symmetry_of(structure)
    except InputError as exc:
        return ReadFailure(source, source_id, str(exc))
    composition = structure.composition
    return Prepared(
        structure=structure,
        source=source,
        source_id=source_id,
        reduced_formula=composition.reduced_formula,
        spacegroup_number=number,
        is_primitive=is_primitive,
        volume_per_atom=structure.volume / len(structure),
        elements=sorted(el.symbol for el in composition.elements),
    )


def reduced_structure(structure: Structure, is_primitive: bool = False) -> Structure:
    """The Niggli-reduced primitive cell as StructureMatcher computes it, sites sorted by
    species (a permutation, which matching ignores, that makes its species mask cheap).

    A cell moyopy already found primitive skips pymatgen's (slow) primitive search.
    """
    # The steps of StructureMatcher's own reduction (niggli, then primitive), so that
    # fit(..., skip_structure_reduction=True) equals a plain fit; not its lru_cache'd helper,
    # whose cache compares every structure of a formula with Structure.__eq__.
    reduced = structure.get_reduced_structure(reduction_algo="niggli")
    if not is_primitive:
        reduced = reduced.get_primitive_structure()
    return reduced.get_sorted_structure()


def _lengths(reduced: Structure) -> np.ndarray:
    """Sorted Niggli lengths (Å): the successive minima of the lattice, which move by at most
    about ltol when a lattice fit succeeds, so they make a safe pre-filter."""
    return np.sort(np.asarray(reduced.lattice.get_niggli_reduced_lattice().abc, dtype=float))


# -- the identity index --------------------------------------------------------------------


@dataclass
class _Entry:
    """One stored (or being-stored) structure inside a block."""

    structure_id: int | None
    material_id: int | None
    structure: Structure
    volume_per_atom: float
    row: StructureRow | None = None  # set while its batch is not yet committed
    founder: _Entry | None = None  # the group's founder, while ids are not yet known
    is_founder: bool = False
    _reduced: Structure | None = None
    _lengths: np.ndarray | None = None

    def reduced(self) -> Structure:
        if self._reduced is None:
            self._reduced = reduced_structure(self.structure)
        return self._reduced

    def lengths(self) -> np.ndarray:
        if self._lengths is None:
            self._lengths = _lengths(self.reduced())
        return self._lengths


class _Block:
    """The entries of one (formula, space group) block, with their log volumes per atom in a
    growing array (vectorised volume filter) and the material founders apart."""

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.founders: list[_Entry] = []
        self._log_volumes = np.empty(4)

    @property
    def log_volumes(self) -> np.ndarray:
        return self._log_volumes[: len(self.entries)]

    def add(self, entry: _Entry) -> None:
        n = len(self.entries)
        if n == len(self._log_volumes):
            self._log_volumes = np.resize(self._log_volumes, 2 * n)
        self._log_volumes[n] = math.log(entry.volume_per_atom)
        self.entries.append(entry)
        if entry.is_founder:
            self.founders.append(entry)


@dataclass
class Match:
    """What the index says about a structure: an existing row, or a material group."""

    same: _Entry | None = None
    material: _Entry | None = None


class StructureIndex:
    """The structures of the database grouped by block, loaded lazily and kept in memory."""

    def __init__(self) -> None:
        self.blocks: dict[BlockKey, _Block] = {}
        self.watermark = 0
        self._tight: StructureMatcher | None = None
        self._loose: StructureMatcher | None = None
        self.fits = 0

    def _matchers(self) -> tuple[StructureMatcher, StructureMatcher]:
        if self._tight is None or self._loose is None:
            from pymatgen.analysis.structure_matcher import StructureMatcher

            self._tight = StructureMatcher(**SAME_STRUCTURE)
            self._loose = StructureMatcher(**SAME_MATERIAL)
        return self._tight, self._loose

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
                self.blocks[key] = _Block()
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
            structure = Structure.from_dict(row.structure_json)
            self.blocks.setdefault((row.reduced_formula, row.spacegroup_number), _Block()).add(
                _Entry(
                    structure_id=row.id,
                    material_id=row.material_id,
                    structure=structure,
                    volume_per_atom=structure.volume / len(structure),
                    is_founder=row.material_id == row.id,
                )
            )

    def match(self, item: Prepared) -> Match:
        """The stored structure `item` is a copy of, else the material group it belongs to."""
        block = self.blocks.get(item.block)
        if block is None or not block.entries:
            return Match()
        tight, loose = self._matchers()
        gaps = np.abs(block.log_volumes - math.log(item.volume_per_atom))
        for index in np.argsort(gaps):
            if gaps[index] > VOLUME_TOLERANCE:
                break
            entry = block.entries[index]
            if self._close(item, entry, LENGTH_TOLERANCE_STRUCTURE, scaled=False):
                self.fits += 1
                if tight.fit(entry.reduced(), item.reduced(), skip_structure_reduction=True):
                    return Match(same=entry)
        for entry in block.founders:
            if self._close(item, entry, LENGTH_TOLERANCE_MATERIAL, scaled=True):
                self.fits += 1
                if loose.fit(entry.reduced(), item.reduced(), skip_structure_reduction=True):
                    return Match(material=entry)
        return Match()

    @staticmethod
    def _close(item: Prepared, entry: _Entry, tolerance: float, *, scaled: bool) -> bool:
        """Cheap necessary condition for a fit: same primitive size, close reduced lengths."""
        if len(item.reduced()) != len(entry.reduced()):
            return False
        ratio = np.log(item.lengths() / entry.lengths())
        if scaled:  # compare shapes only: remove the common volume scale
            ratio -= math.log(item.volume_per_atom / entry.volume_per_atom) / 3
        return bool(np.all(np.abs(ratio) <= tolerance))

    def add(self, item: Prepared, row: StructureRow, founder: _Entry | None) -> _Entry:
        """Record a row about to be inserted (ids filled in after the flush)."""
        entry = _Entry(
            structure_id=None,
            material_id=founder.material_id if founder is not None else None,
            structure=item.structure,
            volume_per_atom=item.volume_per_atom,
            row=row,
            founder=founder,
            is_founder=founder is None,
            _reduced=item._reduced,
            _lengths=item._lengths,
        )
        self.blocks.setdefault(item.block, _Block()).add(entry)
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
            ("read", "validate", "symmetry", "matching", "database"), 0.0
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
            if match.same is not None:
                report.duplicates += 1
                matched.append((slot, match.same, item))
                continue
            row = item.row()
            entry = (
                self.index.add(item, row, match.material)
                if self.dedup
                else _Entry(
                    None, None, item.structure, item.volume_per_atom, row=row, is_founder=True
                )
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
