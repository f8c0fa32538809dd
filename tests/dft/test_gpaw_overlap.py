"""The exact overlap evaluated from GPAW's two-centre tables against GPAW evaluating them itself."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gpaw")

from pymatgen.core import Lattice, Structure

from hamdb.dft import gpaw_overlap
from hamdb.dft.gpaw_lcao import (
    LcaoSettings,
    _atoms,
    _blocks,
    _full_zone,
    _gpaw_calculator,
    _KMatrices,
    _layout,
    _wrap_shifts,
)

pytestmark = pytest.mark.gpaw


def skewed_pbs() -> Structure:
    """Pb and S off the origin in a skewed cell, S one lattice vector outside the cell."""
    lattice = Lattice.from_parameters(3.1, 3.3, 4.2, 101.0, 94.0, 97.0)
    return Structure(lattice, ["Pb", "S"], [[0.03, 0.86, 0.04], [0.54, -0.07, 0.82]])


def gpaw_full_zone_overlap(structure: Structure, settings: LcaoSettings) -> tuple:
    """(edges, s) from GPAW's own k-space S(k) (its `ManyTCICalculator`) on a mesh large enough
    for the basis, transformed back to S(R): the path a DFT run takes, no SCF needed."""
    atoms = _atoms(structure)
    calc = _gpaw_calculator(settings, (1, 1, 1))
    calc.initialize(atoms)
    calc.set_positions(atoms)
    spos = calc.wfs.spos_ac.copy()
    basis, slices, pairs, mesh = _layout(structure, calc, settings, spos)
    _, acc_s = _full_zone(_KMatrices(calc, None), mesh, pairs, slices)
    shifts = _wrap_shifts(structure, spos)
    _, _, blocks = _blocks(structure, basis, slices, pairs, {}, acc_s, shifts)
    keys = sorted(blocks, key=lambda k: (k[0], k[1], *k[2]))
    edges = np.array([(i, j, *R) for i, j, R in keys])
    return edges, np.concatenate([blocks[k].ravel() for k in keys])


def test_table_evaluation_equals_gpaws_own_per_displacement() -> None:
    """All displacements at once give what GPAW's C routine gives one at a time, including far
    ones where GPAW drops radial terms below 1e-10 (r^l makes those worth ~1e-7)."""
    from gpaw.lcao.overlap import (
        FourierTransformer,
        LazySphericalHarmonics,
        TwoSiteOverlapCalculator,
    )

    pb = gpaw_overlap.element_data("Pb", "dzp", "PBE", 0.2)
    s = gpaw_overlap.element_data("S", "dzp", "PBE", 0.2)
    radius = gpaw_overlap._fourier_radius([pb, s])
    setup_pb = gpaw_overlap._setup("Pb", "dzp", "PBE", 0.2)
    setup_s = gpaw_overlap._setup("S", "dzp", "PBE", 0.2)
    calc = TwoSiteOverlapCalculator(FourierTransformer(rcut=radius, N=2**10))
    cases = [
        ("phit", setup_pb.basis_functions_J, "S", setup_s.basis_functions_J),
        ("pt", setup_s.pt_j, "Pb", setup_pb.basis_functions_J),
    ]
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(40, 3)) * rng.uniform(0.0, 8.0, size=(40, 1))
    vectors[0] = 0.0  # on-site
    for kind, fa, b, fb in cases:
        a = "Pb" if fa is setup_pb.basis_functions_J else "S"
        la = [f.get_angular_momentum_number() for f in fa]
        lb = [f.get_angular_momentum_number() for f in fb]
        theirs = calc.calculate_expansions(la, calc.transform(fa), lb, calc.transform(fb))
        expected = np.array(
            [theirs.evaluate(np.linalg.norm(v), LazySphericalHarmonics(v)) for v in vectors]
        )
        ours = gpaw_overlap.evaluate(
            gpaw_overlap.pair_table(a, kind, b, radius, "dzp", "PBE", 0.2), vectors
        )
        assert np.abs(ours - expected).max() < 1e-13


def test_overlap_equals_gpaws_k_space_overlap_on_the_same_edges() -> None:
    settings = LcaoSettings()
    structure = skewed_pbs()
    edges, expected = gpaw_full_zone_overlap(structure, settings)
    overlap = gpaw_overlap.exact_overlap(structure)
    assert np.array_equal(overlap.edges, edges)
    assert np.abs(overlap.s - expected).max() < 1e-10
    assert overlap.basis.name == "gpaw-dzp"


def test_tables_depend_on_the_element_set_so_the_cache_keys_on_it() -> None:
    """GPAW's Fourier grid grows with the largest cut-off in the cell, and its Pb–S tables with
    it (~1e-6 at bond lengths with Ba beside them, more below 1 Å): the same PbS cell must not
    reuse a table built for a cell with Ba, and does not (the key holds the grid radius)."""
    structure = skewed_pbs()
    alone = gpaw_overlap.exact_overlap(structure)
    radius = {
        key: gpaw_overlap._fourier_radius(
            [gpaw_overlap.element_data(el, "dzp", "PBE", 0.2) for el in elements]
        )
        for key, elements in (("PbS", ("Pb", "S")), ("BaPbS", ("Ba", "Pb", "S")))
    }
    bonds = np.array([[1.2, 1.6, 0.0], [1.8, 2.4, 0.0], [0.0, 2.4, 3.2]])  # 2-4 Bohr
    tables = {
        key: gpaw_overlap.evaluate(
            gpaw_overlap.pair_table("Pb", "pt", "S", r, "dzp", "PBE", 0.2), bonds
        )
        for key, r in radius.items()
    }
    assert np.abs(tables["PbS"] - tables["BaPbS"]).max() > 1e-6
    again = gpaw_overlap.exact_overlap(structure)
    assert np.array_equal(again.s, alone.s)


_MEMORY_CACHES = (
    gpaw_overlap.element_data,
    gpaw_overlap.pair_table,
    gpaw_overlap._transforms,
    gpaw_overlap._setup,
)


def _clear_memory_caches() -> None:
    for f in _MEMORY_CACHES:
        f.cache_clear()


def test_disk_cache_gives_bitwise_the_same_overlap(tmp_path, monkeypatch) -> None:
    """A process with an empty memory cache reads GPAW's tables from disk instead of building
    them (no setup, no Fourier transform) and gets S bitwise equal to the uncached path."""
    structure = skewed_pbs()
    monkeypatch.setenv("HAMDB_CACHE_DIR", "off")
    _clear_memory_caches()
    uncached = gpaw_overlap.exact_overlap(structure)
    assert gpaw_overlap.disk_cache_dir() is None

    monkeypatch.setenv("HAMDB_CACHE_DIR", str(tmp_path))
    _clear_memory_caches()
    first = gpaw_overlap.exact_overlap(structure)  # builds and writes the entries
    folder = tmp_path / "gpaw-overlap"
    entries = sorted(p.name for p in folder.iterdir())
    assert [n for n in entries if n.startswith(".")] == []  # no temporary file left
    assert sum(n.startswith("element-") for n in entries) == 2
    assert sum(n.startswith("pair-") for n in entries) >= 4

    _clear_memory_caches()

    def no_gpaw(*args, **kwargs):
        raise AssertionError("built from GPAW despite the disk cache")

    monkeypatch.setattr(gpaw_overlap, "_setup", no_gpaw)
    monkeypatch.setattr(gpaw_overlap, "_build_pair_table", no_gpaw)
    from_disk = gpaw_overlap.exact_overlap(structure)
    for out in (first, from_disk):
        assert np.array_equal(out.edges, uncached.edges)
        assert np.array_equal(out.s_offsets, uncached.s_offsets)
        assert out.s.tobytes() == uncached.s.tobytes()
    _clear_memory_caches()


def test_damaged_disk_entry_is_rebuilt(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HAMDB_CACHE_DIR", str(tmp_path))
    _clear_memory_caches()
    structure = skewed_pbs()
    first = gpaw_overlap.exact_overlap(structure)
    for path in (tmp_path / "gpaw-overlap").iterdir():
        path.write_bytes(b"not a pickle")
    _clear_memory_caches()
    again = gpaw_overlap.exact_overlap(structure)
    assert again.s.tobytes() == first.s.tobytes()
    _clear_memory_caches()
