"""Crystal graphs for the model: periodic neighbour search and the block layout of a structure.

Edges are the (i, j, R) blocks of H(R) (DESIGN.md §2): the vector of edge (i, j, R) is
r_ij = τ_j + R·A − τ_i (Å, A the lattice rows), both directions and the on-site (i, i, 0) are
present. The blocks of an edge are cut into shell pairs (a of atom i, b of atom j) and grouped
by (l_a, l_b) across the whole batch, so the network computes exactly the real block sizes:
no padding to a maximum orbital count.

`BlockLayout` holds, for one structure, the index arrays that gather a shell-pair group out of
the flat `h` of a `Hamiltonian` (targets) and scatter predictions back into it.
"""

# ruff: noqa: E741  (l is the angular momentum quantum number, as in the physics)

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np

from hamdb.physics.basis import BasisSet

LPair = tuple[int, int]


def periodic_neighbours(
    lattice: np.ndarray, frac_coords: np.ndarray, cutoffs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j, R) with |τ_j + R·A − τ_i| < cutoffs[i, j], on-site (i, i, 0) included.

    lattice: (3, 3) rows a1, a2, a3 in Å; frac_coords (n, 3); cutoffs (n, n) in Å, symmetric.
    Returns edges int32 (m, 5) sorted by (i, j, R) and their vectors (m, 3) in Å. Both
    directions of every pair come out because the cut-off is symmetric.
    """
    lattice = np.asarray(lattice, dtype=float)
    cart = np.asarray(frac_coords, dtype=float) @ lattice
    rmax = float(np.max(cutoffs)) if cutoffs.size else 0.0
    # Images needed along a_k: the cut-off over the distance between lattice planes, plus the
    # spread of the atoms' own coordinates (1 for atoms in the cell; more for unwrapped ones).
    volume = abs(np.linalg.det(lattice))
    frac = np.asarray(frac_coords, dtype=float).reshape(-1, 3)
    spread = np.ptp(frac, axis=0) if len(frac) else np.zeros(3)
    spans = [
        int(
            np.ceil(
                rmax * np.linalg.norm(np.cross(lattice[(k + 1) % 3], lattice[(k + 2) % 3])) / volume
            )
        )
        + max(1, int(np.ceil(spread[k] - 1e-12)))
        for k in range(3)
    ]
    images = np.array(
        list(product(*(range(-s, s + 1) for s in spans))), dtype=np.int64
    )  # (n_img, 3)
    shifts = images @ lattice
    # d[i, j, img] = cart_j + shift − cart_i
    vec = cart[None, :, None, :] + shifts[None, None, :, :] - cart[:, None, None, :]
    dist = np.linalg.norm(vec, axis=-1)
    keep = dist < cutoffs[:, :, None]
    i, j, img = np.nonzero(keep)
    edges = np.concatenate([i[:, None], j[:, None], images[img]], axis=1).astype(np.int32)
    order = np.lexsort((edges[:, 4], edges[:, 3], edges[:, 2], edges[:, 1], edges[:, 0]))
    return edges[order], vec[i, j, img][order]


def reverse_edges(edges: np.ndarray) -> np.ndarray:
    """For each edge (i, j, R) the index of (j, i, −R); raises ValueError if one is missing."""
    index = {tuple(e): k for k, e in enumerate(edges.tolist())}
    out = np.empty(len(edges), dtype=np.int64)
    for k, (i, j, r1, r2, r3) in enumerate(edges.tolist()):
        rev = index.get((j, i, -r1, -r2, -r3))
        if rev is None:
            raise ValueError(f"edge {(i, j, (r1, r2, r3))} has no reverse edge")
        out[k] = rev
    return out


@dataclass(frozen=True)
class ShellGroup:
    """All shell pairs (l1, l2) of one structure: which edge, which shells, where in `h`.

    edge, shell_a, shell_b: (n,) edge number and shell indices (in the atoms' basis order).
    rev: (n,) index of the transposed pair (edge (j, i, −R), shells b, a) in group (l2, l1).
    flat: (n, 2l1+1, 2l2+1) index of each element in a spinless flat h.
    flat_soc: (n, 2l1+1, 2l2+1, 2, 2) index of each spinor element in a SOC flat h.
    """

    edge: np.ndarray
    shell_a: np.ndarray
    shell_b: np.ndarray
    rev: np.ndarray
    flat: np.ndarray
    flat_soc: np.ndarray


@dataclass(frozen=True)
class BlockLayout:
    """How the blocks of one structure's H(R) split into shell-pair groups."""

    edges: np.ndarray
    groups: Mapping[LPair, ShellGroup]
    n_flat: int

    @property
    def n_soc_flat(self) -> int:
        return 4 * self.n_flat

    def gather(self, h: np.ndarray) -> dict[LPair, np.ndarray]:
        """Real blocks per group from a spinless flat h: {(l1, l2): (n, 2l1+1, 2l2+1)}."""
        return {lp: h[g.flat] for lp, g in self.groups.items()}

    def gather_soc(self, h: np.ndarray) -> dict[LPair, np.ndarray]:
        """Spinor blocks per group from a SOC flat h: {(l1, l2): (n, 2l1+1, 2l2+1, 2, 2)}."""
        return {lp: h[g.flat_soc] for lp, g in self.groups.items()}

    def scatter(self, blocks: Mapping[LPair, np.ndarray], dtype: type = np.float64) -> np.ndarray:
        """A spinless flat h filled from {(l1, l2): (n, 2l1+1, 2l2+1)}."""
        h = np.zeros(self.n_flat, dtype=dtype)
        for lp, g in self.groups.items():
            h[g.flat] = blocks[lp]
        return h

    def scatter_soc(self, blocks: Mapping[LPair, np.ndarray]) -> np.ndarray:
        """A SOC flat h (complex) from {(l1, l2): (n, 2l1+1, 2l2+1, 2, 2)} spinor blocks."""
        h = np.zeros(self.n_soc_flat, dtype=np.complex128)
        for lp, g in self.groups.items():
            h[g.flat_soc] = blocks[lp]
        return h

    def hermitise(self, h: np.ndarray) -> np.ndarray:
        """(h + h_revᵀ*)/2 blockwise: exact H_ij(R) = H_ji(−R)† despite basis-change round-off."""
        out = np.empty_like(h)
        soc = h.shape[0] == self.n_soc_flat and self.n_soc_flat != self.n_flat
        for (l1, l2), g in self.groups.items():
            other = self.groups[(l2, l1)]
            if soc:
                idx = g.flat_soc
                rev = other.flat_soc[g.rev].transpose(0, 2, 1, 4, 3)
            else:
                idx, rev = g.flat, other.flat[g.rev].transpose(0, 2, 1)
            out[idx] = (h[idx] + np.conj(h[rev])) / 2
        return out


def block_layout(basis: BasisSet, species: Sequence[str], edges: np.ndarray) -> BlockLayout:
    """The shell-pair groups of a structure with these species on these (i, j, R) edges."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 5)
    shells = {el: basis.shell_ls(el) for el in set(species)}
    counts = np.array([basis.n_orbitals(el) for el in species], dtype=np.int64)
    starts_by_el = {
        el: np.concatenate([[0], np.cumsum([2 * l + 1 for l in ls])]) for el, ls in shells.items()
    }
    sizes = counts[edges[:, 0]] * counts[edges[:, 1]]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    rev_edge = reverse_edges(edges)

    rows: dict[LPair, list[tuple[int, int, int, int, int]]] = {}
    for e, (i, j) in enumerate(edges[:, :2].tolist()):
        li, lj = shells[species[i]], shells[species[j]]
        si, sj = starts_by_el[species[i]], starts_by_el[species[j]]
        for a, la in enumerate(li):
            for b, lb in enumerate(lj):
                rows.setdefault((la, lb), []).append((e, a, b, int(si[a]), int(sj[b])))

    position = {
        lp: {(e, a, b): k for k, (e, a, b, _, _) in enumerate(items)} for lp, items in rows.items()
    }
    groups: dict[LPair, ShellGroup] = {}
    for (l1, l2), items in rows.items():
        arr = np.array(items, dtype=np.int64)
        e, a, b, r0, c0 = arr.T
        rev_pos = position[(l2, l1)]
        rev = np.array(
            [rev_pos[(int(rev_edge[x]), int(y), int(w))] for x, w, y in zip(e, a, b, strict=True)]
        )
        ncol = counts[edges[e, 1]]
        m1 = np.arange(2 * l1 + 1)[None, :, None]
        m2 = np.arange(2 * l2 + 1)[None, None, :]
        row = r0[:, None, None] + m1
        col = c0[:, None, None] + m2
        base = offsets[e][:, None, None]
        flat = base + row * ncol[:, None, None] + col
        s = np.arange(2)
        flat_soc = (
            4 * base[..., None, None]
            + (2 * row[..., None, None] + s[:, None]) * (2 * ncol[:, None, None, None, None])
            + 2 * col[..., None, None]
            + s[None, :]
        )
        groups[(l1, l2)] = ShellGroup(e, a, b, rev.astype(np.int64), flat, flat_soc)
    return BlockLayout(edges.astype(np.int32), groups, int(offsets[-1]))
