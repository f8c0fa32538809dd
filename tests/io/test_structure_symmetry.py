"""The symmetry search never hangs: moyopy's endless loop on a strained Bi2Se3 cell ends in
spglib's answer (helper process) or, in ingest's workers, in spglib's answer or a one-line
failure, and the other structures go in."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pymatgen.core import Structure

from hamdb.io import structure_symmetry
from hamdb.io.structure_cells import plain_crystal, primitive_cell
from hamdb.io.structure_ingest import ingest
from hamdb.io.structure_prepare import Prepared
from hamdb.io.structure_samples import prototype_structures, random_crystal
from hamdb.io.structure_symmetry import search, stop_helper, symmetry_of
from hamdb.io.structure_workers import Pipeline
from hamdb.io.structures import ReadFailure


def hanging_cell() -> Structure:
    """Bi2Se3's rhombohedral primitive cell strained by (-28 %, -28 %, +20 %) along its
    lattice vectors: moyopy 0.21 loops forever on it at symprec 0.1 Å / 5° (found by a
    scan of the strains of bench/ingest.py --block)."""
    structure = prototype_structures()["Bi2Se3"]
    structure.apply_strain([-0.28, -0.28, 0.2])
    return structure


@pytest.fixture
def short_timeout(monkeypatch):
    """A 1 s search timeout, with a helper process started under it (and ended after)."""
    monkeypatch.setattr(structure_symmetry, "SYMMETRY_TIMEOUT_S", 1.0)
    stop_helper()
    yield 1.0
    stop_helper()


def test_spglib_agrees_with_moyopy_on_ordinary_cells():
    rng = np.random.default_rng(0)
    protos = prototype_structures()
    samples = [protos[n] * (1, 2, 1) for n in ("NaCl", "GaAs", "Bi2Se3", "Al2O3", "Mg")]
    samples += [random_crystal(rng, 7, ["Na", "Cl"])]
    for structure in samples:
        cell = plain_crystal(structure).cell
        ours = search(cell.lattice, cell.frac, cell.numbers.tolist(), "spglib")
        theirs = search(cell.lattice, cell.frac, cell.numbers.tolist(), "moyopy")
        assert (ours.number, ours.n_primitive) == (theirs.number, theirs.n_primitive)
        # Another primitive basis maybe, the same lattice: the same primitive cell volume.
        volume = abs(np.linalg.det(ours.primitive_lattice(cell.lattice)))
        assert volume == pytest.approx(abs(np.linalg.det(theirs.primitive_lattice(cell.lattice))))
        assert primitive_cell(cell, ours.linear, ours.n_primitive) is not None


def test_a_hanging_search_falls_back_to_spglib(short_timeout):
    start = time.perf_counter()
    found = symmetry_of(plain_crystal(hanging_cell()).cell)
    assert time.perf_counter() - start < 20
    assert (found.number, found.n_primitive) == (12, 5)  # C2/m, as spglib says
    # The helper was replaced and still works.
    assert symmetry_of(prototype_structures()["NaCl"]).number == 225


@pytest.mark.parametrize("workers", [1, 2])
def test_ingest_survives_the_hanging_cell(session, short_timeout, workers):
    """In one process (a batch of searches in the helper) and with a worker process."""
    rng = np.random.default_rng(1)
    items = [(random_crystal(rng, 4, ["Na", "Cl"]), "mixed", str(k)) for k in range(40)]
    items.insert(17, (hanging_cell(), "mixed", "hang"))
    start = time.perf_counter()
    report = ingest(session, items, workers=workers, batch_size=10)
    assert time.perf_counter() - start < 60
    assert report.failed == 0 and report.inserted == 41


def test_a_structure_that_kills_its_worker_twice_is_a_one_line_failure():
    big = prototype_structures()["NaCl"] * (10, 10, 20)  # 4000 atoms: ~1 s per search
    units = [
        ((big, "mixed", "big"), frozenset()),
        ((prototype_structures()["NaCl"], "mixed", "NaCl"), frozenset()),
        ((hanging_cell(), "mixed", "hang"), frozenset()),
    ]
    with Pipeline(1, analyse=True, seconds=0.1) as pipeline:
        results = [out for out, _, _ in pipeline.map(units)]
        assert pipeline.restarts == 3  # big: moyopy, spglib; hang: moyopy
    (failure,), (nacl,), (hang,) = results
    assert isinstance(failure, ReadFailure) and failure.source_id == "big"
    assert str(failure).endswith(
        "symmetry search did not finish within 0.1 s (moyopy, then spglib); not ingested"
    )
    assert isinstance(nacl, Prepared) and nacl.spacegroup_number == 225
    assert isinstance(hang, Prepared) and hang.spacegroup_number == 12
