"""The starter dataset: small elemental and binary crystals, strained and distorted, with GPAW
LCAO Hamiltonians (non-SOC and SOC) for training the model.

Structure number i of a dataset is a pure function of (seed, i): a prototype, its elements, a
random strain and random atomic displacements. `build` inserts structures 0..n−1 (a source id
per index, so a second run finds them again) and runs the DFT for those without a finished run:
interrupt it at any time and run it again to continue.

Prototypes (atoms in the primitive cell): fcc (1), bcc (1), hcp (2), diamond (2) for single
elements; zincblende (2), rocksalt (2), CsCl (2), wurtzite (4) for AB; 1T (3) and 2H (6) layered
MX2; Bi2Se3-type (5, rhombohedral) A2B3. Nearest-neighbour distances are the sum of the
elements' empirical atomic radii (pymatgen's
`Element.atomic_radius`: Slater, J. Chem. Phys. 41, 3199 (1964)), so cells are near-physical.
Strain: a symmetric random matrix with entries up to `STRAIN`; displacements: Gaussian, σ =
`DISPLACEMENT_ANGSTROM` per Cartesian direction.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hamdb.dft.gpaw_lcao import LcaoSettings
from hamdb.errors import InputError

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from hamdb.config import Project
    from hamdb.dft.runner import RunOutcome

SOURCE = "hamdb-dataset"
STRAIN = 0.03
DISPLACEMENT_ANGSTROM = 0.04

#: Elements up to Bi with GPAW PBE setups and dzp bases, without f shells (lanthanides) and
#: noble gases; H is left out (it does not form the prototypes below).
ELEMENTS: tuple[str, ...] = (
    "Li",
    "Be",
    "B",
    "C",
    "N",
    "O",
    "F",
    "Na",
    "Mg",
    "Al",
    "Si",
    "P",
    "S",
    "Cl",
    "K",
    "Ca",
    "Sc",
    "Ti",
    "V",
    "Cr",
    "Mn",
    "Fe",
    "Co",
    "Ni",
    "Cu",
    "Zn",
    "Ga",
    "Ge",
    "As",
    "Se",
    "Br",
    "Rb",
    "Sr",
    "Y",
    "Zr",
    "Nb",
    "Mo",
    "Ru",
    "Rh",
    "Pd",
    "Ag",
    "Cd",
    "In",
    "Sn",
    "Sb",
    "Te",
    "I",
    "Cs",
    "Ba",
    "Hf",
    "Ta",
    "W",
    "Re",
    "Os",
    "Ir",
    "Pt",
    "Au",
    "Hg",
    "Tl",
    "Pb",
    "Bi",
)
#: Elemental prototypes skip the molecular gases and halogens (no dense phase to mimic).
ELEMENTAL_ELEMENTS = tuple(el for el in ELEMENTS if el not in ("N", "O", "F", "Cl", "Br", "I"))
LAYER_METALS = ("Ti", "Zr", "Hf", "V", "Nb", "Ta", "Mo", "W", "Sn", "Pt", "Pd", "Re")
CHALCOGENS = ("S", "Se", "Te")
PNICTOGENS = ("Bi", "Sb", "As", "In", "Tl")

#: Dataset DFT settings: coarse enough that a structure takes seconds to a minute on one core.
DATASET_SETTINGS = LcaoSettings(kdensity=1.2, grid_spacing=0.25, width_ev=0.1, maxiter=60)


def _radius(el: str) -> float:
    """Slater's empirical atomic radius (Å), at least 0.7 Å so no cell collapses."""
    from pymatgen.core import Element

    return max(float(Element(el).atomic_radius or 1.4), 0.7)


def _fcc(a: float) -> np.ndarray:
    return 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])


def _hex(a: float, c: float) -> np.ndarray:
    return np.array([[a, 0, 0], [-a / 2, a * math.sqrt(3) / 2, 0], [0, 0, c]])


def _prototype(name: str, els: tuple[str, ...]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(cell Å, species, fractional coordinates) of an ideal prototype."""
    r = [_radius(e) for e in els]
    if name == "fcc":
        return _fcc(2 * r[0] * math.sqrt(2)), [els[0]], np.zeros((1, 3))
    if name == "bcc":
        a = 2 * r[0] * 2 / math.sqrt(3)
        return 0.5 * a * np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]]), [els[0]], np.zeros((1, 3))
    if name == "hcp":
        a = 2 * r[0]
        return (
            _hex(a, a * math.sqrt(8 / 3)),
            [els[0]] * 2,
            np.array([[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]),
        )
    if name in ("diamond", "zincblende"):
        d = r[0] + r[-1]
        return _fcc(4 * d / math.sqrt(3)), [els[0], els[-1]], np.array([[0, 0, 0], [0.25] * 3])
    if name == "rocksalt":
        d = r[0] + r[1]
        return _fcc(2 * d), list(els), np.array([[0, 0, 0], [0.5] * 3])
    if name == "cscl":
        d = r[0] + r[1]
        return np.eye(3) * 2 * d / math.sqrt(3), list(els), np.array([[0, 0, 0], [0.5] * 3])
    if name == "wurtzite":
        d = r[0] + r[1]
        a = d * math.sqrt(8 / 3)
        frac = [
            [1 / 3, 2 / 3, 0],
            [2 / 3, 1 / 3, 0.5],
            [1 / 3, 2 / 3, 0.375],
            [2 / 3, 1 / 3, 0.875],
        ]
        return _hex(a, a * math.sqrt(8 / 3)), [els[0], els[0], els[1], els[1]], np.array(frac)
    if name in ("1T", "2H"):
        d = r[0] + r[1]
        a = d * 1.35  # in-plane constant over M-X bond as in MoS2, TiS2 (1.31-1.40)
        h = math.sqrt(max(d * d - a * a / 3, 0.5))  # X height above the M plane
        gap = 2 * r[1] + 0.8  # van der Waals gap between X planes
        if name == "1T":
            c = 2 * h + gap
            frac = [[0, 0, 0], [1 / 3, 2 / 3, h / c], [2 / 3, 1 / 3, -h / c]]
            return _hex(a, c), [els[0], els[1], els[1]], np.array(frac) % 1.0
        c = 2 * (2 * h + gap)
        z = h / c
        frac = [
            [1 / 3, 2 / 3, 0.25],
            [2 / 3, 1 / 3, 0.25 + z],
            [2 / 3, 1 / 3, 0.25 - z],
            [2 / 3, 1 / 3, 0.75],
            [1 / 3, 2 / 3, 0.75 + z],
            [1 / 3, 2 / 3, 0.75 - z],
        ]
        return _hex(a, c), [els[0], els[1], els[1]] * 2, np.array(frac)
    if name == "bi2se3":
        from pymatgen.core import Lattice, Structure

        scale = (r[0] + r[1]) / (1.48 + 1.20)  # Bi2Se3's own radii sum, hexagonal a = 4.14 Å
        hexs = Structure.from_spacegroup(
            166,
            Lattice.hexagonal(4.138 * scale, 28.64 * scale),
            [els[0], els[1], els[1]],
            [[0, 0, 0.4008], [0, 0, 0], [0, 0, 0.2117]],
        )
        prim = hexs.get_primitive_structure()
        return prim.lattice.matrix, [s.specie.symbol for s in prim], prim.frac_coords
    raise ValueError(f"unknown prototype {name}")


ELEMENTAL = ("fcc", "bcc", "hcp", "diamond")
BINARY = ("zincblende", "rocksalt", "cscl", "wurtzite", "1T", "2H", "bi2se3")


@dataclass(frozen=True)
class DatasetItem:
    index: int
    prototype: str
    elements: tuple[str, ...]

    @property
    def source_id(self) -> str:
        return f"{self.index:06d}-{self.prototype}-{'-'.join(self.elements)}"


def _pools(elements: tuple[str, ...] | None) -> dict[str, tuple[str, ...]]:
    """Element pools of each prototype family, restricted to `elements` when given (a focused
    dataset: many strained variants of few chemistries, which the model can learn per element)."""
    pools = {
        "elemental": ELEMENTAL_ELEMENTS,
        "any": ELEMENTS,
        "layer": LAYER_METALS,
        "chalcogen": CHALCOGENS,
        "pnictogen": PNICTOGENS,
    }
    if elements is None:
        return pools
    unknown = sorted(set(elements) - set(ELEMENTS))
    if unknown:
        raise InputError(
            f"dataset elements {', '.join(unknown)}: not in the dataset's element list "
            f"(elements up to Bi without f shells and noble gases)"
        )
    return {key: tuple(el for el in pool if el in elements) for key, pool in pools.items()}


def item(
    index: int, seed: int = 0, elements: tuple[str, ...] | None = None
) -> tuple[DatasetItem, Structure]:
    """Structure number `index` of the dataset with this seed (deterministic), drawn from
    `elements` only when given."""
    from pymatgen.core import Lattice, Structure

    pools = _pools(elements)
    binary = [
        proto
        for proto in BINARY
        if (proto not in ("1T", "2H") or (pools["layer"] and pools["chalcogen"]))
        and (proto != "bi2se3" or (pools["pnictogen"] and pools["chalcogen"]))
        and len(pools["any"]) >= 2
    ]
    rng = np.random.default_rng([seed, index])
    if rng.random() < 0.4 or not binary:
        if not pools["elemental"]:
            raise InputError("dataset elements: none of them forms an elemental prototype")
        proto = str(rng.choice(ELEMENTAL))
        els: tuple[str, ...] = (str(rng.choice(pools["elemental"])),)
    else:
        proto = str(rng.choice(binary))
        if proto in ("1T", "2H"):
            els = (str(rng.choice(pools["layer"])), str(rng.choice(pools["chalcogen"])))
        elif proto == "bi2se3":
            els = (str(rng.choice(pools["pnictogen"])), str(rng.choice(pools["chalcogen"])))
        else:
            a, b = rng.choice(pools["any"], size=2, replace=False)
            els = (str(a), str(b))
    cell, species, frac = _prototype(proto, els)
    eps = rng.uniform(-STRAIN, STRAIN, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    cell = cell @ (np.eye(3) + eps)
    cart = frac @ cell + rng.normal(scale=DISPLACEMENT_ANGSTROM, size=(len(species), 3))
    structure = Structure(Lattice(cell), species, cart, coords_are_cartesian=True)
    return DatasetItem(index, proto, els), structure


def source_name(seed: int, elements: tuple[str, ...] | None = None) -> str:
    """The `source` of a dataset's structures: seed and element restriction (they change
    which structure an index stands for, so each combination is its own source)."""
    suffix = f":{','.join(sorted(elements))}" if elements else ""
    return f"{SOURCE}:seed{seed}{suffix}"


def add_structures(
    project: Project, n: int, seed: int = 0, elements: tuple[str, ...] | None = None
) -> list[int]:
    """Insert dataset structures 0..n−1 (known ones are found by source id); their ids."""
    from hamdb.db.engine import make_engine, session_scope
    from hamdb.io.structure_ingest import find_or_add_structure

    ids = []
    engine = make_engine(project.database_url)
    for i in range(n):
        meta, structure = item(i, seed, elements)
        try:
            with session_scope(engine) as session:
                sid, _ = find_or_add_structure(
                    session, structure, source_name(seed, elements), meta.source_id
                )
        except InputError:  # a generated cell ingest refuses (degenerate): not a data point
            continue
        ids.append(sid)
    return ids


def build(
    project: Project,
    n: int,
    *,
    seed: int = 0,
    settings: LcaoSettings = DATASET_SETTINGS,
    workers: int = 1,
    check: bool = True,
    elements: tuple[str, ...] | None = None,
    on_outcome: Callable[[RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Add n structures and run the DFT for those without a finished run (resumable); with
    `check`, each is compared with GPAW's own eigenvalues off the mesh (a few % more time)."""
    from hamdb.dft.runner import run_many, select_structures

    ids = add_structures(project, n, seed, elements)
    todo = set(select_structures(project, pending=True, method=settings.method))
    order = [i for i in dict.fromkeys(ids) if i in todo]
    return run_many(project, order, settings, check=check, workers=workers, on_outcome=on_outcome)


def stats(project: Project) -> dict[str, Any]:
    """Counts of DFT Hamiltonians per spin kind, per element and per element pair, and runs."""
    from sqlalchemy import func, select

    from hamdb.db.engine import make_engine
    from hamdb.db.models import DftRunRow, HamiltonianRow, StructureRow

    engine = make_engine(project.database_url)
    with engine.connect() as conn:
        spin = dict(
            conn.execute(
                select(HamiltonianRow.spin, func.count())
                .where(HamiltonianRow.kind == "dft")
                .group_by(HamiltonianRow.spin)
            ).all()
        )
        runs = dict(
            conn.execute(select(DftRunRow.status, func.count()).group_by(DftRunRow.status)).all()
        )
        rows = conn.execute(
            select(StructureRow.elements, StructureRow.n_sites)
            .join(HamiltonianRow, HamiltonianRow.structure_id == StructureRow.id)
            .where(HamiltonianRow.kind == "dft", HamiltonianRow.spin == "soc")
        ).all()
    per_element: Counter[str] = Counter()
    per_pair: Counter[str] = Counter()
    sites: Counter[int] = Counter()
    for elements, n_sites in rows:
        els = sorted(set(elements))
        per_element.update(els)
        per_pair["-".join(els)] += 1
        sites[int(n_sites)] += 1
    return {
        "structures_with_dft": len(rows),
        "hamiltonians_per_spin": {str(k): int(v) for k, v in spin.items()},
        "runs": {str(k): int(v) for k, v in runs.items()},
        "per_element": dict(sorted(per_element.items())),
        "per_pair": dict(per_pair.most_common()),
        "per_n_sites": dict(sorted(sites.items())),
    }
