"""Crystals as plain arrays, for the hot path of ingest: no pymatgen object per site.

A `Cell` is a lattice (rows are vectors, Å), fractional coordinates and atomic numbers. This
module turns a pymatgen Structure into one (`plain_crystal`, which keeps what the row needs
besides) and that into the JSON dict `Structure.as_dict()` gives (`structure_dict`, the
`structures.structure_json` format of DESIGN.md §4, without a dict per site made through
pymatgen), reads a Cell back from that dict (`cell_from_dict`), finds the closest two atoms
with periodic images in one numpy call (`closest_pair`), finds a lattice's successive minima
(`minima_basis`), and builds the primitive cell from the translations moyopy found, keeping
the real (not idealised) positions (`primitive_cell`).

Only "plain" structures take these paths: every site one element (no oxidation state) with
occupancy 1. Anything else (oxidation states, disorder) keeps pymatgen's own code, so
nothing here changes what is stored.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

try:  # pymatgen's own dependency: ~6x faster than json for the coordinates' floats
    import orjson
except ImportError:  # pragma: no cover - json does the same, slower
    orjson = None

if TYPE_CHECKING:
    from pymatgen.core import Structure


def det3(matrix: np.ndarray) -> float:
    """The determinant of a 3x3 matrix, in plain floats (numpy's costs more than the sum)."""
    (a, b, c), (d, e, f), (g, h, i) = matrix.tolist()
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


def inv3(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 3x3 matrix by its adjugate, in plain floats (exact for the small
    integer matrices of basis changes; numpy's LAPACK call costs ~5x more at this size)."""
    (a, b, c), (d, e, f), (g, h, i) = matrix.tolist()
    cofactors = (e * i - f * h, f * g - d * i, d * h - e * g)
    det = a * cofactors[0] + b * cofactors[1] + c * cofactors[2]
    adjugate = [
        [cofactors[0], c * h - b * i, b * f - c * e],
        [cofactors[1], a * i - c * g, c * d - a * f],
        [cofactors[2], b * g - a * h, a * e - b * d],
    ]
    return np.array(adjugate, dtype=float) / det


@dataclass(frozen=True, eq=False)
class Cell:
    """A periodic crystal: `lattice` rows are the cell vectors (Å), `frac` the fractional
    coordinates (n, 3), `numbers` the atomic numbers (n,)."""

    lattice: np.ndarray
    frac: np.ndarray
    numbers: np.ndarray

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def volume(self) -> float:
        """Cell volume (Å³)."""
        return abs(det3(self.lattice))


@dataclass(frozen=True, eq=False)
class PlainCrystal:
    """Everything a plain structure's row holds, as arrays and short lists: its Cell, per
    site the element symbol, the occupancy as pymatgen holds it (1 or 1.0), the label
    (None: the symbol) and the properties; the lattice's periodicity, the structure's
    properties and charge. Cheap to pickle, unlike a Structure."""

    cell: Cell
    symbols: list[str]
    occupancies: list[float]
    labels: list[str | None]
    site_properties: list[dict[str, Any]]
    pbc: tuple[bool, bool, bool]
    properties: dict[str, Any]
    charge: float

    def __getstate__(self) -> tuple[Any, ...]:
        """The arrays as bytes, and per-site lists that hold one value throughout (the
        usual: occupancy 1, no label, no properties) as that value once: ingest sends one
        of these to a worker per structure."""
        cell, n = self.cell, len(self.symbols)
        arrays = (
            np.ascontiguousarray(cell.lattice, dtype=float).tobytes(),
            np.ascontiguousarray(cell.frac, dtype=float).tobytes(),
            np.asarray(cell.numbers, dtype=np.int64).tobytes(),
        )
        lists = [self.occupancies, self.labels, self.site_properties]
        packed = [_uniform(values, n) for values in lists]
        return arrays, self.symbols, packed, self.pbc, self.properties, self.charge

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        (lattice, frac, numbers), symbols, packed, pbc, properties, charge = state
        n = len(symbols)
        cell = Cell(
            np.frombuffer(lattice, dtype=float).reshape(3, 3).copy(),
            np.frombuffer(frac, dtype=float).reshape(n, 3).copy(),
            np.frombuffer(numbers, dtype=np.int64).copy(),
        )
        occupancies, labels, site_properties = (
            values if isinstance(values, list) else _repeat(values, n) for values in packed
        )
        for name, value in (
            ("cell", cell),
            ("symbols", symbols),
            ("occupancies", occupancies),
            ("labels", labels),
            ("site_properties", site_properties),
            ("pbc", pbc),
            ("properties", properties),
            ("charge", charge),
        ):
            object.__setattr__(self, name, value)


def _uniform(values: list[Any], n: int) -> list[Any] | tuple[str, Any]:
    """("same", v) if `values` is n times v (same type; an empty dict for properties),
    else the list itself."""
    first = values[0] if values else None
    if isinstance(first, dict) and first:  # a shared dict would be one object n times
        return values
    if n and all(type(v) is type(first) and v == first for v in values):
        return ("same", first)
    return values


def _repeat(packed: tuple[str, Any], n: int) -> list[Any]:
    value = packed[1]
    return [{} for _ in range(n)] if isinstance(value, dict) else [value] * n


def plain_crystal(structure: Structure) -> PlainCrystal | None:
    """The PlainCrystal of a plain structure (see the module doc), else None."""
    from pymatgen.core import Element

    charge = getattr(structure, "_charge", False)
    numbers: list[int] = []
    symbols: list[str] = []
    occupancies: list[float] = []
    labels: list[str | None] = []
    site_properties: list[dict[str, Any]] = []
    for site in structure:
        species = site.species
        if len(species) != 1:
            return None
        ((element, amount),) = species.items()
        if type(element) is not Element or amount != 1:
            return None
        numbers.append(element.Z)
        symbols.append(element.symbol)
        occupancies.append(amount)
        labels.append(getattr(site, "_label", False))
        site_properties.append(site.properties)
    if not numbers or False in labels or charge is False:
        return None  # no sites, or not the pymatgen this was written against
    frac = np.array([site.frac_coords for site in structure], dtype=float)
    cell = Cell(np.array(structure.lattice.matrix, dtype=float), frac, np.array(numbers))
    return PlainCrystal(
        cell,
        symbols,
        occupancies,
        labels,
        site_properties,
        tuple(structure.lattice.pbc),
        structure.properties,
        0.0 if charge is None else charge,
    )


def _lattice_parameters(matrix: list[list[float]]) -> tuple[list[float], list[float], float]:
    """(a, b, c) in Å, (alpha, beta, gamma) in degrees and the volume in Å³, by pymatgen's
    formulas (in plain floats: numpy calls on 3-vectors cost more than the arithmetic)."""
    lengths = [math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) for v in matrix]
    angles = []
    for k in range(3):
        u, v = matrix[(k + 1) % 3], matrix[(k + 2) % 3]
        cosine = (u[0] * v[0] + u[1] * v[1] + u[2] * v[2]) / (
            lengths[(k + 1) % 3] * lengths[(k + 2) % 3]
        )
        angles.append(math.degrees(math.acos(min(1.0, max(-1.0, cosine)))))
    a, b, c = matrix
    cross = (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])
    volume = abs(cross[0] * c[0] + cross[1] * c[1] + cross[2] * c[2])
    return lengths, angles, volume


def structure_dict(plain: PlainCrystal, sites: bool = True) -> dict[str, Any]:
    """What `Structure.as_dict()` gives for the structure `plain` was made from.

    The same keys, nesting and values (Cartesian coordinates as frac · lattice) as pymatgen
    writes, so rows written either way read back alike with `Structure.from_dict`.
    `sites=False` leaves the site list empty (structure_json writes it).
    """
    cell = plain.cell
    matrix = cell.lattice.tolist()
    (a, b, c), (alpha, beta, gamma), volume = _lattice_parameters(matrix)
    lattice = {
        "matrix": matrix,
        "pbc": plain.pbc,
        "a": a,
        "b": b,
        "c": c,
        "alpha": alpha,
        "beta": beta,
        "gamma": gamma,
        "volume": volume,
    }
    return {
        "@module": "pymatgen.core.structure",
        "@class": "Structure",
        "charge": plain.charge,
        "lattice": lattice,
        "properties": plain.properties,
        "sites": _site_dicts(plain, cell) if sites else [],
    }


def _site_dicts(plain: PlainCrystal, cell: Cell) -> list[dict[str, Any]]:
    """The `sites` of `Structure.as_dict()`: species, fractional and Cartesian (Å) positions."""
    cartesian = (cell.frac @ cell.lattice).tolist()
    return [
        {
            "species": [{"element": symbol, "occu": occupancy}],
            "abc": abc,
            "properties": properties,
            "label": symbol if label is None else label,
            "xyz": xyz,
        }
        for symbol, occupancy, label, properties, abc, xyz in zip(
            plain.symbols,
            plain.occupancies,
            plain.labels,
            plain.site_properties,
            cell.frac.tolist(),
            cartesian,
            strict=True,
        )
    ]


@functools.lru_cache(maxsize=4096, typed=True)  # typed: occupancy 1 and 1.0 differ
def _site_text(symbol: str, occupancy: float, label: str | None) -> tuple[str, str]:
    """The JSON text of a plain site with no properties around its coordinates:
    (what comes before abc, what comes between abc and xyz)."""
    species = to_json([{"element": symbol, "occu": occupancy}])
    label_text = to_json(symbol if label is None else label)
    return (
        f'{{"species":{species},"abc":[',
        f'],"properties":{{}},"label":{label_text},"xyz":[',
    )


def _rows_text(array: np.ndarray) -> list[str]:
    """The JSON text of each row of a 2D float array, without brackets ("x,y,z")."""
    assert orjson is not None
    text = orjson.dumps(array, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return text[2:-2].split("],[")


def structure_json(plain: PlainCrystal) -> str:
    """`to_json(structure_dict(plain))`, the same JSON value, made without a dict per site:
    each site's text is put together from cached pieces and orjson's text of the
    coordinate arrays (serialisation was ~40 % of preparing a structure)."""
    if orjson is None or any(plain.site_properties):
        return to_json(structure_dict(plain))
    head = structure_dict(plain, sites=False)
    head_text = to_json(head)
    assert head_text.endswith('"sites":[]}')
    cell = plain.cell
    abc = _rows_text(np.ascontiguousarray(cell.frac, dtype=float))
    xyz = _rows_text(cell.frac @ cell.lattice)
    sites = []
    for symbol, occupancy, label, a, x in zip(
        plain.symbols, plain.occupancies, plain.labels, abc, xyz, strict=True
    ):
        before, between = _site_text(symbol, occupancy, label)
        sites.append(f"{before}{a}{between}{x}]}}")
    return f"{head_text[:-2]}{','.join(sites)}]}}"


def _tagged(value: Any) -> Any:
    """What pymatgen's JSON encoder writes for what JSON lacks: numpy site properties (POSCAR
    selective dynamics) as its tagged arrays, which Structure.from_dict turns back."""
    from monty.json import MontyEncoder

    return MontyEncoder().default(value)


def to_json(value: Any) -> str:
    """`value` as JSON text, numpy values as pymatgen writes them; TypeError if not JSON."""
    if orjson is not None:
        try:
            return orjson.dumps(value, default=_tagged).decode()
        except orjson.JSONEncodeError as exc:
            raise TypeError(str(exc)) from None
    return json.dumps(value, default=_tagged)


def cell_from_dict(payload: dict[str, Any]) -> Cell | None:
    """The Cell of a stored `Structure.as_dict()` payload if it is plain, else None."""
    from pymatgen.core.periodic_table import Element

    try:
        numbers = []
        for site in payload["sites"]:
            (species,) = site["species"]
            if set(species) != {"element", "occu"} or species["occu"] != 1:
                return None
            numbers.append(Element(species["element"]).Z)
        lattice = np.array(payload["lattice"]["matrix"], dtype=float)
        frac = np.array([site["abc"] for site in payload["sites"]], dtype=float)
    except (KeyError, TypeError, ValueError):
        return None
    if lattice.shape != (3, 3) or frac.shape != (len(numbers), 3) or not numbers:
        return None
    return Cell(lattice, frac, np.array(numbers))


# -- lattice reduction ---------------------------------------------------------------------


def _reduce(lattice: np.ndarray) -> np.ndarray:
    """An integer unimodular T such that T · lattice is nearly reduced (pairwise
    Lagrange–Gauss sweeps, in plain floats: 3-vectors are too small for numpy to pay).
    Meant for non-degenerate lattices (validation refuses the others first)."""
    basis = [list(map(float, row)) for row in lattice]
    transform = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    for _ in range(32):
        changed = False
        for i in range(3):
            for j in range(3):
                if i == j:
                    continue
                bj = basis[j]
                norm = bj[0] * bj[0] + bj[1] * bj[1] + bj[2] * bj[2]
                ratio = (basis[i][0] * bj[0] + basis[i][1] * bj[1] + basis[i][2] * bj[2]) / norm
                k = round(ratio) if abs(ratio) < 1e9 else 0  # a (near-)degenerate lattice
                if k:
                    basis[i] = [basis[i][m] - k * bj[m] for m in range(3)]
                    transform[i] = [transform[i][m] - k * transform[j][m] for m in range(3)]
                    changed = True
        if not changed:
            break
    return np.array(transform, dtype=np.int64)


@functools.cache
def _grid(bounds: tuple[int, int, int]) -> np.ndarray:
    """Every integer triple with |n_i| <= bounds[i], as rows."""
    ranges = [np.arange(-b, b + 1) for b in bounds]
    return np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)


def lattice_points(lattice: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(integer coefficients (m, 3), vectors (m, 3)) of every nonzero lattice vector no
    longer than `radius` (Å), exactly: coefficient i is bounded by radius · |b*_i|."""
    reciprocal = inv3(lattice)  # columns are the dual basis
    bounds = np.floor(radius * np.sqrt(np.sum(reciprocal**2, axis=0)) + 1e-9).astype(int)
    grid = _grid(tuple(int(b) for b in bounds))
    vectors = grid @ lattice
    lengths2 = np.einsum("ij,ij->i", vectors, vectors)
    keep = (lengths2 <= radius * radius) & (lengths2 > 0)
    return grid[keep], vectors[keep]


def _cross(u: list[float], v: list[float]) -> list[float]:
    return [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]]


#: Relative closeness of two lattice-vector lengths that counts as a tie of the minima.
TIE = 1e-4


@dataclass(frozen=True, eq=False)
class Minima:
    """A basis of shortest vectors: `transform` (integer, unimodular) takes the lattice rows
    to it, `lengths` are λ1 ≤ λ2 ≤ λ3 (Å), and `tied` says whether some λ_k is reached (up to
    TIE) by more than ± one vector, i.e. whether this basis is one of several."""

    transform: np.ndarray
    lengths: np.ndarray
    tied: bool


def minima_basis(lattice: np.ndarray) -> Minima:
    """The successive minima of a lattice (rows, Å): the shortest three independent lattice
    vectors, found by enumerating every vector up to the longest of a nearly reduced basis.

    In 3D such vectors always form a basis, and it is the Buerger (Niggli) cell: its
    lengths are what StructureMatcher's Niggli reduction gives.
    """
    start = _reduce(lattice)
    reduced = start @ lattice
    radius = float(np.sqrt(np.max(np.einsum("ij,ij->i", reduced, reduced)))) * (1 + 2 * TIE)
    coefficients, vectors = lattice_points(reduced, radius)
    lengths2 = np.einsum("ij,ij->i", vectors, vectors)
    order = np.argsort(lengths2, kind="stable")
    rows = vectors[order].tolist()
    scale = radius * radius
    first = rows[0]
    chosen = [int(order[0])]
    normal: list[float] = []
    for index, v in zip(order[1:], rows[1:], strict=True):
        if not normal:
            cross = _cross(first, v)
            if sum(c * c for c in cross) > 1e-16 * scale * scale:
                normal = cross
                chosen.append(int(index))
        elif abs(sum(a * b for a, b in zip(normal, v, strict=True))) > 1e-8 * scale**1.5:
            chosen.append(int(index))
            break
    transform = coefficients[chosen] @ start
    if det3(transform) < 0:
        transform[2] *= -1
    lengths = np.sqrt(lengths2[chosen])
    # Vectors come in ± pairs: a shell holding more than two makes the basis one of several.
    near = np.abs(np.sqrt(lengths2)[:, None] / lengths[None, :] - 1) <= TIE
    return Minima(transform, lengths, bool(np.any(near.sum(axis=0) > 2)))


# -- distances -----------------------------------------------------------------------------


#: Rows of the pair-distance array handled at once (memory ~ rows · n · images · 3 floats).
_ROWS = 256


def closest_pair(cell: Cell, cutoff: float) -> tuple[int, int, float] | None:
    """(i, j, distance in Å) of the closest two atoms (periodic images included, an atom and
    its own image too) if closer than `cutoff` Å, else None."""
    # |frac component + image| <= cutoff / (plane spacing) bounds the images to look at; a
    # skewed basis is reduced first only if that leaves more than the nearest image.
    lattice, frac = cell.lattice, cell.frac
    spacing = 1.0 / np.sqrt(np.sum(inv3(lattice) ** 2, axis=0))
    if np.any(cutoff / spacing >= 0.5):
        transform = _reduce(lattice)
        lattice = transform @ lattice
        frac = frac @ inv3(transform)
        spacing = 1.0 / np.sqrt(np.sum(inv3(lattice) ** 2, axis=0))
    reach = tuple(int(r) for r in np.floor(0.5 + cutoff / spacing))
    images = _grid(reach)
    zero = len(images) // 2
    best = (cutoff * cutoff, -1, -1)  # only pairs closer than the cutoff are of interest
    for start in range(0, len(frac), _ROWS):
        rows = np.arange(start, min(start + _ROWS, len(frac)))
        delta = frac[None, :, :] - frac[rows, None, :]
        delta -= np.round(delta)
        if reach == (0, 0, 0):  # the usual case: only the nearest image can be that close
            shifted = delta @ lattice
            distances2 = np.einsum("ijl,ijl->ij", shifted, shifted)[:, :, None]
            distances2[rows - start, rows, 0] = np.inf
        else:
            shifted = (delta[:, :, None, :] + images[None, None, :, :]) @ lattice
            distances2 = np.einsum("ijkl,ijkl->ijk", shifted, shifted)
            distances2[rows - start, rows, zero] = np.inf
        if distances2.min() < best[0]:  # rare in a valid cell: only then find the pair
            flat = int(np.argmin(distances2))
            i, j, _ = np.unravel_index(flat, distances2.shape)
            best = (float(distances2.flat[flat]), int(rows[i]), int(j))
    return (best[1], best[2], math.sqrt(best[0])) if best[1] >= 0 else None


# -- primitive cell ------------------------------------------------------------------------


def primitive_cell(
    cell: Cell, linear: np.ndarray, n_primitive: int, tolerance: float = 0.25
) -> Cell | None:
    """The primitive cell spanned by the rows linearᵀ · lattice (moyopy's `prim_std_linear`,
    before idealisation), with the atoms that its translations map onto each other merged
    and their positions averaged. None if the atoms do not fall into groups of n / n_primitive
    within `tolerance` Å (then the caller uses pymatgen's reduction).
    """
    n = len(cell)
    if n % n_primitive:
        return None
    lattice = linear.T @ cell.lattice
    frac = cell.frac @ inv3(linear.T)
    frac -= np.floor(frac)
    if n == n_primitive:
        return Cell(lattice, frac, cell.numbers)
    copies = n // n_primitive
    delta = frac[None, :, :] - frac[:, None, :]
    delta -= np.round(delta)
    distances = np.linalg.norm(delta @ lattice, axis=-1)
    same = (distances < tolerance) & (cell.numbers[:, None] == cell.numbers[None, :])
    if not np.all(same.sum(axis=1) == copies):
        return None
    taken = np.zeros(n, dtype=bool)
    positions, numbers = [], []
    for i in range(n):
        if taken[i]:
            continue
        group = np.flatnonzero(same[i])
        if taken[group].any() or not same[np.ix_(group, group)].all():
            return None
        taken[group] = True
        positions.append(frac[i] + delta[i, group].mean(axis=0))
        numbers.append(cell.numbers[i])
    out = np.array(positions)
    return Cell(lattice, out - np.floor(out), np.array(numbers))
