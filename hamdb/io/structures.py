"""Readers of crystal-structure files: CIF, POSCAR/CONTCAR, pymatgen JSON, extended XYZ,
JSON-lines of pymatgen dicts, and folders or .zip / .tar(.gz) archives of them.

`read_structures(paths)` walks the paths and yields, per structure, `(Structure, source,
source_id)`, or a `ReadFailure` naming the file and a one-line reason, so one bad file never
stops the others. `source` is the absolute path of the file or archive read; `source_id` is the
file's name, or the member's path inside an archive, with `#k` (k = 1, 2, ...) appended when
the file holds several structures (always for JSON-lines: `#<line number>`). Together they are
what `structure_sources` records, and what makes a re-run recognise what it has read.

`validate_structure` holds the physical checks shared by every reader and by
hamdb.io.structure_ingest: known elements, an ordered structure, a non-degenerate cell, no two
atoms closer than `MIN_DISTANCE_ANGSTROM` (the last two, on arrays, `validate_cell`).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from hamdb.io.structure_cells import Cell, closest_pair

if TYPE_CHECKING:
    from pymatgen.core import Structure

#: Atoms closer than this (Å), periodic images included, are "overlapping".
MIN_DISTANCE_ANGSTROM = 0.5
#: Cells with less volume per atom (Å³) than this are degenerate (flat or collapsed).
MIN_VOLUME_PER_ATOM = 1.0

StructureItem = tuple["Structure", str, str]


@dataclass(frozen=True)
class ReadFailure:
    """A file (or a structure inside it) that could not be used, and why (one line)."""

    source: str
    source_id: str
    reason: str

    @property
    def where(self) -> str:
        """The file as a user named it: the path, or `archive[member]`."""
        if Path(self.source).name == self.source_id.split("#")[0]:
            return self.source + (
                "#" + self.source_id.split("#", 1)[1] if "#" in self.source_id else ""
            )
        return f"{self.source}[{self.source_id}]"

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class RawFile:
    """The bytes of one structure file (alone or inside an archive), not yet parsed.

    Reading (I/O, one process) and parsing (CPU, any number of processes) are separate steps
    so that ingest can parse in worker processes.
    """

    data: bytes
    name: str
    source: str

    def parse(self) -> Iterator[StructureItem | ReadFailure]:
        return parse_bytes(self.data, self.name, self.source)


class StructureFormatError(ValueError):
    """A file's content cannot be read as the format its name says (message: the reason)."""


# -- formats -------------------------------------------------------------------------------


def format_of(name: str) -> str | None:
    """The structure format a file name announces, or None for files to skip.

    A trailing `.gz` is looked through (`x.cif.gz` is a gzipped CIF).
    """
    lower = name.lower()
    if lower.endswith(".gz") and not lower.endswith((".tar.gz", ".tgz")):
        inner = format_of(name[:-3])
        return f"{inner}.gz" if inner else None
    base = PurePosixPath(lower).name
    if base.endswith((".tar.gz", ".tgz", ".tar")):
        return "tar"
    if base.endswith(".zip"):
        return "zip"
    if base.endswith((".cif", ".mcif")):
        return "cif"
    if base.startswith(("poscar", "contcar")) or base.endswith((".vasp", ".poscar")):
        return "poscar"
    if base.endswith((".jsonl", ".ndjson", ".json-lines")):
        return "jsonl"
    if base.endswith(".json"):
        return "json"
    if base.endswith((".xyz", ".extxyz")):
        return "extxyz"
    return None


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _parse_cif(text: str) -> list[Structure]:
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parser = CifParser(io.StringIO(text))
            structures = parser.parse_structures(primitive=False, on_error="ignore")
        except Exception as exc:  # pymatgen raises many types on malformed CIF
            raise StructureFormatError(f"unparseable CIF ({_short(exc)})") from None
    if not structures:
        why = "; ".join(_short(w.message) for w in caught[-2:]) or "no structure in the file"
        raise StructureFormatError(f"unparseable CIF ({why})")
    return structures


def _parse_poscar(text: str) -> list[Structure]:
    from pymatgen.io.vasp import Poscar

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return [Poscar.from_str(text).structure]
        except Exception as exc:
            raise StructureFormatError(f"unparseable POSCAR ({_short(exc)})") from None


def _structure_from_dict(payload: Any) -> Structure:
    from pymatgen.core import Structure

    if isinstance(payload, dict) and "structure" in payload and "lattice" not in payload:
        payload = payload["structure"]  # e.g. a ComputedStructureEntry-like record
    if not isinstance(payload, dict) or "lattice" not in payload or "sites" not in payload:
        raise StructureFormatError("not a pymatgen Structure dict (needs 'lattice' and 'sites')")
    try:
        return Structure.from_dict(payload)
    except Exception as exc:
        raise StructureFormatError(f"invalid pymatgen Structure dict ({_short(exc)})") from None


def _parse_json(text: str) -> list[Structure]:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StructureFormatError(f"invalid JSON ({exc})") from None
    if isinstance(payload, list):
        return [_structure_from_dict(item) for item in payload]
    return [_structure_from_dict(payload)]


def _parse_extxyz(text: str) -> list[Structure]:
    from ase.io import read
    from pymatgen.io.ase import AseAtomsAdaptor

    try:
        frames = read(io.StringIO(text), index=":", format="extxyz")
    except Exception as exc:
        raise StructureFormatError(f"unparseable extended XYZ ({_short(exc)})") from None
    structures = []
    for k, atoms in enumerate(frames, 1):
        if not atoms.pbc.all() or abs(np.linalg.det(atoms.cell.array)) < 1e-9:
            raise StructureFormatError(f"extended XYZ frame {k} has no periodic 3D cell")
        structures.append(AseAtomsAdaptor.get_structure(atoms))
    return structures


_PARSERS = {
    "cif": _parse_cif,
    "poscar": _parse_poscar,
    "json": _parse_json,
    "extxyz": _parse_extxyz,
}


def _short(exc: object) -> str:
    """First line of an exception or warning, bounded, for one-line reasons."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def parse_bytes(data: bytes, name: str, source: str) -> Iterator[StructureItem | ReadFailure]:
    """Structures in the content `data` of a file called `name` (format from the name)."""
    fmt = format_of(name)
    if fmt is not None and fmt.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            yield ReadFailure(source, name, f"corrupt gzip ({_short(exc)})")
            return
        fmt = fmt[:-3]
    if fmt is None or fmt in ("zip", "tar"):
        yield ReadFailure(source, name, "not a structure file (unknown extension)")
        return
    if fmt == "jsonl":
        yield from _parse_jsonl(_text(data), name, source)
        return
    try:
        structures = _PARSERS[fmt](_text(data))
    except StructureFormatError as exc:
        yield ReadFailure(source, name, str(exc))
        return
    for k, structure in enumerate(structures, 1):
        yield structure, source, name if len(structures) == 1 else f"{name}#{k}"


def _parse_jsonl(text: str, name: str, source: str) -> Iterator[StructureItem | ReadFailure]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        source_id = f"{name}#{number}"
        try:
            payload = json.loads(line)
            yield _structure_from_dict(payload), source, source_id
        except json.JSONDecodeError as exc:
            yield ReadFailure(source, source_id, f"invalid JSON ({exc})")
        except StructureFormatError as exc:
            yield ReadFailure(source, source_id, str(exc))


# -- files, folders, archives --------------------------------------------------------------


def _read_zip(path: Path, source: str) -> Iterator[RawFile | ReadFailure]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        yield ReadFailure(source, path.name, f"unreadable zip archive ({_short(exc)})")
        return
    with archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if info.is_dir() or format_of(info.filename) in (None, "zip", "tar"):
                continue
            try:
                data = archive.read(info)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                yield ReadFailure(source, info.filename, f"corrupt archive member ({_short(exc)})")
                continue
            yield RawFile(data, info.filename, source)


def _read_tar(path: Path, source: str) -> Iterator[RawFile | ReadFailure]:
    try:
        archive = tarfile.open(path)  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, OSError, EOFError) as exc:
        yield ReadFailure(source, path.name, f"unreadable tar archive ({_short(exc)})")
        return
    with archive:
        try:
            members = sorted((m for m in archive if m.isfile()), key=lambda m: m.name)
        except (tarfile.TarError, OSError, EOFError) as exc:
            yield ReadFailure(source, path.name, f"corrupt tar archive ({_short(exc)})")
            return
        for member in members:
            if format_of(member.name) in (None, "zip", "tar"):
                continue
            handle = archive.extractfile(member)
            try:
                data = handle.read() if handle is not None else b""
            except (tarfile.TarError, OSError, EOFError) as exc:
                yield ReadFailure(source, member.name, f"corrupt archive member ({_short(exc)})")
                continue
            yield RawFile(data, member.name, source)


def raw_files(path: Path) -> Iterator[RawFile | ReadFailure]:
    """The structure files in one file, archive, or folder (recursively, sorted), unparsed."""
    path = Path(path)
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and format_of(child.name) is not None:
                yield from raw_files(child)
        return
    source = str(path.resolve())
    if not path.is_file():
        yield ReadFailure(source, path.name, "no such file or folder")
        return
    fmt = format_of(path.name)
    if fmt == "zip":
        yield from _read_zip(path, source)
    elif fmt == "tar":
        yield from _read_tar(path, source)
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            yield ReadFailure(source, path.name, f"unreadable ({exc.strerror})")
            return
        yield RawFile(data, path.name, source)


def read_path(path: Path | str) -> Iterator[StructureItem | ReadFailure]:
    """Every structure in one file, archive, or folder (recursively, sorted)."""
    for raw in raw_files(Path(path)):
        if isinstance(raw, ReadFailure):
            yield raw
        else:
            yield from raw.parse()


def iter_raw_files(paths: Iterable[Path | str]) -> Iterator[RawFile | ReadFailure]:
    """Every structure file under `paths`, unparsed (see RawFile)."""
    for path in paths:
        yield from raw_files(Path(path))


def read_structures(paths: Iterable[Path | str]) -> Iterator[StructureItem | ReadFailure]:
    """Every structure under `paths`, as (Structure, source, source_id) or ReadFailure."""
    for path in paths:
        yield from read_path(path)


# -- physical validation -------------------------------------------------------------------


def validate_structure(structure: Structure) -> str | None:
    """None if the structure can be stored, else a one-line reason.

    Checks: every site one real element (no dummy species, no partial occupancy); a finite,
    non-degenerate cell (at least MIN_VOLUME_PER_ATOM Å³ per atom); no two atoms, periodic
    images included, closer than MIN_DISTANCE_ANGSTROM (validate_cell).
    """
    from pymatgen.core import DummySpecies, Element, Species

    if len(structure) == 0:
        return "no atoms"
    if not structure.is_ordered:
        index, site = next((i, s) for i, s in enumerate(structure) if not s.is_ordered)
        return f"site {index} is disordered ({site.species.formula}); only ordered crystals"
    # Few distinct species per structure: check those, not every site.
    for specie in structure.composition:
        if isinstance(specie, DummySpecies) or not isinstance(specie, Element | Species):
            index = next(i for i, sp in enumerate(structure.species) if sp == specie)
            return f"site {index}: unknown element {getattr(specie, 'symbol', specie)!s}"
    numbers = np.zeros(len(structure), dtype=int)  # the geometry checks ignore species
    return validate_cell(Cell(structure.lattice.matrix, structure.frac_coords, numbers))


def validate_cell(cell: Cell) -> str | None:
    """The geometric checks of validate_structure on arrays: a finite, non-degenerate cell
    and no two atoms closer than MIN_DISTANCE_ANGSTROM (one vectorised distance search)."""
    if not np.isfinite(cell.lattice).all() or not np.isfinite(cell.frac).all():
        return "non-finite lattice or coordinates"
    n = len(cell)
    volume = abs(float(np.linalg.det(cell.lattice)))
    if volume < MIN_VOLUME_PER_ATOM * n:
        return f"degenerate cell: volume {volume:.3g} Å³ for {n} atoms"
    pair = closest_pair(cell, MIN_DISTANCE_ANGSTROM)
    if pair is not None:
        i, j, distance = pair
        return (
            f"overlapping atoms: sites {i} and {j} are "
            f"{distance:.3f} Å apart (< {MIN_DISTANCE_ANGSTROM} Å)"
        )
    return None
