"""The exact PAW overlap S(R) of GPAW's LCAO basis, fast enough to run per predicted structure.

S(R) is geometry only (no SCF): for orbitals φ_μ of atom i and φ_ν of atom j in cell R,

    S_μν(R) = ⟨φ_μ|φ_ν(R)⟩ + Σ_a Σ_L Σ_pq ⟨φ_μ|p̃_p^{a,L}⟩ ΔO^a_pq ⟨p̃_q^{a,L}|φ_ν(R)⟩,

the orbital overlap plus GPAW's PAW correction over every projector sphere (atom a, image L)
that touches both orbitals. Both kinds of integral are two-centre: for f = f(r) Y_{L1} at the
origin and g = g(r) Y_{L2} at d,

    ⟨f|g(d)⟩ = Σ_l s_l(|d|) Σ_m G_{L1 L2 (lm)} |d|^l Y_{lm}(d̂)           (Slater–Koster form)

with real Gaunt coefficients G and radial functions s_l from the Fourier–Bessel transform of
f and g (Talman, Comput. Phys. Commun. 30, 93 (1983); Sankey & Niklewski, Phys. Rev. B 40,
3979 (1989)). GPAW tabulates s_l as splines (`gpaw.lcao.tci.TCIExpansions`); this module
takes those tables as they are and evaluates the sum above for all displacements of a
structure at once in numpy instead of one Python call per displacement.

What is cached (per process): each element's PAW setup (per element, basis, xc and grid
spacing, which sets GPAW's projector filter) and the expansion tables of each element pair.
The element data and pair tables are also cached on disk (`disk_cache_dir()`, one pickle per
entry written atomically, keyed by GPAW's version, element(s), basis, xc, grid spacing,
Fourier radius and the sha256 of the setup and basis files), so a new worker or a new element
set does not rebuild them; a spline read back is GPAW's own (its pickled samples), and S is
bitwise the same as without the cache (tested).
GPAW's Fourier grid depends on the largest cut-off among the structure's elements (its
`FourierTransformer(rcut=max)`), and the tables change with it by up to 1e-2 (Pb–S with and
without Ba in the cell), so tables are keyed by that radius too: S stays GPAW's to rounding.

Edges are those of `hamdb.dft.gpaw_lcao.needed_translations` (orbital spheres overlap, or both
touch one projector sphere), the same edges and values as a DFT run's S(R) (tested).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hamdb.dft.gpaw_basis import BOHR_ANGSTROM, gpaw_basis, orbital_map
from hamdb.ml.graph import periodic_neighbours

if TYPE_CHECKING:
    from pymatgen.core import Structure

#: Å added to the sphere radii when choosing edges (as `needed_translations`).
EDGE_MARGIN_ANGSTROM = 1e-3
#: Radial points of GPAW's Fourier–Bessel grid (gpaw.lcao.tci.TCIExpansions uses 2**10).
FOURIER_POINTS = 2**10
#: GPAW's two-centre code skips a radial term s_l(r) smaller than this (its C `tci_overlap`);
#: so do we, or S differs from a run's by up to ~1e-7 where s_l is tiny but r^l is large.
SPLINE_FLOOR = 1e-10
#: Element sets (pair tables) kept per process.
CACHE_SIZE = 64
#: Version of the on-disk cache entries' pickled form (part of every key).
DISK_CACHE_FORMAT = 1


@dataclass(frozen=True)
class ElementData:
    """What the overlap needs of one element's setup, in GPAW's orbital order.

    orbital_rc_ang / projector_rc_ang choose edges (as needed_translations); the *_bohr radii
    are the splines' own cut-offs, beyond which GPAW evaluates no integral.
    """

    symbol: str
    orbital_ls: tuple[int, ...]
    projector_ls: tuple[int, ...]
    delta_o: np.ndarray  # ΔO_pq = ⟨φ_p|φ_q⟩ − ⟨φ̃_p|φ̃_q⟩ inside the sphere (GPAW's dO_ii)
    orbital_rc_ang: float
    projector_rc_ang: float
    orbital_rc_bohr: float
    projector_rc_bohr: float
    design_index: np.ndarray
    design_sign: np.ndarray

    @property
    def n_orbitals(self) -> int:
        return sum(2 * ell + 1 for ell in self.orbital_ls)

    @property
    def n_projectors(self) -> int:
        return sum(2 * ell + 1 for ell in self.projector_ls)


@dataclass(frozen=True)
class _Term:
    """One function pair's expansion: block[rows, cols] += Σ_l s_l(r) · A_{la,lb,l}(d)."""

    rows: slice
    cols: slice
    la: int
    lb: int
    splines: tuple[tuple[int, Any], ...]  # (l, GPAW C spline: .map(r, out)) pairs


@dataclass(frozen=True)
class PairTable:
    """⟨f_A|g_B⟩ for every function pair of an element pair: shape (n_A, n_B), terms."""

    shape: tuple[int, int]
    terms: tuple[_Term, ...]

    @property
    def lmax(self) -> int:
        return max((ell for t in self.terms for ell, _ in t.splines), default=0)


def _filter(grid_spacing_ang: float) -> Any:
    """GPAW's default projector filter for a real-space (LCAO) calculation with spacing h:
    Fourier-filter each projector to q < π/h − 2/(γ·rcut) inside γ·rcut, γ = 1.6 (what
    `GPAW.create_setups` does when no filter is given), so the setups match a run's."""
    h = grid_spacing_ang / BOHR_ANGSTROM
    gamma = 1.6

    def apply(rgd: Any, rcut: float, f_r: np.ndarray, l: int = 0) -> None:  # noqa: E741
        f_r[:] = rgd.filter(f_r, rcut * gamma, np.pi / h - 2 / rcut / gamma, l)[: len(f_r)]

    return apply


@cache
def _setup(symbol: str, basis: str, xc: str, grid_spacing_ang: float) -> Any:
    """GPAW's PAW setup (with its LCAO basis) of one element, as a calculation builds it."""
    from ase.data import atomic_numbers
    from gpaw.setup import Setups
    from gpaw.xc import XC

    return Setups([atomic_numbers[symbol]], "paw", basis, XC(xc), filter=_filter(grid_spacing_ang))[
        0
    ]


@cache
def element_data(symbol: str, basis: str, xc: str, grid_spacing_ang: float) -> ElementData:
    """The setup of `symbol` reduced to what the overlap needs (cached per process and on
    disk)."""
    path = _disk_path("element", symbol, basis, xc, grid_spacing_ang, _sources(symbol, basis, xc))
    cached = _disk_load(path)
    if isinstance(cached, ElementData):
        return cached
    gpaw_basis([symbol], basis, xc)  # DFTError naming the element if GPAW lacks it
    setup = _setup(symbol, basis, xc, grid_spacing_ang)
    orbital_ls = tuple(int(f.get_angular_momentum_number()) for f in setup.basis_functions_J)
    index, sign = orbital_map(orbital_ls)
    data = ElementData(
        symbol=symbol,
        orbital_ls=orbital_ls,
        projector_ls=tuple(int(ell) for ell in setup.l_j),
        delta_o=np.array(setup.dO_ii, dtype=float),
        orbital_rc_ang=max(float(bf.rc) for bf in setup.basis.bf_j) * BOHR_ANGSTROM,
        projector_rc_ang=max(p.get_cutoff() for p in setup.pt_j) * BOHR_ANGSTROM,
        orbital_rc_bohr=max([0.001] + [f.get_cutoff() for f in setup.basis_functions_J]),
        projector_rc_bohr=max([0.001] + [p.get_cutoff() for p in setup.pt_j]),
        design_index=index,
        design_sign=sign,
    )
    _disk_save(path, data)
    return data


def _fourier_radius(elements: Sequence[ElementData]) -> float:
    """GPAW's Fourier-grid radius for a calculation holding `elements` (Bohr)."""
    return max([1e-3] + [max(e.orbital_rc_bohr, e.projector_rc_bohr) for e in elements])


@lru_cache(maxsize=4 * CACHE_SIZE)
def _transforms(
    symbol: str, kind: str, radius: float, basis: str, xc: str, h: float
) -> tuple[tuple[int, ...], np.ndarray]:
    """(l's, Fourier transforms) of an element's orbitals ("phit") or projectors ("pt")."""
    from gpaw.lcao.overlap import FourierTransformer, TwoSiteOverlapCalculator

    setup = _setup(symbol, basis, xc, h)
    functions = setup.basis_functions_J if kind == "phit" else setup.pt_j
    calc = TwoSiteOverlapCalculator(FourierTransformer(rcut=radius, N=FOURIER_POINTS))
    ls = tuple(int(f.get_angular_momentum_number()) for f in functions)
    return ls, calc.transform(functions)


@lru_cache(maxsize=16 * CACHE_SIZE)
def pair_table(
    a: str, kind_a: str, b: str, radius: float, basis: str, xc: str, h: float
) -> PairTable:
    """Expansion table of ⟨f_a|φ_b⟩, f the orbitals ("phit") or projectors ("pt") of a, on
    GPAW's Fourier grid of radius `radius` (Bohr); cached per process and on disk."""
    path = _disk_path(
        "pair", a, kind_a, b, radius, basis, xc, h, _sources(a, basis, xc), _sources(b, basis, xc)
    )
    cached = _disk_load(path)
    if cached is not None:
        try:
            return _table_from_state(cached)
        except Exception:  # an entry of another layout: rebuilt below
            pass
    table = _build_pair_table(a, kind_a, b, radius, basis, xc, h)
    _disk_save(path, _table_state(table))
    return table


def _build_pair_table(
    a: str, kind_a: str, b: str, radius: float, basis: str, xc: str, h: float
) -> PairTable:
    """`pair_table` computed with GPAW (no cache)."""
    from gpaw.lcao.overlap import FourierTransformer, TwoSiteOverlapCalculator

    la_j, fa = _transforms(a, kind_a, radius, basis, xc, h)
    lb_j, fb = _transforms(b, "phit", radius, basis, xc, h)
    calc = TwoSiteOverlapCalculator(FourierTransformer(rcut=radius, N=FOURIER_POINTS))
    expansions = calc.calculate_expansions(la_j, fa, lb_j, fb)
    starts_a = np.concatenate([[0], np.cumsum([2 * ell + 1 for ell in la_j])])
    starts_b = np.concatenate([[0], np.cumsum([2 * ell + 1 for ell in lb_j])])
    terms = []
    for ja, la in enumerate(la_j):
        for jb, lb in enumerate(lb_j):
            oe = expansions.oe_jj[ja, jb]
            splines = tuple((int(s.get_angular_momentum_number()), s.spline) for s in oe.spline_l)
            terms.append(
                _Term(
                    slice(int(starts_a[ja]), int(starts_a[ja + 1])),
                    slice(int(starts_b[jb]), int(starts_b[jb + 1])),
                    la,
                    lb,
                    splines,
                )
            )
    return PairTable((int(starts_a[-1]), int(starts_b[-1])), tuple(terms))


def _table_state(table: PairTable) -> tuple[Any, ...]:
    """A picklable form of `table`: GPAW's C splines wrapped in `gpaw.spline.Spline`, which
    pickles its samples and rebuilds the same spline."""
    from gpaw.spline import Spline

    terms = tuple(
        (t.rows, t.cols, t.la, t.lb, tuple((ell, Spline(sp)) for ell, sp in t.splines))
        for t in table.terms
    )
    return (DISK_CACHE_FORMAT, table.shape, terms)


def _table_from_state(state: tuple[Any, ...]) -> PairTable:
    version, shape, terms = state
    if version != DISK_CACHE_FORMAT:
        raise ValueError(f"disk cache entry of format {version}")
    return PairTable(
        tuple(shape),
        tuple(
            _Term(rows, cols, la, lb, tuple((int(ell), sp.spline) for ell, sp in splines))
            for rows, cols, la, lb, splines in terms
        ),
    )


# -- on-disk cache ---------------------------------------------------------------------------
def disk_cache_dir() -> Path | None:
    """Folder of the on-disk table cache: $HAMDB_CACHE_DIR/gpaw-overlap if set (empty or
    "off": no disk cache), else $XDG_CACHE_HOME/hamdb/gpaw-overlap (default ~/.cache)."""
    env = os.environ.get("HAMDB_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off") else Path(env) / "gpaw-overlap"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "hamdb" / "gpaw-overlap"


@cache
def _sources(symbol: str, basis: str, xc: str) -> str | None:
    """sha256 of the element's PAW setup and basis files as GPAW reads them (unzipped), or
    None when GPAW finds no such file (then nothing of this element is cached on disk)."""
    from gpaw.setup_data import search_for_file

    digest = hashlib.sha256()
    for name in (f"{symbol}.{xc}", f"{symbol}.{basis}.basis"):
        try:
            _, source = search_for_file(name)
        except (RuntimeError, OSError):
            return None
        if not source:
            return None
        digest.update(name.encode() + b"\0" + source)
    return digest.hexdigest()


def _disk_path(kind: str, *key: Any) -> Path | None:
    """The cache file of an entry, or None (no cache folder, or a source file not found)."""
    folder = disk_cache_dir()
    if folder is None or any(k is None for k in key):
        return None
    import gpaw

    parts = [float(k).hex() if isinstance(k, float) else k for k in key]
    text = json.dumps([DISK_CACHE_FORMAT, gpaw.__version__, kind, *parts])
    return folder / f"{kind}-{key[0]}-{hashlib.sha256(text.encode()).hexdigest()[:40]}.pkl"


def _disk_load(path: Path | None) -> Any:
    """The pickled entry at `path`, or None if absent or unreadable (then it is rebuilt)."""
    if path is None:
        return None
    try:
        with path.open("rb") as f:
            return pickle.load(f)  # the user's own cache folder
    except Exception:  # missing, truncated or stale: rebuild
        return None


def _disk_save(path: Path | None, value: Any) -> None:
    """Write `value` at `path` atomically (temp file, fsync, rename); an unwritable cache
    folder is skipped silently (the cache only saves time)."""
    if path is None:
        return
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with temp.open("wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)


# -- evaluation -----------------------------------------------------------------------------
def solid_harmonics(vectors: np.ndarray, lmax: int) -> np.ndarray:
    """(n, (lmax+1)²) real solid harmonics r^l Y_lm of `vectors` in GPAW's (and DESIGN's) order."""
    from gpaw.sphere.spherical_harmonics import YL

    vectors = np.asarray(vectors, dtype=float)
    powers = [np.ones((len(vectors), 3))]
    for _ in range(lmax):
        powers.append(powers[-1] * vectors)
    out = np.zeros((len(vectors), (lmax + 1) ** 2))
    for L in range((lmax + 1) ** 2):
        for c, (px, py, pz) in YL[L]:
            out[:, L] += c * powers[px][:, 0] * powers[py][:, 1] * powers[pz][:, 2]
    return out


def evaluate(table: PairTable, vectors_bohr: np.ndarray) -> np.ndarray:
    """(n, n_A, n_B) two-centre integrals ⟨f_A|g_B(d)⟩ for displacements d (n, 3) in Bohr."""
    from gpaw.sphere.gaunt import gaunt

    n = len(vectors_bohr)
    out = np.zeros((n, *table.shape))
    if n == 0:
        return out
    r = np.ascontiguousarray(np.linalg.norm(vectors_bohr, axis=1))
    rly = solid_harmonics(vectors_bohr, table.lmax)
    lg = max(max(t.la, t.lb) for t in table.terms)
    G = gaunt(lg)
    angular: dict[tuple[int, int, int], np.ndarray] = {}
    values = np.empty_like(r)
    for t in table.terms:
        acc = out[:, t.rows, t.cols]
        for ell, spline in t.splines:
            key = (t.la, t.lb, ell)
            ang = angular.get(key)
            if ang is None:
                g = G[t.la**2 : (t.la + 1) ** 2, t.lb**2 : (t.lb + 1) ** 2, ell**2 : (ell + 1) ** 2]
                ang = angular[key] = np.einsum("nm,abm->nab", rly[:, ell**2 : (ell + 1) ** 2], g)
            spline.map(r, values)
            values[np.abs(values) < SPLINE_FLOOR] = 0.0
            acc += values[:, None, None] * ang
    return out


@dataclass(frozen=True)
class Overlap:
    """S(R) of a structure in hamdb's layout (DESIGN.md §3): edges int32 (m, 5) sorted by
    (i, j, R), s_offsets int64 (m+1), s float64 blocks n_i × n_j in DESIGN orbital order."""

    basis: Any
    edges: np.ndarray
    s_offsets: np.ndarray
    s: np.ndarray


def _to_design(blocks: np.ndarray, a: ElementData, b: ElementData) -> np.ndarray:
    """(n, n_a, n_b) blocks from GPAW's orbital order and signs to DESIGN's."""
    if _is_identity(a) and _is_identity(b):
        return blocks
    out = blocks[:, a.design_index][:, :, b.design_index]
    return out * np.outer(a.design_sign, b.design_sign)


def _is_identity(e: ElementData) -> bool:
    same = np.array_equal(e.design_index, np.arange(e.n_orbitals))
    return bool(same and (e.design_sign > 0).all())


class _EdgeKeys:
    """(i, j, R) <-> one int64 that sorts like the tuple, for set operations on edges."""

    def __init__(self, n_atoms: int, r_max: int) -> None:
        self.n, self.o = n_atoms, r_max
        self.b = 2 * r_max + 1

    def encode(self, i: np.ndarray, j: np.ndarray, R: np.ndarray) -> np.ndarray:
        R = np.asarray(R, dtype=np.int64).reshape(-1, 3) + self.o
        ij = np.asarray(i, np.int64) * self.n + np.asarray(j, np.int64)
        return ((ij * self.b + R[:, 0]) * self.b + R[:, 1]) * self.b + R[:, 2]

    def decode(self, keys: np.ndarray) -> np.ndarray:
        out = np.empty((len(keys), 5), dtype=np.int64)
        rest = keys
        for c in (4, 3, 2):
            rest, out[:, c] = np.divmod(rest, self.b)
            out[:, c] -= self.o
        out[:, 0], out[:, 1] = np.divmod(rest, self.n)
        return out


class _Accumulator:
    """S blocks per element pair (n_edges_AB, n_A, n_B), summed, then laid out flat.

    Edges of one atom pair are contiguous in the canonical (i, j, R) order and share one
    element pair, so the flat `s` is filled by one slice copy per atom pair.
    """

    def __init__(self, edges: np.ndarray, site: Sequence[ElementData]) -> None:
        self.edges, self.site = edges, site
        symbols = sorted({d.symbol for d in site})
        code = {el: k for k, el in enumerate(symbols)}
        site_code = np.array([code[d.symbol] for d in site])
        self.pair = site_code[edges[:, 0]] * len(symbols) + site_code[edges[:, 1]]
        self.local = np.empty(len(edges), dtype=np.int64)
        self.buffers: dict[int, np.ndarray] = {}
        self.elements: dict[int, tuple[ElementData, ElementData]] = {}
        for p in np.unique(self.pair):
            members = np.nonzero(self.pair == p)[0]
            self.local[members] = np.arange(len(members))
            a, b = site[edges[members[0], 0]], site[edges[members[0], 1]]
            self.buffers[int(p)] = np.zeros((len(members), a.n_orbitals, b.n_orbitals))
            self.elements[int(p)] = (a, b)

    def add(self, e: np.ndarray, blocks: np.ndarray) -> None:
        """Add blocks (n, n_A, n_B) onto edges e (one element pair), repeated edges summed."""
        if not len(e):
            return
        u, inverse = np.unique(e, return_inverse=True)
        if len(u) < len(e):
            from scipy.sparse import csr_matrix

            ones = csr_matrix(
                (np.ones(len(e)), (inverse.ravel(), np.arange(len(e)))), shape=(len(u), len(e))
            )
            blocks = (ones @ blocks.reshape(len(e), -1)).reshape(len(u), *blocks.shape[1:])
        self.buffers[int(self.pair[u[0]])][self.local[u]] += blocks

    def flat(self, s_offsets: np.ndarray) -> np.ndarray:
        """The flat s (DESIGN orbital order) of all blocks."""
        for p, buf in self.buffers.items():
            self.buffers[p] = _to_design(buf, *self.elements[p])
        s = np.empty(int(s_offsets[-1]))
        ij = self.edges[:, 0] * len(self.site) + self.edges[:, 1]
        starts = np.concatenate([[0], np.nonzero(np.diff(ij))[0] + 1, [len(ij)]])
        for e0, e1 in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
            l0 = int(self.local[e0])
            buf = self.buffers[int(self.pair[e0])]
            s[s_offsets[e0] : s_offsets[e1]] = buf[l0 : l0 + e1 - e0].ravel()
        return s


def exact_overlap(
    structure: Structure,
    basis: str = "dzp",
    xc: str = "PBE",
    grid_spacing: float = 0.2,
    paw_edges: bool = True,
) -> Overlap:
    """The exact PAW overlap S(R) of GPAW's `basis` for `structure`, on a DFT run's edges.

    grid_spacing (Å) is the run's: it sets GPAW's projector filter, hence ΔO's projectors.
    paw_edges=False: only the edges whose orbital spheres overlap, without those that exist
    only through a projector sphere (|S| ≲ 1e-5 there); S on the kept edges is unchanged.
    """
    from ase.units import Bohr  # GPAW's own Å -> Bohr (CODATA as ASE has it)

    species = [site.specie.symbol for site in structure]
    data = {el: element_data(el, basis, xc, float(grid_spacing)) for el in sorted(set(species))}
    args = (_fourier_radius(list(data.values())), basis, xc, float(grid_spacing))
    site = [data[el] for el in species]
    lattice = np.asarray(structure.lattice.matrix, dtype=float)
    frac = np.asarray(structure.frac_coords, dtype=float)
    rc = np.array([d.orbital_rc_ang for d in site])
    rp = np.array([d.projector_rc_ang for d in site])
    margin = EDGE_MARGIN_ANGSTROM
    direct, direct_vec = periodic_neighbours(lattice, frac, rc[:, None] + rc[None, :] + margin)
    touch, touch_vec = periodic_neighbours(lattice, frac, rp[:, None] + rc[None, :] + margin)
    # edges through a projector sphere: orbitals b1 (image L1) and b2 (L2) both touch atom
    # a's sphere -> edge (b1, b2, L2 − L1); touch rows are (a, b, L) with L b's image
    n_atoms = len(species)
    per_atom = [np.nonzero(touch[:, 0] == a)[0] for a in range(n_atoms)]
    r_max = int(max(np.abs(direct[:, 2:]).max(initial=0), 2 * np.abs(touch[:, 2:]).max(initial=0)))
    keys = _EdgeKeys(n_atoms, r_max)

    def product_keys(t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
        """Keys of the edges (b1, b2, L2 − L1) of all item pairs, t1 varying slowest."""
        R = touch[None, t2, 2:] - touch[t1, None, 2:]
        return keys.encode(np.repeat(touch[t1, 1], len(t2)), np.tile(touch[t2, 1], len(t1)), R)

    direct_keys = keys.encode(direct[:, 0], direct[:, 1], direct[:, 2:])
    all_keys = np.unique(
        np.concatenate([direct_keys] + [product_keys(t, t) for t in per_atom])
        if paw_edges
        else direct_keys
    )
    edges = keys.decode(all_keys)
    counts = np.array([d.n_orbitals for d in site], dtype=np.int64)
    s_offsets = np.concatenate([[0], np.cumsum(counts[edges[:, 0]] * counts[edges[:, 1]])])
    acc = _Accumulator(edges, site)
    species_arr = np.array(species)

    # ⟨φ_i|φ_j(R)⟩ where GPAW evaluates it: |d| below the sum of the splines' cut-offs
    d_bohr = direct_vec / Bohr
    reach = np.array([d.orbital_rc_bohr for d in site])
    inside = np.linalg.norm(d_bohr, axis=1) < reach[direct[:, 0]] + reach[direct[:, 1]]
    for el_a in data:
        for el_b in data:
            sel = np.nonzero(
                inside & (species_arr[direct[:, 0]] == el_a) & (species_arr[direct[:, 1]] == el_b)
            )[0]
            if len(sel):
                blocks = evaluate(pair_table(el_a, "phit", el_b, *args), d_bohr[sel])
                e = np.searchsorted(all_keys, keys.encode(*direct[sel, :2].T, direct[sel, 2:]))
                acc.add(e, blocks)
    # the PAW term Σ_a Σ_L ⟨φ|p̃_a(L)⟩ ΔO_a ⟨p̃_a(L)|φ⟩, per projector atom a
    t_bohr = touch_vec / Bohr
    for a, rows in enumerate(per_atom):
        pa = site[a]
        b_of = touch[rows, 1]
        near = np.linalg.norm(t_bohr[rows], axis=1) < pa.projector_rc_bohr + reach[b_of]
        groups = []
        for el_b in data:
            sel = rows[near & (species_arr[b_of] == el_b)]
            if len(sel):
                X = evaluate(pair_table(pa.symbol, "pt", el_b, *args), t_bohr[sel])
                groups.append((sel, X))  # X: (T, n_proj, n_b) = ⟨p̃_a|φ_b(L)⟩
        for t1, X1 in groups:
            left = np.einsum("tpi,pq->tiq", X1, pa.delta_o).reshape(-1, pa.n_projectors)
            for t2, X2 in groups:
                n1, n2 = X1.shape[2], X2.shape[2]
                right = X2.transpose(1, 0, 2).reshape(pa.n_projectors, -1)
                prod = (left @ right).reshape(len(t1), n1, len(t2), n2).transpose(0, 2, 1, 3)
                wanted = product_keys(t1, t2)
                e = np.searchsorted(all_keys, wanted)
                prod = prod.reshape(-1, n1, n2)
                if not paw_edges:  # products on edges without direct overlap are dropped
                    found = all_keys[np.minimum(e, len(all_keys) - 1)] == wanted
                    e, prod = e[found], prod[found]
                acc.add(e, prod)
    return Overlap(
        gpaw_basis(species, basis, xc), edges.astype(np.int32), s_offsets, acc.flat(s_offsets)
    )
