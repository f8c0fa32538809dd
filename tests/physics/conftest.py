"""Small real crystals and bases shared by the physics tests."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from hamdb.physics.basis import BasisSet


@pytest.fixture(scope="session")
def gaas_like() -> Structure:
    """A two-atom zincblende cell (atoms off the origin, so gauges differ)."""
    return Structure(
        Lattice.from_parameters(4.0, 4.2, 4.4, 85, 95, 100),
        ["Ga", "As"],
        [[0.1, 0.05, 0.2], [0.35, 0.3, 0.45]],
    )


@pytest.fixture(scope="session")
def spd_basis() -> BasisSet:
    return BasisSet("test-spd", {"Ga": (0, 1, 2), "As": (0, 1)}, {"Ga": 3, "As": 5})
