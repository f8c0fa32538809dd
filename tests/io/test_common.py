"""Orbital names, spin layouts and the two-centre overlap check shared by the readers."""

from __future__ import annotations

import numpy as np
import pytest

from hamdb.errors import HamiltonianError, InputError
from hamdb.io.common import (
    overlap_sign_error,
    shells_from_names,
    spin_permutation,
    spinor_permutation,
)
from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian


def test_shells_from_names_maps_to_our_order() -> None:
    ls, perm = shells_from_names(["s", "px", "py", "pz", "dz2", "dx2-y2", "dxy", "dxz", "dyz"])
    assert ls == (0, 1, 2)
    # ours: s, py, pz, px, dxy, dyz, dz2, dxz, dx2-y2 -> positions in the file
    assert perm.tolist() == [0, 2, 3, 1, 6, 8, 4, 7, 5]


def test_incomplete_shell_is_refused() -> None:
    with pytest.raises(InputError, match="complete l=1 shell"):
        shells_from_names(["s", "px", "py", "s"])
    with pytest.raises(InputError, match="unknown orbital name"):
        shells_from_names(["sp3"])


def test_spin_layouts() -> None:
    # ours (2·orbital + s) -> file index
    assert spin_permutation(3, "blocked").tolist() == [0, 3, 1, 4, 2, 5]
    assert spin_permutation(3, "atom_blocked", np.array([2, 1])).tolist() == [0, 2, 1, 3, 4, 5]
    assert spinor_permutation(np.array([1, 0]), "soc", "interleaved").tolist() == [2, 3, 0, 1]


def _sp_pair(sign_px: float) -> Hamiltonian:
    from pymatgen.core import Lattice, Structure

    structure = Structure(Lattice.cubic(10.0), ["H", "C"], [[0, 0, 0], [0.13, 0.21, 0.17]])
    basis = BasisSet("sp", {"H": (0,), "C": (1,)})
    d = structure.cart_coords[1] - structure.cart_coords[0]
    x, y, z = d / np.linalg.norm(d)
    s_hp = 0.3 * np.array([[y, z, sign_px * x]])
    blocks = {(0, 0, (0, 0, 0)): np.eye(1), (1, 1, (0, 0, 0)): np.eye(3),
              (0, 1, (0, 0, 0)): s_hp, (1, 0, (0, 0, 0)): s_hp.T}  # fmt: skip
    h = {k: np.zeros_like(v) for k, v in blocks.items()}
    return Hamiltonian.from_blocks(structure, basis, "none", h, blocks)


def test_overlap_sign_error_sees_a_flipped_px() -> None:
    assert overlap_sign_error(_sp_pair(1.0)) < 1e-12
    assert overlap_sign_error(_sp_pair(-1.0)) > 0.1


def test_overlap_sign_error_needs_an_overlap(synthetic) -> None:
    with pytest.raises(HamiltonianError, match="non-orthogonal"):
        overlap_sign_error(synthetic("none"))
