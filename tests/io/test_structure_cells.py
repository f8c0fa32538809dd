"""Crystals as arrays: the JSON dict is pymatgen's, distances and minima are exact, and the
primitive cell is pymatgen's (the same structure, the same size)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from monty.json import MontyEncoder
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifParser
from pymatgen.io.vasp import Poscar

from hamdb.io.structure_cells import (
    Cell,
    cell_from_dict,
    closest_pair,
    minima_basis,
    plain_crystal,
    primitive_cell,
    structure_dict,
    structure_json,
    to_json,
)
from hamdb.io.structure_identity import symmetry_of
from hamdb.io.structure_samples import copy_of, prototype_structures, random_crystal


def assert_same_content(ours, theirs, path="") -> None:
    """Equal keys, types and values; floats to 1e-12 relative (frac · lattice by numpy)."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and ours.keys() == theirs.keys(), path
        for key in theirs:
            assert_same_content(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, list | tuple):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), path
        for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same_content(a, b, f"{path}[{k}]")
    elif isinstance(theirs, np.ndarray):  # e.g. POSCAR selective dynamics
        assert isinstance(ours, np.ndarray) and np.array_equal(ours, theirs), path
    elif isinstance(theirs, float):
        assert type(ours) is float and ours == pytest.approx(theirs, rel=1e-12, abs=1e-12), path
    else:
        assert type(ours) is type(theirs) and ours == theirs, path


def samples() -> list[Structure]:
    rng = np.random.default_rng(4)
    out = list(prototype_structures().values())  # these carry structure properties
    out += [random_crystal(rng, int(rng.integers(1, 30)), ["Na", "Cl", "Bi"]) for _ in range(10)]
    out += [copy_of(s, rng) for s in out[:8]]
    bi2se3 = prototype_structures()["Bi2Se3"]
    out.append(CifParser.from_str(bi2se3.to(fmt="cif")).parse_structures(primitive=False)[0])
    poscar = Poscar(bi2se3, selective_dynamics=[[True, False, True]] * len(bi2se3))
    out.append(Poscar.from_str(poscar.get_str()).structure)  # site properties
    charged = Structure(bi2se3.lattice, bi2se3.species, bi2se3.frac_coords, charge=0)
    out.append(charged)
    return out


def test_structure_dict_is_as_dict():
    for structure in samples():
        plain = plain_crystal(structure)
        assert plain is not None
        ours = structure_dict(plain)
        assert_same_content(ours, structure.as_dict())
        text = json.dumps(ours, cls=MontyEncoder)
        assert_same_content(
            json.loads(text), json.loads(json.dumps(structure.as_dict(), cls=MontyEncoder))
        )
        back = cell_from_dict(json.loads(text))
        assert back is not None
        assert np.array_equal(back.frac, plain.cell.frac)
        assert np.array_equal(back.numbers, plain.cell.numbers)


def test_structures_with_oxidation_states_or_disorder_are_not_plain():
    bi2se3 = prototype_structures()["Bi2Se3"]
    with_oxidation = bi2se3.copy()
    with_oxidation.add_oxidation_state_by_element({"Bi": 3, "Se": -2})
    assert plain_crystal(with_oxidation) is None
    assert cell_from_dict(with_oxidation.as_dict()) is None
    disordered = bi2se3.copy()
    disordered.replace(0, {"Bi": 0.5, "Sb": 0.5})
    assert plain_crystal(disordered) is None


def test_closest_pair_matches_pymatgen_with_images():
    rng = np.random.default_rng(1)
    cells = []
    for _ in range(30):
        lattice = Lattice.from_parameters(*rng.uniform(2.0, 9.0, 3), *rng.uniform(60, 120, 3))
        n = int(rng.integers(1, 12))
        if lattice.volume < n:  # validation refuses degenerate cells before distances
            continue
        cells.append(Structure(lattice, ["Na"] * n, rng.random((n, 3))))
    thin = Lattice.from_parameters(0.9, 6.0, 7.0, 90, 90, 60)  # an atom near its own image
    cells.append(Structure(thin, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
    big = random_crystal(rng, 300, ["Na", "Cl"])  # more rows than one chunk
    cells.append(big)
    for structure in cells:
        cell = Cell(structure.lattice.matrix, structure.frac_coords, np.zeros(len(structure)))
        for cutoff in (0.5, 1.5, 3.0):
            found = closest_pair(cell, cutoff)
            _, _, _, distances = structure.get_neighbor_list(cutoff, exclude_self=True)
            if len(distances) == 0:
                assert found is None
            else:
                assert found is not None and found[2] == pytest.approx(distances.min(), abs=1e-9)
                i, j, _ = found
                assert structure.get_distance(i, j) <= found[2] + 1e-9 or i == j


def test_minima_detect_tied_bases():
    protos = prototype_structures()
    for name in ("NaCl", "Cu", "GaN", "Bi2Se3"):  # cubic, hexagonal, rhombohedral
        assert minima_basis(protos[name].lattice.matrix).tied
    rng = np.random.default_rng(0)
    assert not minima_basis(random_crystal(rng, 5, ["Na"]).lattice.matrix).tied


def test_primitive_cell_is_pymatgens():
    rng = np.random.default_rng(3)
    matcher = StructureMatcher(primitive_cell=False, scale=False, ltol=0.02, stol=0.05)
    for base in (*list(prototype_structures().values())[:12], random_crystal(rng, 6, ["Na", "Cl"])):
        for supercell in ((1, 1, 1), (2, 1, 1), (1, 2, 2)):
            structure = copy_of(base * supercell, rng)
            plain = plain_crystal(structure)
            symmetry = symmetry_of(plain.cell)
            ours = primitive_cell(plain.cell, symmetry.linear, symmetry.n_primitive)
            assert ours is not None
            theirs = structure.get_primitive_structure()
            assert len(ours) == len(theirs)
            mine = Structure(ours.lattice, ours.numbers.tolist(), ours.frac)
            assert abs(mine.volume - theirs.volume) < 1e-6 * theirs.volume
            assert matcher.fit(mine, theirs)


def test_structure_json_is_the_dicts_json():
    for structure in samples():
        plain = plain_crystal(structure)
        if plain is None:
            continue
        assert json.loads(structure_json(plain)) == json.loads(to_json(structure_dict(plain)))


def test_plain_crystals_pickle_to_the_same_content():
    """What ingest sends its workers: labels, occupancy types and site properties kept."""
    import pickle

    for structure in samples():
        plain = plain_crystal(structure)
        if plain is None:
            continue
        back = pickle.loads(pickle.dumps(plain))
        assert structure_json(back) == structure_json(plain)
        assert [type(o) for o in back.occupancies] == [type(o) for o in plain.occupancies]
        assert back.labels == plain.labels and back.pbc == plain.pbc
        assert_same_content(back.site_properties, plain.site_properties)
