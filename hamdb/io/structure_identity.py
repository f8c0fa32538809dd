"""The two levels of structure identity of DESIGN.md §4, made fast for big blocks.

* *The same structure*: pymatgen's `StructureMatcher(ltol=0.02, stol=0.05, angle_tol=0.5,
  primitive_cell=True, scale=False)` fits one onto the other (a rotated, translated, permuted
  copy, another cell choice or a supercell).
* *The same material*: Materials Project tolerances (ltol=0.2, stol=0.3, angle_tol=5,
  primitive_cell=True, scale=True): strained or relaxed variants.

Both are blocked by reduced formula + space-group number (symprec 0.1 Å, angle tolerance 5°,
computed with moyopy, a fast Rust implementation of spglib's algorithm, or spglib where
moyopy does not finish: structure_symmetry).

Inside a block, cheap necessary conditions run before any comparison, vectorised over the
block's rows (`Block`):
  1. volume per atom (invariant under rotation, translation, permutation and supercells): a
     tight fit changes lattice lengths by ≤ 2 %, so rows whose volume per atom differs by more
     than `VOLUME_TOLERANCE` (log ratio) are skipped;
  2. the number of sites of the primitive cell (from the same moyopy call as the space group);
  3. the sorted Niggli lengths of the primitive cell (its successive minima): a fit maps the
     stored lattice onto the new one's reduced basis within a factor 1 + ltol, which bounds
     their ratio exactly on one side (LENGTH_BOUNDS_*; for the material level after removing
     the volume scale).
A pair that passes is decided by structure_compare.compare, StructureMatcher's own test
redone in numpy on the primitive cells, which answers True, False, or "unsure"; only then
does pymatgen's StructureMatcher run (on reduced cells computed once per crystal and
cached), so its verdict stays the reference. For the material level only each group's
founder is tried.

Scaling: a new structure in a block of n rows with g material groups costs O(n + g) vectorised
float comparisons, a comparison per row that passes the filters (rows within 2-4 % in every
reduced length: a number set by how densely the block is sampled, not by n), and at most one
per founder that passes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hamdb.io.structure_cells import Cell, Minima, cell_from_dict, minima_basis, primitive_cell
from hamdb.io.structure_compare import MatchCell, Tolerances, compare
from hamdb.io.structure_symmetry import (  # noqa: F401 (re-exported: the block key's tolerances)
    ANGLE_TOLERANCE_DEG,
    SYMPREC,
    Symmetry,
    symmetry_of,
)

if TYPE_CHECKING:
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

SAME_STRUCTURE = {
    "ltol": 0.02,
    "stol": 0.05,
    "angle_tol": 0.5,
    "primitive_cell": True,
    "scale": False,
}
SAME_MATERIAL = {"ltol": 0.2, "stol": 0.3, "angle_tol": 5.0, "primitive_cell": True, "scale": True}
TIGHT = Tolerances(0.02, 0.05, 0.5, scale=False)
LOOSE = Tolerances(0.2, 0.3, 5.0, scale=True)
#: |log(volume-per-atom ratio)| above which two structures cannot be the same (ltol 2 % on
#: three lengths is ≤ 6 %, plus the angle tolerance; a wide margin loses no match).
VOLUME_TOLERANCE = 0.10
#: Bounds on log(λ_stored / λ_new) of the sorted Niggli lengths λ outside which no fit is
#: tried, as (upper, lower). StructureMatcher maps the stored lattice onto the new one's
#: reduced basis with lengths within a factor (1 + ltol), so λ_k(stored) ≤ (1 + ltol)·λ_k(new)
#: holds exactly (upper = log(1 + ltol)); the other side allows for the angle tolerance
#: (tight) or, scale-free, for Minkowski's bound on λ1·λ2·λ3 / volume (material).
LENGTH_BOUNDS_STRUCTURE = (math.log(1.02) + 1e-6, 0.04)
LENGTH_BOUNDS_MATERIAL = (math.log(1.2) + 1e-6, 0.75)
#: Volume per site (Å³) to which cells are scaled for the scale-free material match.
_NORMAL_VOLUME_PER_SITE = 10.0


def reduced_structure(structure: Structure, primitive: bool = True) -> Structure:
    """The Niggli-reduced primitive cell as StructureMatcher computes it, sites sorted by
    atomic number (a permutation, which matching ignores, that makes its species mask cheap).

    `primitive=False` skips pymatgen's slow primitive search for a cell already primitive.
    """
    from pymatgen.core import Structure

    # The steps of StructureMatcher's own reduction (Niggli, then primitive), not its
    # lru_cache'd helper, whose cache compares every structure of a formula with __eq__.
    reduced = structure.get_reduced_structure(reduction_algo="niggli")
    if primitive:
        reduced = reduced.get_primitive_structure()
    species = reduced.species
    order = np.argsort([specie.Z for specie in species], kind="stable")
    return Structure(reduced.lattice, [species[i] for i in order], reduced.frac_coords[order])


class Crystal:
    """A structure with what matching needs, each part computed at most once.

    Built from arrays (`cell`, plain structures) and/or a pymatgen Structure, or from a stored
    `structure_json` payload. Pickles without pymatgen objects (workers send it back), which
    are rebuilt from the payload when the StructureMatcher fallback needs them.
    """

    __slots__ = (
        "_match",
        "_minima",
        "_normalized",
        "_reduced",
        "_structure",
        "_symmetry",
        "cell",
        "lengths",
        "n_sites",
        "payload",
        "volume_per_atom",
    )

    def __init__(
        self,
        cell: Cell | None,
        *,
        structure: Structure | None = None,
        payload: dict[str, Any] | None = None,
        symmetry: Symmetry | None = None,
    ) -> None:
        if cell is None and structure is None and payload is None:
            raise ValueError("a Crystal needs a cell, a structure or a payload")
        self.cell = cell
        self._structure = structure
        self.payload = payload
        if cell is not None:
            self.n_sites = len(cell)
            volume = cell.volume
        else:
            source = self.structure
            self.n_sites = len(source)
            volume = source.volume
        self.volume_per_atom = volume / self.n_sites
        self._symmetry = symmetry
        #: Sorted Niggli lengths (Å) of the primitive cell, once the symmetry is known.
        self.lengths: np.ndarray | None = None
        self._minima: Minima | None = None
        self._match: MatchCell | bool | None = None
        self._reduced: Structure | None = None
        self._normalized: Structure | None = None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Crystal:
        """A crystal for a stored row (its `structure_json`)."""
        return cls(cell_from_dict(payload), payload=payload)

    def __getstate__(self) -> dict[str, Any] | tuple[Any, ...]:
        if self.cell is not None and self.payload is None and self._minima is not None:
            return self._packed()
        kept = (
            "cell",
            "payload",
            "_symmetry",
            "_minima",
            "_match",
            "lengths",
            "n_sites",
            "volume_per_atom",
        )
        state = {name: getattr(self, name) for name in kept}
        if self.cell is None and self.payload is None:
            state["payload"] = self.structure.as_dict()
        return state

    def _packed(self) -> tuple[Any, ...]:
        """An analysed plain crystal as two buffers (floats, integers) and a few numbers:
        a worker sends one per structure, and small arrays are slow to unpickle."""
        cell, symmetry, minima = self.cell, self.symmetry, self._minima
        assert cell is not None and minima is not None
        floats = [cell.lattice.ravel(), cell.frac.ravel(), symmetry.linear.ravel(), minima.lengths]
        integers = [cell.numbers, minima.transform.ravel()]
        return (
            np.concatenate(floats).tobytes(),
            np.concatenate(integers).astype(np.int64).tobytes(),
            (symmetry.number, symmetry.n_primitive, minima.tied, self.volume_per_atom),
            self._match,
        )

    def __setstate__(self, state: dict[str, Any] | tuple[Any, ...]) -> None:
        if isinstance(state, dict):
            for name in self.__slots__:
                setattr(self, name, state.get(name))
            return
        floats = np.frombuffer(state[0], dtype=np.float64).copy()
        integers = np.frombuffer(state[1], dtype=np.int64).copy()
        number, n_primitive, tied, volume_per_atom = state[2]
        n = len(integers) - 9
        end = 9 + 3 * n
        self.cell = Cell(floats[:9].reshape(3, 3), floats[9:end].reshape(n, 3), integers[:n])
        self._symmetry = Symmetry(number, n_primitive, floats[end : end + 9].reshape(3, 3))
        lengths = floats[end + 9 :]
        self._minima = Minima(integers[n:].reshape(3, 3), lengths, tied)
        self.lengths = lengths
        self._match = state[3]
        self.n_sites = n
        self.volume_per_atom = volume_per_atom
        self.payload = self._structure = self._reduced = self._normalized = None

    @property
    def structure(self) -> Structure:
        """The pymatgen Structure (rebuilt from the payload or the arrays if need be)."""
        if self._structure is None:
            from pymatgen.core import Structure

            if self.payload is not None:
                self._structure = Structure.from_dict(self.payload)
            else:
                assert self.cell is not None
                cell = self.cell
                self._structure = Structure(cell.lattice, cell.numbers.tolist(), cell.frac)
        return self._structure

    @property
    def symmetry(self) -> Symmetry:
        if self._symmetry is None:
            self._symmetry = symmetry_of(self.cell if self.cell is not None else self.structure)
        return self._symmetry

    @property
    def n_primitive(self) -> int:
        return self.symmetry.n_primitive

    @property
    def _lattice(self) -> np.ndarray:
        return self.cell.lattice if self.cell is not None else self.structure.lattice.matrix

    def prepare(self) -> None:
        """Compute the symmetry and the reduced lengths (what the block filters need)."""
        if self.lengths is None:
            self._minima = minima_basis(self.symmetry.primitive_lattice(self._lattice))
            self.lengths = self._minima.lengths

    def match_cell(self) -> MatchCell | None:
        """The primitive cell for structure_compare, or None (not plain, or its primitive
        cell could not be rebuilt from moyopy's translations)."""
        if self._match is None:
            self._match = False
            if self.cell is not None:
                symmetry = self.symmetry
                primitive = primitive_cell(self.cell, symmetry.linear, symmetry.n_primitive)
                if primitive is not None:
                    self.prepare()
                    assert self._minima is not None
                    self._match = MatchCell(primitive, self._minima)
        return self._match or None

    def reduced(self) -> Structure:
        """Niggli-reduced primitive cell (what StructureMatcher compares)."""
        if self._reduced is None:
            self._reduced = reduced_structure(
                self.structure, primitive=self.n_primitive != self.n_sites
            )
        return self._reduced

    def normalized(self) -> Structure:
        """The reduced cell scaled to a fixed volume per site, for scale-free matching."""
        if self._normalized is None:
            reduced = self.reduced()
            self._normalized = reduced.copy()
            self._normalized.scale_lattice(_NORMAL_VOLUME_PER_SITE * len(reduced))
        return self._normalized


def _fits(matcher: StructureMatcher, one: Structure, other: Structure) -> bool:
    """`matcher.fit(one, other)` for cells already reduced (and, for scale=True, scaled to
    the same volume): StructureMatcher's own matching step without fit's copies."""
    found = matcher._match(one, other, 1, True, break_on_match=True)
    return found is not None and found[0] <= matcher.stol


class _Table:
    """Crystals with their filter quantities in growing arrays: log volume per atom,
    primitive size and log reduced lengths, so a block is filtered in a few numpy calls.
    The last two are filled when a query first needs them (NaN until then): a crystal alone
    in its block never pays for its symmetry analysis here."""

    def __init__(self) -> None:
        self.rows: list[tuple[Crystal, object]] = []
        self._numbers = np.empty((8, 5))  # log volume, n_primitive, log λ1, log λ2, log λ3

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, crystal: Crystal, key: object) -> None:
        n = len(self.rows)
        if n == len(self._numbers):
            self._numbers = np.resize(self._numbers, (2 * n, 5))
        self._numbers[n] = math.nan
        self._numbers[n, 0] = math.log(crystal.volume_per_atom)
        if crystal.lengths is not None:
            self._fill(n, crystal)
        self.rows.append((crystal, key))

    def _fill(self, index: int, crystal: Crystal) -> None:
        crystal.prepare()
        assert crystal.lengths is not None
        self._numbers[index, 1] = crystal.n_primitive
        self._numbers[index, 2:] = np.log(crystal.lengths)

    def near(self, crystal: Crystal, bounds: tuple[float, float], *, scaled: bool) -> np.ndarray:
        """Indices of the rows that pass the filters for `crystal`, closest volume first."""
        table = self._numbers[: len(self.rows)]
        gaps = table[:, 0] - math.log(crystal.volume_per_atom)
        keep = np.ones(len(table), dtype=bool) if scaled else np.abs(gaps) <= VOLUME_TOLERANCE
        if not keep.any():
            return np.flatnonzero(keep)
        for index in np.flatnonzero(keep & np.isnan(table[:, 1])):
            self._fill(int(index), self.rows[index][0])
        keep &= table[:, 1] == crystal.n_primitive
        if not keep.any():
            return np.flatnonzero(keep)
        crystal.prepare()
        assert crystal.lengths is not None
        ratio = table[:, 2:] - np.log(crystal.lengths)
        if scaled:  # compare shapes only: remove the common volume scale
            ratio -= gaps[:, None] / 3
        upper, lower = bounds
        keep &= np.all(ratio <= upper, axis=1) & np.all(ratio >= -lower, axis=1)
        found = np.flatnonzero(keep)
        return found[np.argsort(np.abs(gaps[found]), kind="stable")]


class Block:
    """The crystals of one (reduced formula, space group) block, in insertion order, and
    the material founders apart."""

    def __init__(self) -> None:
        self.members = _Table()
        self.founders = _Table()

    def __len__(self) -> int:
        return len(self.members)

    def add(self, crystal: Crystal, key: object, *, founder: bool) -> None:
        """Add a crystal; `key` is what `match` gives back for it (e.g. a row handle)."""
        self.members.add(crystal, key)
        if founder:
            self.founders.add(crystal, key)


@dataclass
class Match:
    """The key of the stored structure a crystal is a copy of, else of its group's founder."""

    same: object | None = None
    material: object | None = None


class Matcher:
    """Decides identity inside a block, counting the numpy comparisons (`compared`) and the
    StructureMatcher fits they left undecided (`fits`)."""

    def __init__(self) -> None:
        self._tight: StructureMatcher | None = None
        self._loose: StructureMatcher | None = None
        self.compared = 0
        self.fits = 0

    def _reference(self, tolerances: Tolerances) -> StructureMatcher:
        from pymatgen.analysis.structure_matcher import StructureMatcher

        if tolerances is TIGHT:
            if self._tight is None:
                self._tight = StructureMatcher(**SAME_STRUCTURE)
            return self._tight
        if self._loose is None:
            self._loose = StructureMatcher(**SAME_MATERIAL)
        return self._loose

    def same(self, stored: Crystal, new: Crystal, tolerances: Tolerances) -> bool:
        """StructureMatcher(tolerances).fit(stored, new), by numpy where it is sure."""
        mine, theirs = stored.match_cell(), new.match_cell()
        if mine is not None and theirs is not None:
            self.compared += 1
            verdict = compare(mine, theirs, tolerances)
            if verdict is not None:
                return verdict
        self.fits += 1
        if tolerances.scale:
            return _fits(self._reference(tolerances), stored.normalized(), new.normalized())
        return _fits(self._reference(tolerances), stored.reduced(), new.reduced())

    def match(self, crystal: Crystal, block: Block | None) -> Match:
        if block is None or not len(block):
            return Match()
        members = block.members
        for index in members.near(crystal, LENGTH_BOUNDS_STRUCTURE, scaled=False):
            other, key = members.rows[index]
            if self.same(other, crystal, TIGHT):
                return Match(same=key)
        founders = block.founders
        for index in founders.near(crystal, LENGTH_BOUNDS_MATERIAL, scaled=True):
            other, key = founders.rows[index]
            if self.same(other, crystal, LOOSE):
                return Match(material=key)
        return Match()
