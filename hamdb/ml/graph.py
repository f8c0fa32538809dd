"""Crystal graphs for the model: periodic neighbour search and the block layout of a structure.

Edges are the (i, j, R) blocks of H(R) (DESIGN.md §2): the vector of edge (i, j, R) is
r_ij = τ_j + R·A − τ_i (Å, A the lattice rows), both directions and the on-site (i, i, 0) are
present. The blocks of an edge are cut into shell pairs (a of atom i, b of atom j) and grouped
by (l_a, l_b) across the whole batch, so the network computes exactly the real block sizes:
no padding to a maximum orbital count.

`BlockLayout` holds, for one structure, where each shell pair of each element pair sits, so a
shell-pair group is gathered out of the flat `h` of a `Hamiltonian` (targets) and predictions
are scattered back into it with a few numpy calls per shell pair of each element pair (not per
edge, and without index arrays as large as `h`: a ≤ 20-atom cell in GPAW's dzp basis has
10^5-10^7 matrix elements per spin block).
"""

# ruff: noqa: E741  (l is the angular momentum quantum number, as in the physics)

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise, product

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


def _edge_keys(edges: np.ndarray) -> np.ndarray:
    """One int64 per (i, j, R) that sorts like the tuple (edges (m, 5))."""
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 5)
    if not len(e):
        return np.zeros(0, dtype=np.int64)
    o = int(np.abs(e[:, 2:]).max())
    b = 2 * o + 1
    n = int(e[:, :2].max()) + 1
    R = e[:, 2:] + o
    return (((e[:, 0] * n + e[:, 1]) * b + R[:, 0]) * b + R[:, 1]) * b + R[:, 2]


def reverse_edges(edges: np.ndarray) -> np.ndarray:
    """For each edge (i, j, R) the index of (j, i, −R); raises ValueError if one is missing."""
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 5)
    both = _edge_keys(np.concatenate([e, np.concatenate([e[:, [1, 0]], -e[:, 2:]], axis=1)]))
    keys, wanted = both[: len(e)], both[len(e) :]
    order = np.argsort(keys, kind="stable")
    pos = np.searchsorted(keys, wanted, sorter=order)
    found = order[np.minimum(pos, len(e) - 1)] if len(e) else pos
    missing = np.nonzero((pos >= len(e)) | (keys[found] != wanted))[0] if len(e) else []
    if len(missing):
        i, j, *r = e[missing[0]].tolist()
        raise ValueError(f"edge {(i, j, tuple(r))} has no reverse edge")
    return found.astype(np.int64)


@dataclass(frozen=True)
class ShellGroup:
    """All shell pairs (l1, l2) of one structure: which edge, which shells, and their partner.

    edge, shell_a, shell_b: (n,) edge number and shell indices (in the atoms' basis order),
    edge-major then a, then b. rev: (n,) index of the transposed pair (edge (j, i, −R), shells
    b, a) in group (l2, l1). first: (n_edges + 1,) where each edge's items start.
    """

    edge: np.ndarray
    shell_a: np.ndarray
    shell_b: np.ndarray
    rev: np.ndarray
    first: np.ndarray


@dataclass(frozen=True)
class _PairSlots:
    """The edges of one element pair (canonical order) and where each shell pair (a, b) of its
    blocks sits: rows `ra`, columns `rb`, item `first[edge] + rank` of group `lp`."""

    edges: np.ndarray
    n_a: int
    n_b: int
    slots: tuple[tuple[LPair, int, slice, slice], ...]


@dataclass(frozen=True)
class BlockLayout:
    """How the blocks of one structure's H(R) split into shell-pair groups.

    Blocks are moved between the flat `h` and the groups one element pair at a time (all its
    edges share a block shape), so a structure costs a few numpy calls per shell pair of each
    element pair, not per edge; an atom pair's edges are contiguous in `h`.
    """

    edges: np.ndarray
    groups: Mapping[LPair, ShellGroup]
    n_flat: int
    offsets: np.ndarray
    pairs: tuple[_PairSlots, ...]
    runs: tuple[tuple[int, int, int, int], ...]  # (first edge, end edge, pair number, local)

    @property
    def n_soc_flat(self) -> int:
        return 4 * self.n_flat

    def _pair_blocks(self, h: np.ndarray, k: int, spin: int) -> np.ndarray:
        """Blocks (n, n_a·spin, n_b·spin) of element pair k gathered from a flat h."""
        p = self.pairs[k]
        out = np.empty((len(p.edges), p.n_a * spin, p.n_b * spin), dtype=h.dtype)
        scale = spin * spin
        for e0, e1, kk, local in self.runs:
            if kk == k:
                chunk = h[scale * self.offsets[e0] : scale * self.offsets[e1]]
                out[local : local + e1 - e0] = chunk.reshape(e1 - e0, *out.shape[1:])
        return out

    def _put_pair_blocks(self, h: np.ndarray, k: int, blocks: np.ndarray, spin: int) -> None:
        scale = spin * spin
        for e0, e1, kk, local in self.runs:
            if kk == k:
                h[scale * self.offsets[e0] : scale * self.offsets[e1]] = blocks[
                    local : local + e1 - e0
                ].ravel()

    def _items(self, lp: LPair, p: _PairSlots, rank: int) -> np.ndarray:
        return self.groups[lp].first[p.edges] + rank

    def gather(self, h: np.ndarray) -> dict[LPair, np.ndarray]:
        """Real blocks per group from a spinless flat h: {(l1, l2): (n, 2l1+1, 2l2+1)}."""
        out = {
            (l1, l2): np.empty((len(g.edge), 2 * l1 + 1, 2 * l2 + 1), dtype=h.dtype)
            for (l1, l2), g in self.groups.items()
        }
        for k, p in enumerate(self.pairs):
            blocks = self._pair_blocks(h, k, 1)
            for lp, rank, ra, rb in p.slots:
                out[lp][self._items(lp, p, rank)] = blocks[:, ra, rb]
        return out

    def gather_soc(self, h: np.ndarray) -> dict[LPair, np.ndarray]:
        """Spinor blocks per group from a SOC flat h: {(l1, l2): (n, 2l1+1, 2l2+1, 2, 2)}."""
        out = {
            (l1, l2): np.empty((len(g.edge), 2 * l1 + 1, 2 * l2 + 1, 2, 2), dtype=h.dtype)
            for (l1, l2), g in self.groups.items()
        }
        for k, p in enumerate(self.pairs):
            blocks = self._pair_blocks(h, k, 2).reshape(-1, p.n_a, 2, p.n_b, 2)
            for lp, rank, ra, rb in p.slots:
                out[lp][self._items(lp, p, rank)] = blocks[:, ra, :, rb, :].transpose(0, 1, 3, 2, 4)
        return out

    def _slot_rows(
        self, lp: LPair, p: _PairSlots, rank: int, inverse: Mapping[LPair, np.ndarray] | None
    ) -> tuple[np.ndarray | slice, np.ndarray]:
        """(local edges of pair p, rows of the group array) for one shell slot: all edges and
        their items, or with `inverse` (a `SubItems.inverse`) only the edges that have a row."""
        items = self._items(lp, p, rank)
        if inverse is None:
            return slice(None), items
        rows = inverse[lp][items]
        present = np.nonzero(rows >= 0)[0]
        return present, rows[present]

    def scatter(
        self,
        blocks: Mapping[LPair, np.ndarray],
        dtype: type = np.float64,
        sub: SubItems | None = None,
    ) -> np.ndarray:
        """A spinless flat h filled from {(l1, l2): (n, 2l1+1, 2l2+1)}.

        sub: the blocks hold only the items of a sub-layout (`sub_items`); the other blocks
        of h are zero.
        """
        inverse = None if sub is None else sub.inverse
        h = np.empty(self.n_flat, dtype=dtype)
        for k, p in enumerate(self.pairs):
            make = np.empty if sub is None else np.zeros
            buf = make((len(p.edges), p.n_a, p.n_b), dtype=dtype)
            for lp, rank, ra, rb in p.slots:
                if sub is not None and lp not in blocks:
                    continue
                local, rows = self._slot_rows(lp, p, rank, inverse)
                buf[local, ra, rb] = blocks[lp][rows]
            self._put_pair_blocks(h, k, buf, 1)
        return h

    def scatter_soc(self, blocks: Mapping[LPair, np.ndarray]) -> np.ndarray:
        """A SOC flat h (complex) from {(l1, l2): (n, 2l1+1, 2l2+1, 2, 2)} spinor blocks."""
        h = np.empty(self.n_soc_flat, dtype=np.complex128)
        for k, p in enumerate(self.pairs):
            buf = np.empty((len(p.edges), p.n_a, 2, p.n_b, 2), dtype=np.complex128)
            part = np.empty((len(p.edges), p.n_a, p.n_b), dtype=np.complex128)
            for s, t in product(range(2), range(2)):  # one spin pair at a time: rows contiguous
                for lp, rank, ra, rb in p.slots:
                    part[:, ra, rb] = blocks[lp][self._items(lp, p, rank), :, :, s, t]
                buf[:, :, s, :, t] = part
            self._put_pair_blocks(h, k, buf, 2)
        return h

    def scatter_pauli(
        self, parts: Mapping[LPair, np.ndarray], sub: SubItems | None = None
    ) -> np.ndarray:
        """A SOC flat h (complex) X = c0⊗σ0 + i Σ_α c_α⊗σ_α from real Pauli parts
        {(l1, l2): (n, 4, 2l1+1, 2l2+1)} = (c0, c_x, c_y, c_z) (DESIGN.md §2 split).

        Spin blocks: ↑↑ = c0 + i c_z, ↓↓ = c0 − i c_z, ↑↓ = c_y + i c_x, ↓↑ = −c_y + i c_x.
        sub: the parts hold only the items of a sub-layout (`sub_items`); the other blocks
        of h are zero.
        """
        inverse = None if sub is None else sub.inverse
        # float32 parts give a complex64 h (predictions are stored so), float64 complex128
        real = np.result_type(np.float32, *(part.dtype for part in parts.values()))
        h = np.empty(self.n_soc_flat, dtype=np.result_type(real, np.complex64))
        for k, p in enumerate(self.pairs):
            make = np.empty if sub is None else np.zeros
            c = make((4, len(p.edges), p.n_a, p.n_b), dtype=real)
            for lp, rank, ra, rb in p.slots:
                if sub is not None and lp not in parts:
                    continue
                local, rows = self._slot_rows(lp, p, rank, inverse)
                c[:, local, ra, rb] = parts[lp][rows].transpose(1, 0, 2, 3)
            # one complex plane per spin pair (s, t), written with a stride of 2 elements:
            # 4 passes instead of 8 real/imaginary ones that each touch every cache line
            spin = {
                (0, 0): c[0] + 1j * c[3],
                (1, 1): c[0] - 1j * c[3],
                (0, 1): c[2] + 1j * c[1],
                (1, 0): 1j * c[1] - c[2],
            }
            for e0, e1, kk, local in self.runs:
                if kk != k:
                    continue
                v = h[4 * self.offsets[e0] : 4 * self.offsets[e1]]
                v = v.reshape(e1 - e0, p.n_a, 2, p.n_b, 2)
                for (s, t), plane in spin.items():
                    v[:, :, s, :, t] = plane[local : local + e1 - e0]
        return h

    def hermitise_pauli(self, parts: Mapping[LPair, np.ndarray]) -> dict[LPair, np.ndarray]:
        """Pauli parts (n, 4, M1, M2) of X made exactly Hermitian, X_ij(R) = X_ji(−R)†: c0 is
        symmetrised and the c_α antisymmetrised against their transposed partner blocks."""
        sign = np.array([0.5, -0.5, -0.5, -0.5])[None, :, None, None]
        out = {}
        for (l1, l2), g in self.groups.items():
            other = parts[(l2, l1)][g.rev].transpose(0, 1, 3, 2)
            other *= sign
            other += 0.5 * parts[(l1, l2)]
            out[(l1, l2)] = other
        return out

    def hermitise_blocks(
        self, blocks: Mapping[LPair, np.ndarray], soc: bool = False
    ) -> dict[LPair, np.ndarray]:
        """(B + B_rev†)/2 per group: exact H_ij(R) = H_ji(−R)† on group blocks, spinless
        (n, M1, M2) or spinor (n, M1, M2, 2, 2) with `soc`."""
        out = {}
        for (l1, l2), g in self.groups.items():
            other = blocks[(l2, l1)][g.rev]
            other = np.conj(other).transpose(0, 2, 1, 4, 3) if soc else other.transpose(0, 2, 1)
            out[(l1, l2)] = (blocks[(l1, l2)] + other) / 2
        return out

    def hermitise(self, h: np.ndarray) -> np.ndarray:
        """(h + h_revᵀ*)/2 blockwise: exact H_ij(R) = H_ji(−R)† despite basis-change round-off."""
        if h.shape[0] == self.n_soc_flat and self.n_soc_flat != self.n_flat:
            return self.scatter_soc(self.hermitise_blocks(self.gather_soc(h), soc=True))
        return self.scatter(self.hermitise_blocks(self.gather(h)), dtype=h.dtype)


@dataclass(frozen=True)
class SubItems:
    """Where the group items of a sub-layout (a subset of the edges) sit in the full layout.

    inverse[lp]: (n_items of the full group,) row of each full item in the sub-layout's
    group, −1 where the edge is not in the sub-layout.
    """

    inverse: Mapping[LPair, np.ndarray]


def sub_items(full: BlockLayout, sub: BlockLayout, edge_map: np.ndarray) -> SubItems:
    """The item map of `sub`, whose edge k is edge `edge_map[k]` of `full` (same structure).

    Items of one edge are ordered by shell pair in both layouts (the ranks depend on the
    element pair only), so an item keeps its rank within its edge.
    """
    inverse = {}
    for lp, g_full in full.groups.items():
        inv = np.full(len(g_full.edge), -1, dtype=np.int64)
        g_sub = sub.groups.get(lp)
        if g_sub is not None and len(g_sub.edge):
            rows = np.arange(len(g_sub.edge), dtype=np.int64)
            rank = rows - g_sub.first[g_sub.edge]
            inv[g_full.first[edge_map[g_sub.edge]] + rank] = rows
        inverse[lp] = inv
    return SubItems(inverse)


def block_layout(basis: BasisSet, species: Sequence[str], edges: np.ndarray) -> BlockLayout:
    """The shell-pair groups of a structure with these species on these (i, j, R) edges.

    Items of a group are ordered by edge, then shell a, then shell b. Vectorised over the
    edges of each element pair: the loops run over element pairs and their shell pairs only.
    """
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 5)
    elements = sorted(set(species))
    code = {el: k for k, el in enumerate(elements)}
    site = np.array([code[el] for el in species], dtype=np.int64)
    shells = {el: tuple(basis.shell_ls(el)) for el in elements}
    starts = {
        el: np.concatenate([[0], np.cumsum([2 * l + 1 for l in ls])]) for el, ls in shells.items()
    }
    counts = np.array([basis.n_orbitals(el) for el in species], dtype=np.int64)
    sizes = counts[edges[:, 0]] * counts[edges[:, 1]]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    rev_edge = reverse_edges(edges)
    pair_of_edge = site[edges[:, 0]] * len(elements) + site[edges[:, 1]]

    # within one edge of element pair (A, B): shell pairs (a, b) a-major, ranked per group
    rank: dict[tuple[str, str], dict[tuple[int, int], tuple[LPair, int]]] = {}
    per_edge: dict[tuple[str, str], dict[LPair, int]] = {}
    for a_el, b_el in product(elements, elements):
        seen: dict[LPair, int] = {}
        rank[(a_el, b_el)] = {}
        for a, la in enumerate(shells[a_el]):
            for b, lb in enumerate(shells[b_el]):
                rank[(a_el, b_el)][(a, b)] = ((la, lb), seen.get((la, lb), 0))
                seen[(la, lb)] = seen.get((la, lb), 0) + 1
        per_edge[(a_el, b_el)] = seen

    pair_names = [
        (elements[p // len(elements)], elements[p % len(elements)])
        for p in range(len(elements) ** 2)
    ]
    lps = sorted({lp for p in np.unique(pair_of_edge) for lp in per_edge[pair_names[p]]})
    first = {}
    for lp in lps:
        n_per_pair = np.array([per_edge[name].get(lp, 0) for name in pair_names], dtype=np.int64)
        first[lp] = np.concatenate([[0], np.cumsum(n_per_pair[pair_of_edge])]).astype(np.int64)
    arrays = {lp: np.empty((4, int(first[lp][-1])), dtype=np.int64) for lp in lps}  # e, a, b, rev

    pairs, local = [], np.empty(len(edges), dtype=np.int64)
    number = {}
    for p in np.unique(pair_of_edge).tolist():
        a_el, b_el = pair_names[p]
        members = np.nonzero(pair_of_edge == p)[0]
        local[members] = np.arange(len(members))
        number[p] = len(pairs)
        slots = []
        for (a, b), (lp, k) in rank[(a_el, b_el)].items():
            pos = first[lp][members] + k
            lp_rev, k_rev = rank[(b_el, a_el)][(b, a)]
            arr = arrays[lp]
            arr[0, pos], arr[1, pos], arr[2, pos] = members, a, b
            arr[3, pos] = first[lp_rev][rev_edge[members]] + k_rev
            ra = slice(int(starts[a_el][a]), int(starts[a_el][a + 1]))
            rb = slice(int(starts[b_el][b]), int(starts[b_el][b + 1]))
            slots.append((lp, k, ra, rb))
        pairs.append(
            _PairSlots(members, int(starts[a_el][-1]), int(starts[b_el][-1]), tuple(slots))
        )
    groups = {lp: ShellGroup(*arrays[lp], first[lp]) for lp in lps}
    atom_pair = edges[:, 0] * len(species) + edges[:, 1]
    bounds = np.concatenate([[0], np.nonzero(np.diff(atom_pair))[0] + 1, [len(edges)]])
    runs = tuple(
        (int(e0), int(e1), number[int(pair_of_edge[e0])], int(local[e0]))
        for e0, e1 in pairwise(bounds.tolist())
        if e1 > e0
    )
    return BlockLayout(
        edges.astype(np.int32), groups, int(offsets[-1]), offsets, tuple(pairs), runs
    )
