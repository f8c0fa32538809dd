"""The change of basis DESIGN <-> e3nn and the Clebsch–Gordan block maps are what they claim."""

# ruff: noqa: E741  (l is the angular momentum quantum number, as in the physics)

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3

from hamdb.ml.irreps import (
    axial_block_tensor,
    block_tensor,
    cartesian_from_l1,
    change_of_basis,
    design_harmonics,
)


@pytest.mark.parametrize("l", [0, 1, 2, 3])
def test_change_of_basis_maps_e3nn_harmonics_to_design_order(l: int) -> None:
    c = change_of_basis(l)
    np.testing.assert_allclose(c @ c.T, np.eye(2 * l + 1), atol=1e-12)
    pts = np.random.default_rng(l).normal(size=(30, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    e3 = o3.spherical_harmonics(l, torch.tensor(pts), normalize=True).numpy()
    design = design_harmonics(l, pts)
    # Same functions up to one positive factor per orbital (the normalisation).
    ratio = design / (e3 @ c.T)
    ok = np.abs(e3 @ c.T) > 1e-3
    for m in range(2 * l + 1):
        r = ratio[ok[:, m], m]
        assert r.min() > 0
        np.testing.assert_allclose(r, r[0], rtol=1e-9)


def test_l1_is_cartesian_after_the_map() -> None:
    v = np.array([[0.3, -0.5, 0.8]])
    y1 = o3.spherical_harmonics(1, torch.tensor(v), normalize=False).numpy()[0]
    out = cartesian_from_l1() @ y1
    np.testing.assert_allclose(out / np.linalg.norm(out), v[0] / np.linalg.norm(v), atol=1e-12)


@pytest.mark.parametrize("l1,l2", [(0, 1), (1, 1), (1, 2), (2, 2), (3, 1)])
def test_block_tensors_are_orthogonal_and_equivariant(l1: int, l2: int) -> None:
    t = block_tensor(l1, l2)
    m = t.reshape(-1, t.shape[2])
    np.testing.assert_allclose(m.T @ m, np.eye(m.shape[1]), atol=1e-12)
    rot = o3.rand_matrix(dtype=torch.float64)
    d1 = o3.Irrep(l1, 1).D_from_matrix(rot).numpy()
    d2 = o3.Irrep(l2, 1).D_from_matrix(rot).numpy()
    dx = (
        o3.Irreps("+".join(f"{L}e" for L in range(abs(l1 - l2), l1 + l2 + 1)))
        .D_from_matrix(rot)
        .numpy()
    )
    x = np.random.default_rng(0).normal(size=t.shape[2])
    np.testing.assert_allclose(d1 @ (t @ x) @ d2.T, t @ (dx @ x), atol=1e-5)
    ta = axial_block_tensor(l1, l2)
    irr = [f"{Lp}e" for L in range(abs(l1 - l2), l1 + l2 + 1) for Lp in range(abs(L - 1), L + 2)]
    dxa = o3.Irreps("+".join(irr)).D_from_matrix(rot).numpy()
    xa = np.random.default_rng(1).normal(size=ta.shape[3])
    k = np.einsum("xabk,k->xab", ta, xa)
    k_rot = np.einsum("xabk,k->xab", ta, dxa @ xa)
    expected = np.einsum("yx,ia,xab,jb->yij", rot.numpy(), d1, k, d2)
    np.testing.assert_allclose(k_rot, expected, atol=1e-5)
