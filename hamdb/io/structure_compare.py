"""StructureMatcher's verdict on two primitive cells, in numpy, or "undecided".

`compare(stored, new, tolerances)` answers what `StructureMatcher(**tolerances).fit(stored,
new)` would (primitive_cell=True, no supercells) without building a pymatgen object: True,
False, or None when it cannot be sure, and then the caller asks StructureMatcher itself.
It follows the matcher's own steps on cells reduced the same way:

1. Lattices. StructureMatcher reduces the new cell to its Niggli basis u (lengths λ1 ≤ λ2 ≤
   λ3: the successive minima) and takes every basis v of the stored lattice with
   |v_k| / |u_k| in (1/(1 + ltol), 1 + ltol) and each angle within angle_tol of u's. The same
   search runs here on vectors enumerated exactly (structure_cells.lattice_points). When the
   minima are *untied* (each λ_k reached by ±one vector only) the Niggli basis is our basis
   up to signs, and a sign flip of u_k only flips v_k: the candidate maps are the matcher's.
2. Sites. For a candidate, both cells' fractional coordinates are compared on the lattice
   with the averaged parameters, after a trial translation that puts one atom of the rarest
   species (the anchor) onto each stored atom of that species; the matcher then assigns
   atoms (linear assignment on squared distances), removes the mean displacement and calls
   the pair equal when the largest remaining displacement, divided by (V/n)^(1/3), is below
   stol.

Margins make both verdicts safe, because a false "same structure" loses a row:
* True needs a candidate inside 99 % of the matcher's lattice window when the minima are
  untied (the test is then the matcher's own), or, when they are tied and the matcher's
  basis is one of several, a near-isometric map (stretch within 80 % of
  min(ltol, angle_tol / 2) of 1: inside every window whatever the basis); a trial
  translation whose atom pairing the matcher would make too from any anchor (every other
  pairing three times farther); every atom within the matcher's per-axis pre-check box
  with a 10 % margin from whichever atom of a rarest species it anchors (for tied minima:
  within 45 % of the box's inscribed radius); and the final displacement within 90 % of
  stol. A copy of an untied cell is confirmed first from the stored basis up to signs, with
  no lattice enumeration and no assignment solver (`_shortcut`).
* False needs: no candidate in a window 0.2 % wider, for our basis when the minima are
  untied and for every basis with the lengths λ1, λ2, λ3 when they are tied
  (`MatchCell.metrics`); or, untied, for every candidate and trial translation an atom
  farther than twice the matcher's reach from every stored atom of its species, or a final
  displacement 2 % above stol. (If the matcher succeeds from its anchor, every atom is
  within stol of its partner after the mean translation, and the anchor too, so from any
  anchor every atom is within 2 · stol.)
Everything in between is None.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from hamdb.io.structure_cells import TIE, Cell, Minima, det3, inv3, lattice_points

#: Fractions of the matcher's tolerances inside which True is certain, and above which
#: (relative) False is: for displacements (our primitive cell averages merged atoms a little
#: differently from pymatgen's), and for lattices, where with untied minima our test is the
#: matcher's own on the same numbers (floating point and the TIE slack only).
INNER = 0.9
OUTER = 1.02
INNER_LATTICE = 0.99
OUTER_LATTICE = 1.002
#: Bound on trial arrays (elements) before the trials are split into chunks.
_CHUNK = 400_000
#: Lattice vectors cached per cell: up to this many times λ3 (longer searches recompute).
_REACH = 1.5


@dataclass(frozen=True)
class Tolerances:
    """StructureMatcher's ltol, stol, angle_tol (degrees) and scale."""

    ltol: float
    stol: float
    angle_tol: float
    scale: bool


def _angles(basis: np.ndarray) -> np.ndarray:
    """(alpha, beta, gamma) in degrees of bases (..., 3, 3) (rows a, b, c)."""
    gram = basis @ np.swapaxes(basis, -1, -2)
    diagonal = np.sqrt(np.diagonal(gram, axis1=-2, axis2=-1))
    cosines = np.stack(
        [
            gram[..., 1, 2] / (diagonal[..., 1] * diagonal[..., 2]),
            gram[..., 0, 2] / (diagonal[..., 0] * diagonal[..., 2]),
            gram[..., 0, 1] / (diagonal[..., 0] * diagonal[..., 1]),
        ],
        axis=-1,
    )
    return np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))


def _basis_angles(basis: np.ndarray) -> np.ndarray:
    """`_angles` of one basis, in plain floats (a numpy call per step costs more)."""
    rows = basis.tolist()
    lengths = [math.sqrt(sum(x * x for x in row)) for row in rows]
    out = []
    for i, j in ((1, 2), (0, 2), (0, 1)):
        dot = sum(x * y for x, y in zip(rows[i], rows[j], strict=True))
        cosine = min(1.0, max(-1.0, dot / (lengths[i] * lengths[j])))
        out.append(math.degrees(math.acos(cosine)))
    return np.array(out)


class MatchCell:
    """A primitive cell in its successive-minima basis, atoms sorted by atomic number, with
    what every comparison needs computed once."""

    __slots__ = (
        "_metrics",
        "_points",
        "anchor",
        "angles",
        "basis",
        "forbidden",
        "frac",
        "lengths",
        "numbers",
        "partners",
        "probes",
        "rarest",
        "tied",
        "volume",
    )

    def __init__(self, primitive: Cell, minima: Minima) -> None:
        transform = minima.transform
        self.basis = transform @ primitive.lattice
        self.lengths = minima.lengths
        self.tied = minima.tied
        self.angles = _basis_angles(self.basis)
        order = np.argsort(primitive.numbers, kind="stable")
        frac = primitive.frac[order] @ inv3(transform)
        self.frac = frac - np.floor(frac)
        self.numbers = primitive.numbers[order]
        self.volume = abs(det3(self.basis))
        #: +inf where the species differ: added to squared distances, it forbids the pair.
        self.forbidden = np.where(self.numbers[:, None] == self.numbers[None, :], 0.0, np.inf)
        numbers = self.numbers.tolist()
        counts = Counter(numbers)
        smallest = min(counts.values())
        rarest = [z for z in counts if counts[z] == smallest]
        #: The anchor (first atom of a rarest species) and the atoms it may land on.
        self.anchor = numbers.index(min(rarest))
        self.partners = np.arange(self.anchor, self.anchor + smallest)
        #: Every atom of every rarest species: the matcher's anchor is one of them.
        self.rarest = np.array([i for i, z in enumerate(numbers) if counts[z] == smallest])
        #: The anchor's nearest atoms (up to three): a trial translation must bring them,
        #: too, onto stored atoms, which rules out most trials at little cost.
        delta = self.frac - self.frac[self.anchor]
        delta -= np.round(delta)
        cart = delta @ self.basis
        distances = np.einsum("ij,ij->i", cart, cart)
        distances[self.anchor] = np.inf
        self.probes = np.argsort(distances, kind="stable")[: min(3, len(distances) - 1)]
        self._points: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._metrics: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.numbers)

    def __getstate__(self) -> tuple[bytes, bytes, tuple[int, ...]]:
        """Two buffers (floats, integers) and their sizes, without the caches and the
        species mask (rebuilt on unpickling): a worker sends one per structure, and a
        dozen small arrays cost the receiver ~5x more to unpickle."""
        floats = [self.basis.ravel(), self.lengths, self.angles, self.frac.ravel()]
        integers = [self.numbers, self.partners, self.rarest, self.probes]
        sizes = (
            len(self.numbers),
            len(self.partners),
            len(self.rarest),
            len(self.probes),
            int(self.anchor),
            int(self.tied),
        )
        return (
            np.concatenate([*floats, [self.volume]]).tobytes(),
            np.concatenate(integers).astype(np.int64).tobytes(),
            sizes,
        )

    def __setstate__(self, state: tuple[bytes, bytes, tuple[int, ...]]) -> None:
        floats = np.frombuffer(state[0], dtype=np.float64).copy()
        integers = np.frombuffer(state[1], dtype=np.int64).copy()
        n, partners, rarest, probes, anchor, tied = state[2]
        self.basis = floats[:9].reshape(3, 3)
        self.lengths = floats[9:12]
        self.angles = floats[12:15]
        self.frac = floats[15 : 15 + 3 * n].reshape(n, 3)
        self.volume = float(floats[-1])
        self.numbers = integers[:n]
        self.partners = integers[n : n + partners]
        self.rarest = integers[n + partners : n + partners + rarest]
        self.probes = integers[n + partners + rarest : n + partners + rarest + probes]
        self.anchor = anchor
        self.tied = bool(tied)
        self.forbidden = np.where(self.numbers[:, None] == self.numbers[None, :], 0.0, np.inf)
        self._points = None
        self._metrics = None

    def points(self, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(coefficients, vectors, lengths) of the lattice vectors up to `radius` (Å), from a
        cache of those up to _REACH · λ3."""
        cached = self._points
        if cached is None or cached[0] < radius:
            reach = max(radius, _REACH * float(self.lengths[2]))
            coefficients, vectors = lattice_points(self.basis, reach)
            cached = (reach, coefficients, vectors, np.linalg.norm(vectors, axis=1))
            self._points = cached
        _, coefficients, vectors, norms = cached
        keep = norms <= radius
        return coefficients[keep], vectors[keep], norms[keep]

    @property
    def metrics(self) -> np.ndarray:
        """The angle triples (degrees) of every basis whose lengths are λ1, λ2, λ3 (up to
        TIE), one per row; (0, 3) if there are too many to try."""
        if self._metrics is None:
            coefficients, vectors, norms = self.points(float(self.lengths[2]) * (1 + 2 * TIE))
            # Up to sign: a sign flip of u_k flips v_k in the matcher's search, same answer.
            nonzero = np.argmax(coefficients != 0, axis=1)
            first = coefficients[np.arange(len(coefficients)), nonzero]
            shells = [
                np.flatnonzero((np.abs(norms / lam - 1) <= TIE) & (first > 0))
                for lam in self.lengths
            ]
            if np.prod([len(shell) for shell in shells]) > 512:
                self._metrics = np.empty((0, 3))
            else:
                grid = np.stack(np.meshgrid(*shells, indexing="ij"), axis=-1).reshape(-1, 3)
                det = np.rint(np.linalg.det(coefficients[grid].astype(float)))
                bases = vectors[grid[np.abs(det) == 1]]
                self._metrics = np.unique(np.round(_angles(bases), 6), axis=0)
        return self._metrics


def _candidates(
    stored: MatchCell, scale: float, lengths: np.ndarray, angles: np.ndarray, tol: Tolerances
) -> np.ndarray:
    """Integer matrices Q (t, 3, 3), rows the coefficients (stored basis) of bases v of the
    stored lattice (scaled by `scale`) whose lengths and angles match `lengths` (Å) and
    `angles` (degrees) within OUTER_LATTICE times the tolerances: Lattice.find_all_mappings'
    test."""
    ltol = tol.ltol * OUTER_LATTICE
    coefficients, vectors, norms = stored.points(float(lengths[2]) * (1 + ltol) / scale)
    norms = norms * scale
    picks = []
    for lam in lengths:
        ratio = norms / lam
        pick = np.flatnonzero((ratio < 1 + ltol) & (ratio > 1 / (1 + ltol)))
        if not len(pick):
            return np.empty((0, 3, 3), dtype=np.int64)
        picks.append(pick)
    unit = vectors / (norms / scale)[:, None]
    atol = tol.angle_tol * OUTER_LATTICE
    a, b, c = picks
    gaps = []
    for i, j, target in ((a, b, angles[2]), (a, c, angles[1]), (b, c, angles[0])):
        cos = np.clip(unit[i] @ unit[j].T, -1.0, 1.0)
        gaps.append(np.abs(np.degrees(np.arccos(cos)) - target) <= atol)
    ok = gaps[0][:, :, None] & gaps[1][:, None, :] & gaps[2][None, :, :]
    ia, ib, ic = np.nonzero(ok)
    q = np.stack([coefficients[a[ia]], coefficients[b[ib]], coefficients[c[ic]]], axis=1)
    det = np.rint(np.linalg.det(q.astype(float)))
    return q[np.abs(det) == 1]


def _average_lattices(vs: np.ndarray, u: np.ndarray, u_angles: np.ndarray) -> np.ndarray:
    """The lattices (t, 3, 3) StructureMatcher measures distances on, one per candidate
    basis in `vs` (t, 3, 3) against `u`: lengths and angles averaged."""
    lengths = (np.linalg.norm(vs, axis=2) + np.linalg.norm(u, axis=1)) / 2
    cosines = np.cos(np.radians((_angles(vs) + u_angles) / 2))
    gram = lengths[:, :, None] * lengths[:, None, :]
    for k, (i, j) in enumerate(((1, 2), (0, 2), (0, 1))):
        gram[:, i, j] *= cosines[:, k]
        gram[:, j, i] *= cosines[:, k]
    return np.linalg.cholesky(gram)


#: How sure a candidate map can make us: not at all, as the matcher's own map (untied
#: minima, inside the window), or as a near-isometry (tied minima).
UNSURE, EXACT, ISOMETRY = 0, 1, 2


@dataclass
class _Geometry:
    """Per candidate map (arrays over candidates): the averaged lattice, its dual, the
    normalisation (n / V)^(1/3), the matcher's pre-check box (per axis, box · |a*_k|), the
    reach beyond which no atom may be from every stored atom of its species, the plane
    spacings, and the image shifts a thin cell needs (None: the nearest image suffices)."""

    lattices: np.ndarray
    reciprocal: np.ndarray
    dual: np.ndarray
    normalisation: np.ndarray
    box: np.ndarray
    reach: np.ndarray
    spacing: np.ndarray
    shifts: np.ndarray | None

    @classmethod
    def of(cls, lattices: np.ndarray, n: int, tol: Tolerances) -> _Geometry:
        reciprocal = np.linalg.inv(lattices)  # columns: the dual bases
        dual = np.sqrt(np.einsum("cij,cij->cj", reciprocal, reciprocal))
        normalisation = (n / np.abs(np.linalg.det(lattices))) ** (1 / 3)
        box = tol.stol / (math.pi * normalisation)
        lengths = np.sqrt(np.einsum("cij,cij->ci", lattices, lattices))
        corner = box * np.einsum("ci,ci->c", lengths, dual)
        reach = np.minimum(2 * tol.stol / normalisation, 2 * corner) * OUTER
        spacing = 1.0 / dual
        images = np.floor(0.5 + 2 * OUTER * tol.stol / normalisation[:, None] / spacing)
        shifts = None
        if images.any():  # a thin cell: look at neighbouring images too, keep the nearest
            r = images.max(axis=0).astype(int)
            shifts = np.stack(
                np.meshgrid(*[np.arange(-k, k + 1) for k in r], indexing="ij"), axis=-1
            ).reshape(-1, 3)
        return cls(lattices, reciprocal, dual, normalisation, box, reach, spacing, shifts)

    def part(self, start: int, stop: int) -> _Geometry:
        """The same for candidates start..stop."""
        cut = slice(start, stop)
        return _Geometry(
            self.lattices[cut],
            self.reciprocal[cut],
            self.dual[cut],
            self.normalisation[cut],
            self.box[cut],
            self.reach[cut],
            self.spacing[cut],
            self.shifts,
        )


def _nearest(delta: np.ndarray, lattices: np.ndarray, shifts: np.ndarray | None) -> tuple:
    """(Cartesian vectors, squared lengths) of wrapped fractional differences `delta`
    (c, ..., 3) on the lattices (c, 3, 3), over the image shifts if any (nearest kept)."""
    delta = delta - np.round(delta)
    extra = (1,) * (delta.ndim - 3)
    lattices = lattices.reshape(lattices.shape[:1] + extra + (3, 3))
    if shifts is None:
        cart = delta @ lattices
        return cart, np.einsum("...k,...k->...", cart, cart)
    every = (delta[..., None, :] + shifts) @ lattices[..., None, :, :]
    d2 = np.einsum("...k,...k->...", every, every)
    best = np.argmin(d2, axis=-1)
    d2 = np.take_along_axis(d2, best[..., None], axis=-1)[..., 0]
    cart = np.take_along_axis(every, best[..., None, None], axis=-2)[..., 0, :]
    return cart, d2


def _probe(f1s: np.ndarray, new: MatchCell, geometry: _Geometry) -> np.ndarray:
    """(candidates, trials) booleans: the trial translations (anchor onto each stored atom
    of its species) that bring the anchor's nearest atoms within reach of stored atoms of
    their species, all candidate maps at once (a cheap, safe first cut)."""
    f2 = new.frac
    translations = f1s[:, new.partners] - f2[new.anchor]  # (c, m, 3)
    if len(new) == 1:
        return np.ones(translations.shape[:2], dtype=bool)
    probes = new.probes
    delta = f1s[:, None, None, :, :] - f2[probes][None, None, :, None, :]
    delta = delta - translations[:, :, None, None, :]  # (c, m, probes, n1, 3)
    _, d2 = _nearest(delta, geometry.lattices, geometry.shifts)
    d2 += new.forbidden[probes]
    worst = np.sqrt(d2.min(axis=3).max(axis=2))  # (c, m)
    return worst <= geometry.reach[:, None]


def _verify(
    f1: np.ndarray,
    new: MatchCell,
    geometry: _Geometry,
    index: int,
    trials: np.ndarray,
    tol: Tolerances,
    mode: int,
) -> tuple[bool, bool]:
    """(certainly the same, possibly the same) for candidate `index` and its trials that
    passed the probe: the matcher's assignment and displacement test (see the module doc)."""
    from scipy.optimize import linear_sum_assignment  # here: workers never need scipy

    n = len(new)
    f2 = new.frac
    translations = f1[new.partners[trials]] - f2[new.anchor]
    lattice = geometry.lattices[index : index + 1]
    normalisation = float(geometry.normalisation[index])
    box, reach = float(geometry.box[index]), float(geometry.reach[index])
    spacing = geometry.spacing[index]
    pairs = f1[None, None, :, :] - f2[None, :, None, :]  # (1, n2, n1, 3)
    images = 1 if geometry.shifts is None else len(geometry.shifts)
    step = max(1, _CHUNK // (n * n * 3 * images))
    possible = False
    for start in range(0, len(translations), step):
        delta = pairs - translations[start : start + step, None, None, :]
        cart, d2 = _nearest(delta[None], lattice, geometry.shifts)
        cart, d2 = cart[0], d2[0] + new.forbidden
        worst = np.sqrt(d2.min(axis=2).max(axis=1))
        for trial in np.flatnonzero(worst <= reach):
            cost = d2[trial]
            rows, cols = linear_sum_assignment(cost)
            short = cart[trial, rows, cols]
            value = float(np.max(np.linalg.norm(short - short.mean(axis=0), axis=1)))
            value *= normalisation
            if value < OUTER * tol.stol:
                possible = True
            if mode == UNSURE or value > INNER * tol.stol:
                continue
            # The matcher assigns atoms as we did from any anchor if no other pairing is
            # within three times the largest displacement (images beyond half a plane
            # spacing are not looked at, hence the cap).
            radius = float(np.max(np.linalg.norm(short, axis=1)))
            others = cost.copy()
            others[rows, cols] = np.inf
            if min(math.sqrt(float(others.min())), float(spacing.min()) / 2) <= 3 * radius:
                continue
            if mode == ISOMETRY:
                if 2 * radius <= INNER * box:
                    return True, True
                continue
            # EXACT: its pre-check passes from whichever atom of a rarest species it anchors.
            shifted = (short[None, :, :] - short[new.rarest][:, None, :]) @ geometry.reciprocal[
                index
            ]
            if np.all(np.abs(shifted) <= INNER * box * geometry.dual[index]):
                return True, True
    return False, possible


def _sites(
    f1s: np.ndarray, new: MatchCell, lattices: np.ndarray, tol: Tolerances, modes: np.ndarray
) -> tuple[bool, bool]:
    """(certainly the same, possibly the same) over candidate maps, in their order:
    stored fractional coordinates `f1s` (c, n, 3) in each candidate basis, the averaged
    lattices (c, 3, 3) and how sure each candidate can make us (UNSURE, EXACT, ISOMETRY)."""
    geometry = _Geometry.of(lattices, len(new), tol)
    step = max(1, _CHUNK // (len(new.partners) * len(new.probes) * len(new) * 3 + 1))
    possible = False
    for start in range(0, len(f1s), step):
        passed = _probe(f1s[start : start + step], new, geometry.part(start, start + step))
        for offset in np.flatnonzero(passed.any(axis=1)):
            index = start + int(offset)
            trials = np.flatnonzero(passed[offset])
            same, maybe = _verify(f1s[index], new, geometry, index, trials, tol, int(modes[index]))
            if same:
                return True, True
            possible |= maybe
    return False, possible


_SIGNS = np.array(
    [
        [1, 1, 1],
        [-1, -1, -1],
        [1, 1, -1],
        [-1, -1, 1],
        [1, -1, 1],
        [-1, 1, -1],
        [-1, 1, 1],
        [1, -1, -1],
    ]
)


#: For each sign pattern, which of the angles (alpha, beta, gamma) it turns to 180° - angle.
_FLIPS = np.array([[s[1] != s[2], s[0] != s[2], s[0] != s[1]] for s in _SIGNS])


def _copy_fits(
    f1: np.ndarray, new: MatchCell, gram: np.ndarray, lattice: np.ndarray, tol: Tolerances
) -> bool:
    """Whether an EXACT candidate certainly fits as a copy: a translation after which every
    atom is within 0.45 · the matcher's pre-check box of its nearest stored atom of its
    species, that pairing one-to-one with every other pairing three times farther. Then the
    linear assignment is that pairing, the pre-check passes from any anchor and the
    displacement test too: `_verify`'s verdict, without its assignment solver.

    `gram` is the averaged lattice's metric (Å²) and `lattice` its Cholesky factor (the
    volume and plane spacings come from the metric in plain floats: this runs for every
    copy ingest meets, and numpy's 3x3 det and inverse cost more than the arithmetic).
    """
    n = len(new)
    (g00, g01, g02), (_, g11, g12), (_, _, g22) = gram.tolist()
    minors = (g11 * g22 - g12 * g12, g01 * g22 - g12 * g02, g01 * g12 - g11 * g02)
    volume = math.sqrt(g00 * minors[0] - g01 * minors[1] + g02 * minors[2])
    normalisation = (n / volume) ** (1 / 3)
    # The narrowest plane spacing: the volume over the largest face |a_i × a_j|.
    face2 = max(minors[0], g00 * g22 - g02 * g02, g00 * g11 - g01 * g01)
    box = tol.stol / (math.pi * normalisation)
    limit = INNER * box / 2
    if limit >= volume / math.sqrt(face2) / 6:  # a thin cell: leave it to the general test
        return False
    f2 = new.frac
    pairs = f1[None, :, :] - f2[:, None, :]  # (n2, n1, 3)
    translations = f1[new.partners] - f2[new.anchor]
    if n > 1:
        delta = pairs[new.probes][None] - translations[:, None, None, :]
        delta -= np.round(delta)
        cart = delta @ lattice
        d2 = np.einsum("...k,...k->...", cart, cart) + new.forbidden[new.probes]
        translations = translations[d2.min(axis=2).max(axis=1) <= limit * limit]
    rows = np.arange(n)
    for translation in translations:
        delta = pairs - translation
        delta -= np.round(delta)
        cart = delta @ lattice
        d2 = np.einsum("ijk,ijk->ij", cart, cart) + new.forbidden
        cols = np.argmin(d2, axis=1)
        nearest = d2[rows, cols]
        if nearest.max() > limit * limit or len(np.unique(cols)) != n:
            continue
        d2[rows, cols] = np.inf
        if d2.min() <= 9 * nearest.max():
            continue
        short = cart[rows, cols]
        value = float(np.max(np.linalg.norm(short - short.mean(axis=0), axis=1)))
        if value * normalisation <= INNER * tol.stol:
            return True
    return False


def _shortcut(stored: MatchCell, new: MatchCell, scale: float, tol: Tolerances) -> bool:
    """True if the stored basis itself, up to signs, is a sure candidate that fits as a copy:
    an untied cell's copy is decided here without enumerating lattice vectors."""
    if new.tied or np.any(
        np.abs(np.log(stored.lengths * scale / new.lengths)) > INNER_LATTICE * math.log1p(tol.ltol)
    ):
        return False
    flipped = np.where(_FLIPS, 180.0 - stored.angles, stored.angles)  # (8, 3)
    gaps = np.abs(flipped - new.angles)
    good = np.flatnonzero(np.all(gaps <= INNER_LATTICE * tol.angle_tol, axis=1))
    lengths = (stored.lengths * scale + new.lengths) / 2
    for index in good:
        cosines = np.cos(np.radians((flipped[index] + new.angles) / 2))
        gram = lengths[:, None] * lengths[None, :]
        gram[1, 2] = gram[2, 1] = gram[1, 2] * cosines[0]
        gram[0, 2] = gram[2, 0] = gram[0, 2] * cosines[1]
        gram[0, 1] = gram[1, 0] = gram[0, 1] * cosines[2]
        f1 = stored.frac * _SIGNS[index]
        if _copy_fits(f1 - np.floor(f1), new, gram, np.linalg.cholesky(gram), tol):
            return True
    return False


def compare(stored: MatchCell, new: MatchCell, tol: Tolerances) -> bool | None:
    """What StructureMatcher(tol).fit(stored, new) says on these cells, or None if unsure."""
    if len(stored) != len(new) or not np.array_equal(stored.numbers, new.numbers):
        return False
    scale = (new.volume / stored.volume) ** (1 / 3) if tol.scale else 1.0
    if _shortcut(stored, new, scale, tol):
        return True
    u = new.basis
    candidates = _candidates(stored, scale, new.lengths, new.angles, tol)
    if not len(candidates):
        if not new.tied:
            return False
        metrics = new.metrics
        if len(metrics) and not any(
            len(_candidates(stored, scale, new.lengths, m, tol)) for m in metrics
        ):
            return False
        return None
    vs = (candidates @ stored.basis) * scale  # (t, 3, 3)
    log_ratios = np.abs(np.log(np.linalg.norm(vs, axis=2) / new.lengths))
    angle_gaps = np.abs(_angles(vs) - new.angles)
    if new.tied:  # the matcher's basis is unknown: only a near-isometry is certain
        stretch = np.linalg.svd(np.linalg.inv(u) @ vs, compute_uv=False)
        limit = 0.8 * min(tol.ltol, math.radians(tol.angle_tol) / 2)
        sure = np.all(np.abs(stretch - 1) <= limit, axis=1)
    else:
        sure = np.all(log_ratios <= INNER_LATTICE * math.log1p(tol.ltol), axis=1)
        sure &= np.all(angle_gaps <= INNER_LATTICE * tol.angle_tol, axis=1)
    # Likeliest first: sure maps, then those keeping the handedness (a rotated copy), then
    # by misfit; a copy is then decided by its first candidate.
    flips = np.linalg.det(vs) * np.linalg.det(u) < 0
    misfit = log_ratios.sum(axis=1) / tol.ltol + angle_gaps.sum(axis=1) / tol.angle_tol
    order = np.lexsort((misfit, flips, ~sure))
    vs, candidates, sure = vs[order], candidates[order], sure[order]
    f1s = stored.frac[None, :, :] @ np.linalg.inv(candidates.astype(float))
    modes = np.where(sure, ISOMETRY if new.tied else EXACT, UNSURE)
    same, possible = _sites(
        f1s - np.floor(f1s), new, _average_lattices(vs, u, new.angles), tol, modes
    )
    if same:
        return True
    return None if (possible or new.tied) else False
