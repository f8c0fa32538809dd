"""GPAW's dzp basis as a BasisSet and GPAW's orbital order mapped to DESIGN order (no SCF)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gpaw")

from hamdb.dft.gpaw_basis import cell_orbital_map, gpaw_basis, gpaw_to_design, orbital_map
from hamdb.errors import DFTError


def test_dzp_shells_and_valence_come_from_gpaw_files() -> None:
    from gpaw.basis_data import Basis
    from gpaw.setup_data import SetupData

    basis = gpaw_basis(["Si", "Bi", "Se"])
    for el in ("Si", "Bi", "Se"):
        assert basis.shell_ls(el) == tuple(bf.l for bf in Basis.find(el, "dzp").bf_j)
        assert basis.valence_electrons[el] == SetupData(el, "PBE").Nv
    assert basis.name == "gpaw-dzp"
    assert basis.n_orbitals("Si") == 13  # s, p, s', p', d: 1 + 3 + 1 + 3 + 5


@pytest.mark.parametrize("ell", [0, 1, 2, 3])
def test_gpaw_harmonics_are_the_design_harmonics(ell: int) -> None:
    """GPAW's YL polynomials, in GPAW's order, equal DESIGN's functions with sign +1."""
    from gpaw.sphere.spherical_harmonics import YL

    from hamdb.physics.rotations import real_harmonics

    perm, signs = gpaw_to_design(ell)
    rng = np.random.default_rng(1)
    r = rng.normal(size=(40, 3))
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    gpaw = np.array([[sum(c * np.prod(x ** np.array(n)) for c, n in YL[ell * ell + m]) for x in r]
                     for m in range(2 * ell + 1)])  # fmt: skip
    design = real_harmonics(ell, r).T  # (2l+1, n)
    for m in range(2 * ell + 1):
        g = signs[m] * gpaw[perm[m]]
        ratio = g / design[m]
        assert np.all(ratio > 0) and np.ptp(ratio) < 1e-9 * ratio.mean()


def test_cell_map_is_a_permutation_of_all_orbitals() -> None:
    basis = gpaw_basis(["Bi", "Se"])
    index, sign = cell_orbital_map(["Bi", "Se", "Se"], basis)
    assert sorted(index) == list(range(basis.n_orbitals("Bi") + 2 * basis.n_orbitals("Se")))
    assert set(np.abs(sign)) == {1.0}
    idx, _ = orbital_map((0, 1, 2))
    assert len(idx) == 9


def test_element_without_setup_is_a_clear_error() -> None:
    with pytest.raises(DFTError, match="Po") as info:
        gpaw_basis(["Si", "Po"])
    assert "\n" not in str(info.value)
