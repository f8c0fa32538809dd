"""structure_compare agrees with pymatgen's StructureMatcher.fit wherever it gives a verdict,
and gives one for the common cases (copies, strained variants, other species)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from hamdb.io.structure_cells import plain_crystal
from hamdb.io.structure_compare import Tolerances, compare
from hamdb.io.structure_identity import LOOSE, SAME_MATERIAL, SAME_STRUCTURE, TIGHT, Crystal
from hamdb.io.structure_samples import copy_of, prototype_structures, random_crystal, strained

REFERENCE = {TIGHT: StructureMatcher(**SAME_STRUCTURE), LOOSE: StructureMatcher(**SAME_MATERIAL)}


def crystal(structure: Structure) -> Crystal:
    plain = plain_crystal(structure)
    assert plain is not None
    return Crystal(plain.cell)


def verdict(one: Structure, other: Structure, tolerances: Tolerances) -> bool | None:
    a, b = crystal(one).match_cell(), crystal(other).match_cell()
    assert a is not None and b is not None
    return compare(a, b, tolerances)


def same_block(one: Structure, other: Structure) -> bool:
    """What ingest compares: the same space group and primitive size (by moyopy)."""
    a, b = crystal(one).symmetry, crystal(other).symmetry
    return (a.number, a.n_primitive) == (b.number, b.n_primitive)


def bases(rng: np.random.Generator) -> list[Structure]:
    protos = prototype_structures()
    out = [protos[name] for name in ("Bi2Se3", "GaAs", "Al2O3", "Cu", "MoS2", "SiO2-quartz")]
    for n_sites, elements in ((9, ["Bi", "Se", "Te"]), (6, ["Na", "Cl"]), (12, ["Si"]), (3, ["O"])):
        out.append(random_crystal(rng, n_sites, elements))
    return out


def noised(structure: Structure, rng: np.random.Generator, amplitude: float) -> Structure:
    """Every atom moved by `amplitude` Å in a random direction."""
    out = structure.copy()
    shifts = rng.normal(size=(len(out), 3))
    shifts *= amplitude / np.linalg.norm(shifts, axis=1)[:, None]
    return Structure(out.lattice, out.species, out.cart_coords + shifts, coords_are_cartesian=True)


def variants(base: Structure, rng: np.random.Generator) -> list[tuple[str, Structure]]:
    sheared = base.copy()
    sheared.apply_strain(list(rng.uniform(-0.025, 0.025, 3)))
    return [
        ("copy", copy_of(base, rng)),
        ("supercell", copy_of(base * (1, 2, 1), rng)),
        ("noised", copy_of(noised(base, rng, 0.003), rng)),
        ("noised more", noised(base, rng, 0.05)),
        ("strained 8%", copy_of(strained(base, 0.08), rng)),
        ("strained -8%", strained(base, -0.08)),
        ("strained 1.5%", strained(base, 0.015)),
        ("sheared", copy_of(sheared, rng)),
        ("other crystal", random_crystal(rng, len(base), [str(s) for s in base.species])),
    ]


@pytest.mark.parametrize("seed", [0, 1])
def test_verdicts_agree_with_structure_matcher(seed):
    rng = np.random.default_rng(seed)
    outcomes: Counter[tuple[str, str, bool | None]] = Counter()
    for base in bases(rng):
        for kind, other in variants(base, rng):
            if not same_block(base, other):
                continue  # another block: never compared by ingest
            for tolerances, level in ((TIGHT, "tight"), (LOOSE, "loose")):
                fast = verdict(base, other, tolerances)
                if fast is not None:
                    expected = REFERENCE[tolerances].fit(base, other)
                    assert fast == expected, (kind, level, base.formula)
                outcomes[(kind, level, fast)] += 1
    # The common cases are decided without StructureMatcher.
    for kind in ("copy", "supercell", "noised"):
        assert outcomes[(kind, "tight", True)] >= 9, outcomes
    for kind in ("strained 8%", "strained -8%"):
        assert outcomes[(kind, "tight", False)] >= 8, outcomes
        assert outcomes[(kind, "loose", True)] >= 9, outcomes


def test_random_pairs_never_disagree():
    """Many random pairs of one composition (same block): every verdict is StructureMatcher's."""
    rng = np.random.default_rng(5)
    decided = 0
    for _ in range(40):
        n = int(rng.integers(2, 7))
        one = random_crystal(rng, n, ["Na", "Cl"])
        other = random_crystal(rng, n, ["Na", "Cl"])
        other.scale_lattice(one.volume * float(rng.uniform(0.9, 1.1)))
        if not same_block(one, other):
            continue
        for tolerances in (TIGHT, LOOSE):
            fast = verdict(one, other, tolerances)
            if fast is not None:
                decided += 1
                assert fast == REFERENCE[tolerances].fit(one, other)
    assert decided >= 40


def test_other_species_or_size_is_never_the_same():
    protos = prototype_structures()
    gaas, inas = protos["GaAs"], protos["GaAs"].copy()
    inas.replace_species({"Ga": "In"})
    for tolerances in (TIGHT, LOOSE):
        assert verdict(gaas, inas, tolerances) is False
    si = protos["Si"]
    ge_like = si.copy()
    ge_like.replace_species({"Si": "Ge"})
    assert verdict(si, ge_like, LOOSE) is False


def test_tied_lattices_decide_copies_and_isotropic_strain():
    """Cubic and hexagonal cells have several Niggli bases: copies are still decided (as
    near-isometries), and so are strains too large for any basis."""
    rng = np.random.default_rng(2)
    for name in ("NaCl", "GaN", "Cu", "Bi2Te3"):
        base = prototype_structures()[name]
        assert crystal(base).match_cell().tied
        assert verdict(base, copy_of(base, rng), TIGHT) is True
        assert verdict(base, strained(base, 0.08), TIGHT) is False
        assert verdict(base, strained(base, 0.08), LOOSE) is True


def test_strained_pairs_at_the_tight_boundary_never_disagree():
    """Pairs of anisotropic strains of one crystal a few percent apart, around ltol = 2 %:
    the lattice verdicts use the matcher's own windows (margins for rounding only)."""
    rng = np.random.default_rng(11)
    protos = prototype_structures()
    outcomes: Counter[bool | None] = Counter()
    for k in range(60):
        base = protos["Bi2Se3"] if k % 3 == 0 else random_crystal(rng, 6, ["Bi", "Se"])
        one = base.copy()
        one.apply_strain(list(rng.uniform(-0.1, 0.1, 3)))
        other = one.copy()
        other.apply_strain(list(rng.uniform(-0.025, 0.025, 3)))
        other = copy_of(other, rng)
        if not same_block(one, other):
            continue
        fast = verdict(one, other, TIGHT)
        if fast is not None:
            assert fast == REFERENCE[TIGHT].fit(one, other)
        outcomes[fast] += 1
    assert outcomes[True] >= 5 and outcomes[False] >= 20 and outcomes[None] <= 8, outcomes
