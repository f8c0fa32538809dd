"""The starter-dataset generator: deterministic, valid structures, resumable insertion, stats."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from hamdb.dft import dataset
from hamdb.errors import InputError
from hamdb.io.structures import validate_structure


def test_items_are_deterministic_and_vary_with_seed() -> None:
    a_meta, a = dataset.item(5, seed=0)
    b_meta, b = dataset.item(5, seed=0)
    c_meta, c = dataset.item(5, seed=1)
    assert a_meta == b_meta and np.array_equal(a.cart_coords, b.cart_coords)
    assert a_meta != c_meta or not np.allclose(a.cart_coords, c.cart_coords)


def test_generated_structures_are_valid_small_and_cover_every_prototype() -> None:
    seen: Counter[str] = Counter()
    for i in range(300):
        meta, s = dataset.item(i)
        seen[meta.prototype] += 1
        assert validate_structure(s) is None, (meta, validate_structure(s))
        assert len(s) <= 6
        assert {site.specie.symbol for site in s} <= set(dataset.ELEMENTS)
        d = s.distance_matrix + np.eye(len(s)) * 99
        assert d.min() > 1.0 or len(s) == 1
    assert set(seen) == set(dataset.ELEMENTAL) | set(dataset.BINARY)


def test_an_element_restriction_draws_only_those_elements_and_is_its_own_source() -> None:
    focused = ("Bi", "Se", "Te", "Si")
    seen: Counter[str] = Counter()
    for i in range(200):
        meta, s = dataset.item(i, elements=focused)
        seen[meta.prototype] += 1
        assert {site.specie.symbol for site in s} <= set(focused)
        assert validate_structure(s) is None, (meta, validate_structure(s))
    # no layer metal among them, so no 1T/2H; Bi2Se3-type (Bi + a chalcogen) is drawn
    assert "1T" not in seen and "2H" not in seen and seen["bi2se3"] > 0
    assert dataset.source_name(0, focused) != dataset.source_name(0)
    assert dataset.source_name(0, focused) == dataset.source_name(0, tuple(reversed(focused)))


def test_an_unknown_restriction_element_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="Xe"):
        dataset.item(0, elements=("Bi", "Xe"))


@pytest.mark.gpaw
def test_every_listed_element_has_a_gpaw_setup_and_basis() -> None:
    pytest.importorskip("gpaw")
    from hamdb.dft.gpaw_basis import gpaw_basis

    basis = gpaw_basis(dataset.ELEMENTS)
    assert basis.max_l <= 2  # no f shells: the element list avoids lanthanides


def test_adding_twice_finds_the_same_rows_and_stats_start_empty(sqlite_project: Any) -> None:
    first = dataset.add_structures(sqlite_project, 6)
    assert dataset.add_structures(sqlite_project, 6) == first
    stats = dataset.stats(sqlite_project)
    assert stats["structures_with_dft"] == 0 and stats["per_element"] == {}
