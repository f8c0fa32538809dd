"""Small real crystals and bases shared by the physics tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from hamdb.physics.basis import BasisSet


@pytest.fixture(scope="session")
def spd_basis() -> BasisSet:
    return BasisSet("test-spd", {"Ga": (0, 1, 2), "As": (0, 1)}, {"Ga": 3, "As": 5})


@pytest.fixture(scope="session")
def diamond() -> Callable[..., Structure]:
    """diamond(rotation=None): 2-atom fcc Si cell (a = 5.43 Å), optionally turned in space."""

    def make(rotation: np.ndarray | None = None) -> Structure:
        a = 5.43
        lattice = np.array([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]])
        if rotation is not None:
            lattice = lattice @ np.asarray(rotation).T
        return Structure(Lattice(lattice), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]])

    return make
