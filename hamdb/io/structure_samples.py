"""Crystal structures generated in code, for the demo, the tests and bench/ingest.py.

`prototype_structures()` builds a few dozen real crystals from their space group and Wyckoff
positions with experimental lattice constants (Å, rounded; textbook values, e.g. from the
Materials Project / ICSD entries of the same compounds), among them the topological insulators
Bi2Se3, Bi2Te3 and Sb2Te3. `copy_of` and `strained` make the variants that the identity rules
of DESIGN.md §4 must recognise; `mixed_stream` yields a reproducible mix of new crystals,
copies and strained variants for benchmarks.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pymatgen.core import Structure

# (name, space group, lattice kind, lattice parameters, species, fractional coordinates)
_PROTOTYPES: list[tuple[str, int, str, tuple[float, ...], list[str], list[list[float]]]] = [
    ("NaCl", 225, "cubic", (5.64,), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    ("KCl", 225, "cubic", (6.29,), ["K", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    ("MgO", 225, "cubic", (4.21,), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    ("PbTe", 225, "cubic", (6.46,), ["Pb", "Te"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    ("SnTe", 225, "cubic", (6.32,), ["Sn", "Te"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    ("Si", 227, "cubic", (5.43,), ["Si"], [[0, 0, 0]]),
    ("Ge", 227, "cubic", (5.66,), ["Ge"], [[0, 0, 0]]),
    ("C", 227, "cubic", (3.57,), ["C"], [[0, 0, 0]]),
    ("alpha-Sn", 227, "cubic", (6.49,), ["Sn"], [[0, 0, 0]]),
    ("GaAs", 216, "cubic", (5.65,), ["Ga", "As"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    ("InSb", 216, "cubic", (6.48,), ["In", "Sb"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    ("HgTe", 216, "cubic", (6.46,), ["Hg", "Te"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    ("CdTe", 216, "cubic", (6.48,), ["Cd", "Te"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    ("ZnS", 216, "cubic", (5.41,), ["Zn", "S"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    ("CaF2", 225, "cubic", (5.46,), ["Ca", "F"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    ("CsCl", 221, "cubic", (4.12,), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    (
        "SrTiO3",
        221,
        "cubic",
        (3.905,),
        ["Sr", "Ti", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]],
    ),
    (
        "BaTiO3",
        221,
        "cubic",
        (4.00,),
        ["Ba", "Ti", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]],
    ),
    ("Cu", 225, "cubic", (3.61,), ["Cu"], [[0, 0, 0]]),
    ("Al", 225, "cubic", (4.05,), ["Al"], [[0, 0, 0]]),
    ("W", 229, "cubic", (3.16,), ["W"], [[0, 0, 0]]),
    ("Fe", 229, "cubic", (2.87,), ["Fe"], [[0, 0, 0]]),
    (
        "GaN",
        186,
        "hexagonal",
        (3.19, 5.19),
        ["Ga", "N"],
        [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.377]],
    ),
    (
        "ZnO",
        186,
        "hexagonal",
        (3.25, 5.21),
        ["Zn", "O"],
        [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]],
    ),
    (
        "AlN",
        186,
        "hexagonal",
        (3.11, 4.98),
        ["Al", "N"],
        [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]],
    ),
    (
        "MoS2",
        194,
        "hexagonal",
        (3.16, 12.29),
        ["Mo", "S"],
        [[1 / 3, 2 / 3, 0.25], [1 / 3, 2 / 3, 0.621]],
    ),
    ("graphite", 194, "hexagonal", (2.46, 6.71), ["C", "C"], [[0, 0, 0.25], [1 / 3, 2 / 3, 0.25]]),
    ("Mg", 194, "hexagonal", (3.21, 5.21), ["Mg"], [[1 / 3, 2 / 3, 0.25]]),
    (
        "Bi2Se3",
        166,
        "hexagonal",
        (4.14, 28.64),
        ["Bi", "Se", "Se"],
        [[0, 0, 0.4008], [0, 0, 0], [0, 0, 0.2117]],
    ),
    (
        "Bi2Te3",
        166,
        "hexagonal",
        (4.38, 30.49),
        ["Bi", "Te", "Te"],
        [[0, 0, 0.4001], [0, 0, 0], [0, 0, 0.2095]],
    ),
    (
        "Sb2Te3",
        166,
        "hexagonal",
        (4.26, 30.45),
        ["Sb", "Te", "Te"],
        [[0, 0, 0.3988], [0, 0, 0], [0, 0, 0.2128]],
    ),
    ("Bi", 166, "hexagonal", (4.55, 11.86), ["Bi"], [[0, 0, 0.2339]]),
    ("TiO2-rutile", 136, "tetragonal", (4.59, 2.96), ["Ti", "O"], [[0, 0, 0], [0.3053, 0.3053, 0]]),
    ("SnO2", 136, "tetragonal", (4.74, 3.19), ["Sn", "O"], [[0, 0, 0], [0.3056, 0.3056, 0]]),
    ("Al2O3", 167, "hexagonal", (4.76, 12.99), ["Al", "O"], [[0, 0, 0.3523], [0.3064, 0, 0.25]]),
    (
        "SiO2-quartz",
        154,
        "hexagonal",
        (4.91, 5.40),
        ["Si", "O"],
        [[0.4697, 0, 0], [0.4135, 0.2669, 0.1191]],
    ),
]


def _cellpar(kind: str, params: tuple[float, ...]) -> list[float]:
    """[a, b, c, alpha, beta, gamma] (Å, degrees) of a cubic, hexagonal or tetragonal cell."""
    if kind == "cubic":
        return [params[0]] * 3 + [90.0] * 3
    if kind == "hexagonal":
        return [params[0], params[0], params[1], 90.0, 90.0, 120.0]
    return [params[0], params[0], params[1], 90.0, 90.0, 90.0]


def prototype_structures() -> dict[str, Structure]:
    """A few dozen real crystals by name, as primitive cells (Å); fresh copies each call."""
    return {name: structure.copy() for name, structure in _prototypes().items()}


@functools.cache
def _prototypes() -> dict[str, Structure]:
    """Built once with ASE's space-group tables (pymatgen's `from_spacegroup` takes ~1 s per
    space group)."""
    from ase.spacegroup import crystal
    from pymatgen.io.ase import AseAtomsAdaptor

    out = {}
    for name, group, kind, params, species, coords in _PROTOTYPES:
        atoms = crystal(species, coords, spacegroup=group, cellpar=_cellpar(kind, params))
        conventional = AseAtomsAdaptor.get_structure(atoms)
        for key in list(conventional.site_properties):  # ASE bookkeeping, not physics
            conventional.remove_site_property(key)
        out[name] = conventional.get_primitive_structure()
    return out


def copy_of(structure: Structure, rng: np.random.Generator) -> Structure:
    """The same crystal written differently: rotated, translated, sites permuted, and
    (sometimes) as a supercell. StructureMatcher at the tightest tolerances calls it equal."""
    from pymatgen.core import Structure
    from pymatgen.core.operations import SymmOp

    out = structure.copy()
    if rng.random() < 0.3 and len(out) <= 20:
        out = out * (2, 1, 1)
    axis = rng.normal(size=3)
    out.apply_operation(SymmOp.from_axis_angle_and_translation(axis, float(rng.uniform(0, 360))))
    out.translate_sites(range(len(out)), rng.random(3), frac_coords=True, to_unit_cell=True)
    order = rng.permutation(len(out))
    return Structure(out.lattice, [out[i].specie for i in order], out.frac_coords[order])


def strained(structure: Structure, fraction: float) -> Structure:
    """An isotropically strained copy (lengths × (1 + fraction)): the same space group and
    material, another structure once |fraction| exceeds the tight tolerance (2 %)."""
    out = structure.copy()
    out.scale_lattice(structure.volume * (1 + fraction) ** 3)
    return out


def random_crystal(rng: np.random.Generator, n_sites: int, elements: list[str]) -> Structure:
    """A random low-symmetry crystal of `n_sites` atoms (nearest distance ≥ 1.6 Å)."""
    from pymatgen.core import Lattice, Structure

    volume = 18.0 * n_sites
    a, b, c = rng.uniform(0.8, 1.25, 3) * volume ** (1 / 3)
    alpha, beta, gamma = rng.uniform(75, 105, 3)
    lattice = Lattice.from_parameters(a, b, c, alpha, beta, gamma)
    lattice = lattice.scale(volume)
    frac = np.empty((n_sites, 3))
    placed = 0
    while placed < n_sites:
        trial = rng.random(3)
        delta = frac[:placed] - trial
        delta -= np.round(delta)  # nearest image (approximate for skewed cells; fine here)
        if placed and np.min(np.linalg.norm(delta @ lattice.matrix, axis=1)) < 1.6:
            continue
        frac[placed] = trial
        placed += 1
    species = [elements[i % len(elements)] for i in range(n_sites)]
    return Structure(lattice, species, frac)


_ELEMENTS = [
    "Li",
    "Na",
    "K",
    "Mg",
    "Ca",
    "Sr",
    "Ba",
    "Ti",
    "Zr",
    "Nb",
    "Mo",
    "W",
    "Fe",
    "Co",
    "Ni",
    "Cu",
    "Zn",
    "Ga",
    "In",
    "Sn",
    "Pb",
    "Sb",
    "Bi",
    "O",
    "S",
    "Se",
    "Te",
    "N",
    "P",
    "As",
    "F",
    "Cl",
    "Br",
    "I",
]


def mixed_stream(
    n: int, seed: int = 0, *, duplicate_fraction: float = 0.2, strained_fraction: float = 0.2
) -> Iterator[tuple[Structure, str, str]]:
    """`n` (Structure, source, source_id) items, 2-40 atoms, mixed chemistries.

    About `duplicate_fraction` are copies (copy_of) of earlier items and `strained_fraction`
    strained variants (3-10 %) of earlier items; the rest are new random crystals or
    prototypes. Reproducible for a given seed.
    """
    rng = np.random.default_rng(seed)
    prototypes = list(prototype_structures().values())
    made: list[Structure] = []
    for k in range(n):
        roll = rng.random()
        if made and roll < duplicate_fraction:
            structure = copy_of(made[int(rng.integers(len(made)))], rng)
        elif made and roll < duplicate_fraction + strained_fraction:
            base = made[int(rng.integers(len(made)))]
            structure = strained(base, float(rng.uniform(0.03, 0.10) * rng.choice([-1, 1])))
        elif rng.random() < 0.05:
            structure = prototypes[int(rng.integers(len(prototypes)))].copy()
        else:
            n_sites = int(rng.integers(2, 41))
            n_el = int(rng.integers(1, 5))
            elements = list(rng.choice(_ELEMENTS, size=n_el, replace=False))
            structure = random_crystal(rng, n_sites, elements)
            made.append(structure)
        yield structure, f"generated:seed={seed}", str(k)


def write_demo_files(folder: Path) -> list[Path]:
    """Write the prototypes into `folder` in every supported format, for `hamdb ingest
    structures` demos: CIF, POSCAR, pymatgen JSON, extended XYZ, JSON-lines and a zip of CIFs,
    plus a rotated supercell copy of Bi2Se3 (the same structure: not inserted again) and
    Bi2Se3 and Bi2Te3 strained by ±3 % (new structures in the same material groups).
    Returns the paths written, sorted.
    """
    import json
    import zipfile

    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    protos = prototype_structures()
    names = sorted(protos)
    written: list[Path] = []
    for name in names[:12]:
        path = folder / f"{name}.cif"
        path.write_text(protos[name].to(fmt="cif"))
        written.append(path)
    for name in names[12:18]:
        path = folder / f"POSCAR_{name}"
        path.write_text(protos[name].to(fmt="poscar"))
        written.append(path)
    for name in names[18:22]:
        path = folder / f"{name}.json"
        path.write_text(json.dumps(protos[name].as_dict()))
        written.append(path)
    path = folder / "more.extxyz"
    write(path, [AseAtomsAdaptor.get_atoms(protos[n]) for n in names[22:26]], format="extxyz")
    written.append(path)
    path = folder / "more.jsonl"
    path.write_text("".join(json.dumps(protos[n].as_dict()) + "\n" for n in names[26:31]))
    written.append(path)
    path = folder / "gnome_like.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for n in names[31:]:
            archive.writestr(f"by_id/{n}.CIF", protos[n].to(fmt="cif"))
    written.append(path)
    variants = {
        "Bi2Se3_copy.json": copy_of(protos["Bi2Se3"] * (1, 1, 2), rng),
        "Bi2Se3_strained.json": strained(protos["Bi2Se3"], 0.03),
        "Bi2Te3_strained.json": strained(protos["Bi2Te3"], -0.03),
    }
    for file_name, structure in variants.items():
        path = folder / file_name
        path.write_text(json.dumps(structure.as_dict()))
        written.append(path)
    return sorted(written)
