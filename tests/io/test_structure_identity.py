"""The identity checks (filters, numpy verdicts, cached StructureMatcher fits) agree with
pymatgen's public StructureMatcher.fit."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher

from hamdb.io.structure_cells import minima_basis, plain_crystal
from hamdb.io.structure_identity import (
    LOOSE,
    SAME_MATERIAL,
    SAME_STRUCTURE,
    TIGHT,
    Block,
    Crystal,
    Matcher,
    _fits,
    symmetry_of,
)
from hamdb.io.structure_samples import copy_of, prototype_structures, random_crystal, strained


def pairs():
    rng = np.random.default_rng(7)
    protos = prototype_structures()
    low = random_crystal(rng, 9, ["Bi", "Se", "Te"])
    out = []
    for base in (protos["Bi2Se3"], protos["GaAs"], protos["Al2O3"], low):
        out.append((base, copy_of(base, rng)))
        out.append((base, base * (1, 2, 1)))
        for fraction in (0.01, 0.018, 0.022, 0.03, 0.08, 0.25):
            out.append((base, strained(base, fraction)))
        for strain in (
            [0.019, 0, 0],
            [-0.019, 0, 0],
            [0.021, -0.01, 0],
            [0.15, -0.1, 0.05],
            [0.19, 0, 0],
            [-0.17, 0, 0],
            [0.22, 0, 0],
            [-0.2, 0.1, 0],
        ):
            variant = base.copy()
            variant.apply_strain(strain)
            out.append((base, variant))
            out.append((variant, base))
        sheared = base.copy()
        sheared.apply_strain([0.06, -0.04, 0.0])
        out.append((base, sheared))
        squashed = base.copy()
        squashed.apply_strain([0.35, -0.2, 0.0])
        out.append((base, squashed))
        jiggled = base.copy()
        jiggled.perturb(0.08)
        out.append((base, jiggled))
    return out


def crystal(structure):
    """A Crystal as ingest makes one (arrays for a plain structure)."""
    plain = plain_crystal(structure)
    return Crystal(plain.cell) if plain is not None else Crystal(None, structure=structure)


@pytest.mark.parametrize("tolerances", [SAME_STRUCTURE, SAME_MATERIAL], ids=["tight", "mp"])
def test_cached_fit_equals_public_fit(tolerances):
    reference = StructureMatcher(**tolerances)
    matcher = Matcher()
    ours = matcher._reference(TIGHT if tolerances is SAME_STRUCTURE else LOOSE)
    outcomes = []
    for one, other in pairs():
        a, b = Crystal(None, structure=one), Crystal(None, structure=other)
        if tolerances is SAME_STRUCTURE:
            fast = _fits(ours, a.reduced(), b.reduced())
        else:
            fast = _fits(ours, a.normalized(), b.normalized())
        expected = reference.fit(one, other)
        assert fast == expected, (one.formula, tolerances)
        outcomes.append(expected)
    assert any(outcomes) and not all(outcomes)  # the pairs exercise both answers


def test_prefilters_never_hide_a_public_match():
    """Every pair the public fit calls equal also passes Matcher.match (filters included)."""
    reference_tight = StructureMatcher(**SAME_STRUCTURE)
    reference_loose = StructureMatcher(**SAME_MATERIAL)
    for one, other in pairs():
        if symmetry_of(one).number != symmetry_of(other).number:
            continue  # another block: never compared, by design
        block = Block()
        block.add(crystal(one), "stored", founder=True)
        matcher = Matcher()
        found = matcher.match(crystal(other), block)
        if reference_tight.fit(one, other):
            assert found.same == "stored"
        elif reference_loose.fit(one, other):
            assert found.material == "stored" or found.same == "stored"
        else:
            assert found.same is None and found.material is None


def test_numpy_verdicts_spare_most_fits():
    """Over the same pairs (many chosen at the tolerances' edges, where the numpy verdict
    leaves the decision to StructureMatcher), most are decided without it."""
    matcher = Matcher()
    for one, other in pairs():
        if symmetry_of(one).number == symmetry_of(other).number:
            block = Block()
            block.add(crystal(one), "stored", founder=True)
            matcher.match(crystal(other), block)
    assert matcher.compared > 60 and matcher.fits < matcher.compared / 3


def test_a_crystal_survives_pickling_without_pymatgen_objects():
    import pickle

    original = crystal(prototype_structures()["Bi2Se3"])
    original.prepare()
    copy = pickle.loads(pickle.dumps(original))
    assert copy._structure is None and copy.n_primitive == original.n_primitive
    assert np.allclose(copy.lengths, original.lengths)
    assert Matcher().same(original, copy, TIGHT)


def test_successive_minima_are_the_niggli_lengths():
    from pymatgen.core import Lattice

    rng = np.random.default_rng(2)
    for _ in range(200):
        reduced = Lattice.from_parameters(*rng.uniform(2, 12, 3), *rng.uniform(60, 120, 3))
        # An awkward basis of the same lattice: a random unimodular change of basis.
        change = np.eye(3, dtype=int)
        for _ in range(6):
            i, j = rng.choice(3, 2, replace=False)
            change[i] += int(rng.integers(-2, 3)) * change[j]
        skewed = change @ reduced.matrix
        expected = sorted(Lattice(skewed).get_niggli_reduced_lattice().abc)
        minima = minima_basis(skewed)
        assert np.allclose(minima.lengths, expected, rtol=1e-9)
        assert round(abs(np.linalg.det(minima.transform))) == 1
        assert np.allclose(np.linalg.norm(minima.transform @ skewed, axis=1), minima.lengths)


def test_a_pickled_crystal_gives_the_same_verdicts():
    """What a worker sends (an analysed crystal, packed) matches as the original does."""
    import pickle

    for one, other in pairs():
        crystals = []
        for structure in (one, other):
            crystal = Crystal(plain_crystal(structure).cell)
            crystal.prepare()
            crystal.match_cell()
            crystals.append(crystal)
        copies = [pickle.loads(pickle.dumps(c)) for c in crystals]
        for original, copy in zip(crystals, copies, strict=True):
            assert copy.n_primitive == original.n_primitive
            assert np.array_equal(copy.lengths, original.lengths)
        for tolerances in (TIGHT, LOOSE):
            assert Matcher().same(*copies, tolerances) == Matcher().same(*crystals, tolerances)
