"""Neighbour search and the block layout against plain per-edge loops over the same edges."""

from __future__ import annotations

import numpy as np
import pytest

from hamdb.ml.graph import block_layout, periodic_neighbours, reverse_edges, sub_items
from hamdb.physics.basis import BasisSet

BASIS = BasisSet("test", {"Ga": (0, 1, 2), "As": (0, 1, 0, 1)}, {"Ga": 3.0, "As": 5.0})
SPECIES = ["Ga", "As", "As"]
LATTICE = np.array([[3.1, 0.0, 0.0], [0.9, 3.3, 0.0], [0.4, -0.6, 3.6]])


def edges_of(frac: np.ndarray, cutoff: float = 5.0) -> np.ndarray:
    cut = np.full((len(frac), len(frac)), cutoff)
    return periodic_neighbours(LATTICE, frac, cut)[0]


FRAC = np.array([[0.02, 0.1, 0.9], [0.5, 0.45, 0.3], [0.8, 0.9, 0.55]])


def brute_neighbours(frac: np.ndarray, cutoff: float) -> set[tuple[int, ...]]:
    cart = frac @ LATTICE
    out = set()
    for i in range(len(frac)):
        for j in range(len(frac)):
            for R in np.ndindex(11, 11, 11):
                R = np.array(R) - 5
                if np.linalg.norm(cart[j] + R @ LATTICE - cart[i]) < cutoff:
                    out.add((i, j, *R.tolist()))
    return out


def test_neighbours_are_all_pairs_within_the_cutoff_even_for_atoms_outside_the_cell() -> None:
    unwrapped = FRAC + np.array([[0, 0, 0], [2, -1, 0], [0, 0, -3]])
    for frac in (FRAC, unwrapped):
        edges = edges_of(frac)
        assert {tuple(e) for e in edges.tolist()} == brute_neighbours(frac, 5.0)
        assert len(edges) == len({tuple(e) for e in edges.tolist()})
        keys = [tuple(e) for e in edges.tolist()]
        assert keys == sorted(keys)


def test_reverse_edges_pairs_each_edge_with_its_transpose_and_names_a_lonely_one() -> None:
    edges = edges_of(FRAC)
    rev = reverse_edges(edges)
    assert np.array_equal(edges[rev][:, [1, 0]], edges[:, [0, 1]])
    assert np.array_equal(edges[rev][:, 2:], -edges[:, 2:])
    with pytest.raises(ValueError, match="has no reverse edge"):
        reverse_edges(edges[edges[:, 0] != 2])


def test_groups_hold_every_shell_pair_in_edge_then_shell_order() -> None:
    edges = edges_of(FRAC)
    layout = block_layout(BASIS, SPECIES, edges)
    expected: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for e, (i, j) in enumerate(edges[:, :2].tolist()):
        for a, la in enumerate(BASIS.shell_ls(SPECIES[i])):
            for b, lb in enumerate(BASIS.shell_ls(SPECIES[j])):
                expected.setdefault((la, lb), []).append((e, a, b))
    assert set(layout.groups) == set(expected)
    rev_edge = reverse_edges(edges)
    for (l1, l2), items in expected.items():
        g = layout.groups[(l1, l2)]
        found = zip(g.edge.tolist(), g.shell_a.tolist(), g.shell_b.tolist(), strict=True)
        assert list(found) == items
        partner = layout.groups[(l2, l1)]
        assert np.array_equal(partner.edge[g.rev], rev_edge[g.edge])
        assert np.array_equal(partner.shell_a[g.rev], g.shell_b)
        assert np.array_equal(partner.shell_b[g.rev], g.shell_a)


def blocks_of(h: np.ndarray, layout, spin: int) -> list[np.ndarray]:
    counts = np.array([BASIS.n_orbitals(el) for el in SPECIES])
    out = []
    for e, (i, j) in enumerate(layout.edges[:, :2].tolist()):
        n = spin * spin
        chunk = h[n * layout.offsets[e] : n * layout.offsets[e + 1]]
        out.append(chunk.reshape(spin * counts[i], spin * counts[j]))
    return out


def test_gather_scatter_round_trip_and_blocks_land_on_their_shells() -> None:
    rng = np.random.default_rng(0)
    layout = block_layout(BASIS, SPECIES, edges_of(FRAC))
    h = rng.normal(size=layout.n_flat)
    groups = layout.gather(h)
    assert np.array_equal(layout.scatter(groups), h)
    hs = rng.normal(size=layout.n_soc_flat) + 1j * rng.normal(size=layout.n_soc_flat)
    assert np.array_equal(layout.scatter_soc(layout.gather_soc(hs)), hs)
    # one item checked by hand: group (1, 2) item 0 is rows of shell a, columns of shell b
    g = layout.groups[(1, 2)]
    e, a, b = int(g.edge[0]), int(g.shell_a[0]), int(g.shell_b[0])
    i, j = layout.edges[e, :2]
    ra = sum(2 * ell + 1 for ell in BASIS.shell_ls(SPECIES[i])[:a])
    rb = sum(2 * ell + 1 for ell in BASIS.shell_ls(SPECIES[j])[:b])
    block = blocks_of(h, layout, 1)[e]
    assert np.array_equal(groups[(1, 2)][0], block[ra : ra + 3, rb : rb + 5])
    spinor = blocks_of(hs, layout, 2)[e]
    expected = spinor[2 * ra : 2 * ra + 6, 2 * rb : 2 * rb + 10].reshape(3, 2, 5, 2)
    assert np.array_equal(layout.gather_soc(hs)[(1, 2)][0], expected.transpose(0, 2, 1, 3))


def test_hermitise_makes_every_block_the_adjoint_of_its_reverse() -> None:
    rng = np.random.default_rng(1)
    layout = block_layout(BASIS, SPECIES, edges_of(FRAC))
    rev = reverse_edges(layout.edges)
    for spin, h in (
        (1, rng.normal(size=layout.n_flat)),
        (2, rng.normal(size=layout.n_soc_flat) + 1j * rng.normal(size=layout.n_soc_flat)),
    ):
        blocks = blocks_of(layout.hermitise(h), layout, spin)
        raw = blocks_of(h, layout, spin)
        for e, r in enumerate(rev.tolist()):
            assert np.allclose(blocks[e], blocks[r].conj().T, rtol=0, atol=1e-14)
            assert np.allclose(blocks[e], (raw[e] + raw[r].conj().T) / 2, rtol=0, atol=1e-14)


def test_pauli_parts_give_the_spinor_blocks_they_define() -> None:
    """X = c0⊗σ0 + i Σ c_α⊗σ_α, made Hermitian by hermitise_pauli exactly as hermitise does."""
    rng = np.random.default_rng(2)
    layout = block_layout(BASIS, SPECIES, edges_of(FRAC))
    pauli = np.array([[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])
    parts = {
        (l1, l2): rng.normal(size=(len(g.edge), 4, 2 * l1 + 1, 2 * l2 + 1))
        for (l1, l2), g in layout.groups.items()
    }
    spinor = {
        lp: np.einsum("nxab,xst->nabst", p * np.array([1, 1j, 1j, 1j])[None, :, None, None], pauli)
        for lp, p in parts.items()
    }
    assert np.array_equal(layout.scatter_pauli(parts), layout.scatter_soc(spinor))
    herm = layout.scatter_pauli(layout.hermitise_pauli(parts))
    assert np.abs(herm - layout.hermitise(layout.scatter_soc(spinor))).max() < 1e-15


def test_scatter_of_a_sub_layout_fills_its_edges_and_zeros_the_others() -> None:
    """Blocks computed on a subset of the edges (closed under reversal) land where the full
    layout puts them; every other block of h is exactly zero."""
    rng = np.random.default_rng(3)
    edges = edges_of(FRAC)
    full = block_layout(BASIS, SPECIES, edges)
    cart = FRAC @ LATTICE
    length = np.linalg.norm(cart[edges[:, 1]] + edges[:, 2:] @ LATTICE - cart[edges[:, 0]], axis=1)
    on = np.nonzero(length < 3.5)[0]
    assert 0 < len(on) < len(edges)
    sub = block_layout(BASIS, SPECIES, edges[on])
    items = sub_items(full, sub, on)
    parts = {
        (l1, l2): rng.normal(size=(len(g.edge), 4, 2 * l1 + 1, 2 * l2 + 1))
        for (l1, l2), g in full.groups.items()
    }
    keep = {lp: np.isin(g.edge, on) for lp, g in full.groups.items()}
    zeroed = {lp: np.where(keep[lp][:, None, None, None], p, 0.0) for lp, p in parts.items()}
    compact = {lp: p[keep[lp]] for lp, p in parts.items() if keep[lp].any()}
    assert np.array_equal(full.scatter_pauli(compact, sub=items), full.scatter_pauli(zeroed))
    real = {lp: p[:, 0] for lp, p in compact.items()}
    assert np.array_equal(
        full.scatter(real, sub=items), full.scatter({lp: p[:, 0] for lp, p in zeroed.items()})
    )
