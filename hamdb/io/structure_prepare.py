"""What ingest does to each structure before matching it: validate it, find its symmetry,
serialise it (`prepare`), and parse raw files first (`prepare_unit`).

This module runs in ingest's worker processes, so it imports no database code: a worker
starts faster and ships back a `Prepared` item (arrays and text, no pymatgen objects).
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hamdb.errors import InputError
from hamdb.io.structure_cells import PlainCrystal, plain_crystal, structure_json, to_json
from hamdb.io.structure_identity import Crystal
from hamdb.io.structure_symmetry import METHODS, Symmetry, symmetries_of, symmetry_of
from hamdb.io.structures import RawFile, ReadFailure, validate_cell, validate_structure

if TYPE_CHECKING:
    from pymatgen.core import Structure

BlockKey = tuple[str, int]
Item = tuple["Structure | PlainCrystal", str, str] | ReadFailure


@dataclass
class Prepared:
    """A validated structure with its indexed columns and its JSON (as text), ready to match
    and insert.

    Made by `prepare` (possibly in a worker process, hence picklable and free of pymatgen
    objects once pickled).
    """

    crystal: Crystal
    source: str
    source_id: str
    reduced_formula: str
    spacegroup_number: int
    elements: list[str]
    structure_text: str

    @property
    def block(self) -> BlockKey:
        return (self.reduced_formula, self.spacegroup_number)


@functools.lru_cache(maxsize=65536)
def _reduced_formula(counts: tuple[tuple[str, int], ...]) -> str:
    """pymatgen's reduced formula of a composition given as sorted (symbol, count) pairs."""
    from pymatgen.core import Composition

    return Composition(dict(counts)).reduced_formula


@dataclass
class _Checked:
    """A structure that passed validation, with its plain form where it has one."""

    structure: Structure | PlainCrystal
    plain: PlainCrystal | None
    source: str
    source_id: str

    @property
    def searched(self) -> Any:
        """What the symmetry search takes: the Cell, or the Structure if not plain."""
        return self.plain.cell if self.plain is not None else self.structure


def _check(
    structure: Structure | PlainCrystal, source: str, source_id: str, clock: StageClock
) -> _Checked | ReadFailure:
    plain = structure if isinstance(structure, PlainCrystal) else plain_crystal(structure)
    if plain is not None:
        reason = validate_cell(plain.cell)
    else:
        assert not isinstance(structure, PlainCrystal)
        reason = validate_structure(structure)
    clock("validate")
    if reason is not None:
        return ReadFailure(source, source_id, reason)
    return _Checked(structure, plain, source, source_id)


def prepare(
    structure: Structure | PlainCrystal,
    source: str,
    source_id: str,
    timings: dict[str, float] | None = None,
    *,
    analyse: bool = True,
    method: str = "moyopy",
) -> Prepared | ReadFailure:
    """Validate one structure, find its symmetry and serialise it; a ReadFailure says why not.

    `structure` may come as a PlainCrystal (what ingest ships to worker processes: cheaper
    to pickle than a Structure). `analyse` also computes the reduced lengths that the block
    filters need, off the process that matches: in the workers (the primitive cell to
    compare is left to that process, which needs it for fewer crystals; the two processes'
    loads are then about even). `method` is the symmetry search's (structure_symmetry:
    'spglib' where moyopy did not finish). `timings` (seconds per stage) is added to.
    """
    clock = StageClock(timings)
    checked = _check(structure, source, source_id, clock)
    if isinstance(checked, ReadFailure):
        return checked
    symmetry: Symmetry | InputError
    try:
        symmetry = symmetry_of(checked.searched, method)
    except InputError as exc:
        symmetry = exc
    return _finish(checked, symmetry, clock, analyse)


def _finish(
    checked: _Checked, symmetry: Symmetry | InputError, clock: StageClock, analyse: bool
) -> Prepared | ReadFailure:
    """`prepare` after the symmetry search (whose answer, or error, is `symmetry`)."""
    structure, plain, source, source_id = (
        checked.structure,
        checked.plain,
        checked.source,
        checked.source_id,
    )
    if isinstance(symmetry, InputError):
        return ReadFailure(source, source_id, str(symmetry))
    if plain is not None:
        crystal = Crystal(plain.cell, symmetry=symmetry)
        counts = Counter(plain.symbols)
        reduced_formula = _reduced_formula(tuple(sorted(counts.items())))
        elements = sorted(counts)
    else:
        assert not isinstance(structure, PlainCrystal)
        crystal = Crystal(None, structure=structure, symmetry=symmetry)
        composition = structure.composition
        reduced_formula = composition.reduced_formula
        elements = sorted({el.symbol for el in composition.elements})
    if analyse:  # the block filters' numbers; the cell to compare is made where compared
        crystal.prepare()
    clock("symmetry")
    try:
        if plain is not None:  # a plain crystal is rebuilt from its arrays when needed
            structure_text = structure_json(plain)
        else:
            assert not isinstance(structure, PlainCrystal)
            crystal.payload = structure.as_dict()
            structure_text = to_json(crystal.payload)
    except (TypeError, ValueError) as exc:
        return ReadFailure(source, source_id, f"cannot store its properties as JSON ({exc})")
    clock("serialise")
    return Prepared(
        crystal=crystal,
        source=source,
        source_id=source_id,
        reduced_formula=reduced_formula,
        spacegroup_number=symmetry.number,
        elements=elements,
        structure_text=structure_text,
    )


class StageClock:
    """Adds the time since the previous call to `timings[stage]` (no-op without timings)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.last
        self.last = now


#: A unit of preparation work: a raw file or one structure, with the source ids to skip.
Unit = tuple[RawFile | tuple["Structure | PlainCrystal", str, str], frozenset[str]]


def prepare_unit(
    unit: Unit,
    analyse: bool = True,
    plan: dict[int, str] | None = None,
    mark: Callable[[int], None] | None = None,
) -> tuple[list[Prepared | ReadFailure], int, dict[str, float]]:
    """Parse (for a raw file) and prepare every structure of a unit, skipping the ids given.

    `plan` maps the index of a structure in the unit to what to do instead of the usual:
    a symmetry method ('spglib') or, for anything else, the reason it failed.
    `mark(k)` is called before the k-th structure is prepared (a worker records where it
    is, for when it is killed). Returns (prepared or failed items, how many were skipped as
    already ingested, seconds per stage). Runs in worker processes: no database access here.
    """
    payload, skip = unit
    timings: dict[str, float] = {}
    clock = StageClock(timings)
    parsed = list(payload.parse()) if isinstance(payload, RawFile) else [payload]
    clock("parse")
    out: list[Prepared | ReadFailure] = []
    skipped = 0
    for index, item in enumerate(parsed):
        if isinstance(item, ReadFailure):
            out.append(item)
        elif item[2] in skip:
            skipped += 1
        else:
            if mark is not None:
                mark(index)
            instead = plan.get(index) if plan else None
            if instead is None or instead in METHODS:
                method = instead or "moyopy"
                out.append(prepare(*item, timings=timings, analyse=analyse, method=method))
            else:
                out.append(ReadFailure(item[1], item[2], instead))
    return out, skipped, timings


UnitResult = tuple[list[Prepared | ReadFailure], int, dict[str, float]]


def prepare_units(units: list[Unit], analyse: bool = False) -> list[UnitResult]:
    """`prepare_unit` for many units, their symmetry searches in one round trip to the
    helper process (structure_symmetry.symmetries_of): how ingest prepares in its own
    process. The searches' time is shared out evenly over the structures."""
    results: list[UnitResult] = []
    pending: list[tuple[list[Any], int, _Checked, dict[str, float]]] = []
    for payload, skip in units:
        timings: dict[str, float] = {}
        clock = StageClock(timings)
        parsed = list(payload.parse()) if isinstance(payload, RawFile) else [payload]
        clock("parse")
        out: list[Any] = []
        skipped = 0
        for item in parsed:
            if isinstance(item, ReadFailure):
                out.append(item)
            elif item[2] in skip:
                skipped += 1
            else:
                checked = _check(*item, clock)
                if not isinstance(checked, ReadFailure):
                    pending.append((out, len(out), checked, timings))
                out.append(checked)
        results.append((out, skipped, timings))
    if pending:
        start = time.perf_counter()
        symmetries = symmetries_of([checked.searched for _, _, checked, _ in pending])
        share = (time.perf_counter() - start) / len(pending)
        for (out, slot, checked, timings), symmetry in zip(pending, symmetries, strict=True):
            timings["symmetry"] = timings.get("symmetry", 0.0) + share
            out[slot] = _finish(checked, symmetry, StageClock(timings), analyse)
    return results
