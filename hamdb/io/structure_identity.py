"""The two levels of structure identity of DESIGN.md §4, made fast for big blocks.

* *The same structure*: pymatgen's `StructureMatcher(ltol=0.02, stol=0.05, angle_tol=0.5,
  primitive_cell=True, scale=False)` fits one onto the other (a rotated, translated, permuted
  copy, another cell choice or a supercell).
* *The same material*: Materials Project tolerances (ltol=0.2, stol=0.3, angle_tol=5,
  primitive_cell=True, scale=True): strained or relaxed variants.

Both are blocked by reduced formula + space-group number (symprec 0.1 Å, angle tolerance 5°,
computed with moyopy, a fast Rust implementation of spglib's algorithm).

Inside a block, cheap necessary conditions run before any fit, cheapest first:
  1. volume per atom (invariant under rotation, translation, permutation and supercells): a
     tight fit changes lattice lengths by ≤ 2 %, so rows whose volume per atom differs by more
     than `VOLUME_TOLERANCE` (log ratio) are skipped, vectorised over the whole block;
  2. the number of sites of the primitive cell (from the same moyopy call as the space group);
  3. the sorted Niggli lengths of the primitive cell (the successive minima of the lattice,
     from moyopy's un-idealised primitive basis): a fit maps the stored lattice onto the new
     one's reduced basis within a factor 1 + ltol, which bounds their ratio exactly on one
     side (LENGTH_BOUNDS_*; for the material level after removing the volume scale).
Reduced cells (pymatgen's own reduction: Niggli, then primitive) are computed only for a
structure that reaches step 3, once, and cached; fits call StructureMatcher's matching step
on those cached cells, skipping the per-call copies and reductions of `fit` (the equivalence is
tested against the public `fit`). For the material level only each group's founder is tried.

Scaling: a new structure in a block of n rows with g material groups costs O(n) float
comparisons, a fit per row that passes the filters (rows within 2-4 % in every reduced
length: a number set by how densely the block is sampled, not by n), and at most g material
fits.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hamdb.errors import InputError

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
#: Bounds on log(λ_stored / λ_new) of the sorted Niggli lengths λ outside which no fit is
#: tried, as (upper, lower). StructureMatcher maps the stored lattice onto the new one's
#: reduced basis with lengths within a factor (1 + ltol), so λ_k(stored) ≤ (1 + ltol)·λ_k(new)
#: holds exactly (upper = log(1 + ltol)); the other side allows for the angle tolerance
#: (tight) or, scale-free, for Minkowski's bound on λ1·λ2·λ3 / volume (material).
LENGTH_BOUNDS_STRUCTURE = (math.log(1.02) + 1e-6, 0.04)
LENGTH_BOUNDS_MATERIAL = (math.log(1.2) + 1e-6, 0.75)
#: Volume per site (Å³) to which cells are scaled for the scale-free material match.
_NORMAL_VOLUME_PER_SITE = 10.0


@dataclass(frozen=True)
class Symmetry:
    """What one moyopy call tells: space-group number, primitive size, primitive lattice."""

    number: int
    n_primitive: int
    primitive_lattice: np.ndarray  # rows are vectors (Å), not idealised


def symmetry_of(structure: Structure) -> Symmetry:
    """Symmetry at symprec 0.1 Å, angle tolerance 5°; InputError if the search fails."""
    import moyopy

    # moyopy logs a warning per non-primitive input about operations it leaves out of the
    # input-cell basis; hamdb uses only the space-group number and the primitive cell.
    logging.getLogger("moyo").setLevel(logging.ERROR)
    matrix = structure.lattice.matrix
    cell = moyopy.Cell(
        matrix.tolist(), structure.frac_coords.tolist(), [sp.Z for sp in structure.species]
    )
    try:
        data = moyopy.MoyoDataset(
            cell, symprec=SYMPREC, angle_tolerance=math.radians(ANGLE_TOLERANCE_DEG)
        )
    except BaseException as exc:  # moyopy raises a Rust panic type not derived from Exception
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise InputError(f"symmetry search failed ({exc})") from None
    # prim_std_linear takes the input basis (columns) to the primitive one, before moyopy
    # idealises it: the primitive lattice of the structure as it is.
    primitive = (matrix.T @ np.asarray(data.prim_std_linear, dtype=float)).T
    return Symmetry(int(data.number), len(data.prim_std_cell.numbers), primitive)


_COMBINATIONS = np.array(
    [
        (i, j, k)
        for i in range(-3, 4)
        for j in range(-3, 4)
        for k in range(-3, 4)
        if (i, j, k) != (0, 0, 0)
    ],
    dtype=float,
)


def successive_minima(lattice: np.ndarray) -> np.ndarray:
    """λ1 ≤ λ2 ≤ λ3 (Å): the lengths of the shortest three independent lattice vectors.

    In 3D these are the lengths of the Niggli (Buerger) cell, and they are continuous in the
    lattice, which makes them a safe pre-filter. A few Lagrange–Gauss reduction sweeps make
    the basis near-reduced, then small integer combinations are enumerated.
    """
    basis = np.array(lattice, dtype=float)
    for _ in range(8):
        changed = False
        for i in range(3):
            for j in range(3):
                if i == j:
                    continue
                k = round(float(basis[i] @ basis[j]) / float(basis[j] @ basis[j]))
                if k:
                    basis[i] -= k * basis[j]
                    changed = True
        if not changed:
            break
    vectors = _COMBINATIONS @ basis
    lengths = np.einsum("ij,ij->i", vectors, vectors)
    order = np.argsort(lengths, kind="stable")
    first = vectors[order[0]]
    scale = float(lengths[order[0]])
    second = third = None
    for index in order[1:]:
        v = vectors[index]
        if second is None:
            if np.linalg.norm(np.cross(first, v)) > 1e-6 * scale:
                second = v
        elif abs(float(np.cross(first, second) @ v)) > 1e-6 * scale**1.5:
            third = v
            break
    assert second is not None and third is not None
    return np.sqrt([scale, float(second @ second), float(third @ third)])


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
    """A structure with what matching needs, each computed at most once."""

    __slots__ = (
        "_normalized",
        "_reduced",
        "lengths",
        "n_primitive",
        "structure",
        "volume_per_atom",
    )

    def __init__(self, structure: Structure, symmetry: Symmetry | None = None) -> None:
        symmetry = symmetry if symmetry is not None else symmetry_of(structure)
        self.structure = structure
        self.volume_per_atom = structure.volume / len(structure)
        self.n_primitive = symmetry.n_primitive
        #: Sorted Niggli lengths of the primitive cell (Å).
        self.lengths = successive_minima(symmetry.primitive_lattice)
        self._reduced: Structure | None = None
        self._normalized: Structure | None = None

    def reduced(self) -> Structure:
        """Niggli-reduced primitive cell (what StructureMatcher compares)."""
        if self._reduced is None:
            self._reduced = reduced_structure(
                self.structure, primitive=self.n_primitive != len(self.structure)
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


def _close(mine: Crystal, stored: Crystal, bounds: tuple[float, float], *, scaled: bool) -> bool:
    """Necessary condition for `fit(stored, mine)`: the same primitive size and sorted
    reduced lengths within `bounds` (see LENGTH_BOUNDS_STRUCTURE)."""
    if mine.n_primitive != stored.n_primitive:
        return False
    ratio = np.log(stored.lengths / mine.lengths)
    if scaled:  # compare shapes only: remove the common volume scale
        ratio -= math.log(stored.volume_per_atom / mine.volume_per_atom) / 3
    upper, lower = bounds
    return bool(np.all(ratio <= upper) and np.all(ratio >= -lower))


class Block:
    """The crystals of one (reduced formula, space group) block, in insertion order, with their
    log volumes per atom in a growing array and the material founders apart."""

    def __init__(self) -> None:
        self.members: list[tuple[Crystal, object]] = []
        self.founders: list[tuple[Crystal, object]] = []
        self._log_volumes = np.empty(4)

    def __len__(self) -> int:
        return len(self.members)

    def add(self, crystal: Crystal, key: object, *, founder: bool) -> None:
        """Add a crystal; `key` is what `match` gives back for it (e.g. a row handle)."""
        n = len(self.members)
        if n == len(self._log_volumes):
            self._log_volumes = np.resize(self._log_volumes, 2 * n)
        self._log_volumes[n] = math.log(crystal.volume_per_atom)
        self.members.append((crystal, key))
        if founder:
            self.founders.append((crystal, key))


@dataclass
class Match:
    """The key of the stored structure a crystal is a copy of, else of its group's founder."""

    same: object | None = None
    material: object | None = None


class Matcher:
    """Decides identity inside a block, counting the fits it needed."""

    def __init__(self) -> None:
        from pymatgen.analysis.structure_matcher import StructureMatcher

        self.tight = StructureMatcher(**SAME_STRUCTURE)
        self.loose = StructureMatcher(**SAME_MATERIAL)
        self.fits = 0

    def match(self, crystal: Crystal, block: Block | None) -> Match:
        if block is None or not len(block):
            return Match()
        gaps = np.abs(block._log_volumes[: len(block)] - math.log(crystal.volume_per_atom))
        for index in np.argsort(gaps, kind="stable"):
            if gaps[index] > VOLUME_TOLERANCE:
                break
            other, key = block.members[index]
            if _close(crystal, other, LENGTH_BOUNDS_STRUCTURE, scaled=False):
                self.fits += 1
                if _fits(self.tight, other.reduced(), crystal.reduced()):
                    return Match(same=key)
        for other, key in block.founders:
            if _close(crystal, other, LENGTH_BOUNDS_MATERIAL, scaled=True):
                self.fits += 1
                if _fits(self.loose, other.normalized(), crystal.normalized()):
                    return Match(material=key)
        return Match()
