"""Checks every Hamiltonian must pass before it is stored or used (DESIGN.md §3).

`check_hamiltonian` raises a `HamiltonianError` whose one line says what is wrong and where
(the edge (i, j, R1, R2, R3), the site, the largest deviation): block sizes against the basis,
site indices, duplicate edges, finiteness, on-site blocks present, every edge's reverse present,
and hermiticity H_ij(R) = H_ji(−R)† (and the same for S). Everything is vectorised over the flat
arrays; nothing loops per matrix element, and finiteness is read off the hermiticity pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hamdb.errors import HamiltonianError

if TYPE_CHECKING:
    from hamdb.physics.hamiltonian import Hamiltonian


def _edge_str(edge: np.ndarray) -> str:
    i, j, r1, r2, r3 = (int(x) for x in edge)
    return f"(i={i}, j={j}, R=({r1}, {r2}, {r3}))"


def match_edges(edges: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each row of `edges` the index of the same row in `reference`, or −1 if absent."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 5)
    reference = np.asarray(reference, dtype=np.int64).reshape(-1, 5)
    _, inverse = np.unique(np.concatenate([reference, edges]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    lookup = np.full(int(inverse.max(initial=-1)) + 1, -1, dtype=np.int64)
    lookup[inverse[: len(reference)]] = np.arange(len(reference))
    return lookup[inverse[len(reference) :]]


def reverse_edges(edges: np.ndarray) -> np.ndarray:
    """For each edge (i, j, R) the index of (j, i, −R), or −1 where that edge is missing."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 5)
    rev = np.concatenate([edges[:, 1:2], edges[:, 0:1], -edges[:, 2:5]], axis=1)
    return match_edges(rev, edges)


def _hermiticity_deviation(
    flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray, cols: np.ndarray, rev: np.ndarray
) -> np.ndarray:
    """Per edge the largest |M_ab(e) − conj(M_ba(rev e))|; a block whose reverse edge is
    missing counts as its largest |M_ab(e)| (the missing block is zero).

    Each pair (e, rev e) is compared once (e ≤ rev e; the pair's deviation is the same from
    both sides) and both edges get its value. Edges are taken in groups of equal block shape,
    each gathered as one (n, rows·cols) stack and compared with its partners' stack
    transposed, in place. With every reverse edge present, every element of `flat` enters
    exactly one comparison, so a non-finite element makes its edge's deviation non-finite
    (NaN or inf): `check_hamiltonian` uses that as its finiteness test.
    """
    worst = np.zeros(len(rows))
    if not len(rows):
        return worst
    starts = offsets[:-1]
    first = np.flatnonzero((rev < 0) | (np.arange(len(rows)) <= rev))
    shapes, group = np.unique(
        np.stack([rows[first], cols[first]], axis=1), axis=0, return_inverse=True
    )
    group = group.reshape(-1)
    for g, (r, c) in enumerate(shapes):
        members = first[group == g]
        r, c = int(r), int(c)
        block = flat[starts[members, None] + np.arange(r * c)]
        partner_edge = rev[members]
        has = partner_edge >= 0
        # the reverse block has shape (c, r): its element (b, a) sits at b·r + a
        transposed = (np.arange(r)[:, None] + r * np.arange(c)[None, :]).reshape(-1)
        partner = flat[starts[np.where(has, partner_edge, 0), None] + transposed]
        if not has.all():
            partner[~has] = 0.0
        if np.iscomplexobj(partner):
            np.conjugate(partner, out=partner)
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite: reported by the caller
            np.subtract(block, partner, out=block)
        dev = np.abs(block).max(axis=1, initial=0.0)
        worst[members] = dev
        worst[partner_edge[has]] = dev[has]
    return worst


def _layout(ham: Hamiltonian) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of each H block (spinor), after checking indices and sizes."""
    edges = ham.edges
    n_sites = len(ham.structure)
    if edges.ndim != 2 or edges.shape[1] != 5:
        raise HamiltonianError(f"edges must have shape (n_edges, 5), not {edges.shape}")
    bad = np.flatnonzero((edges[:, :2] < 0).any(axis=1) | (edges[:, :2] >= n_sites).any(axis=1))
    if bad.size:
        raise HamiltonianError(
            f"edge {_edge_str(edges[bad[0]])} names a site outside 0..{n_sites - 1}"
        )
    counts = ham.orbital_counts.astype(np.int64)
    ns = ham.n_spin
    rows, cols = counts[edges[:, 0]] * ns, counts[edges[:, 1]] * ns
    _check_sizes("H", edges, ham.offsets, ham.h, rows, cols)
    if ham.s is not None:
        if ham.s_offsets is None:
            raise HamiltonianError("an overlap s is present without s_offsets")
        _check_sizes("S", edges, ham.s_offsets, ham.s, rows // ns, cols // ns)
    return rows, cols


def _check_sizes(
    what: str, edges: np.ndarray, offsets: np.ndarray, flat: np.ndarray,
    rows: np.ndarray, cols: np.ndarray,
) -> None:  # fmt: skip
    if offsets.shape != (len(edges) + 1,):
        raise HamiltonianError(
            f"{what} offsets have {offsets.shape[0]} entries, "
            f"{len(edges)} edges need {len(edges) + 1}"
        )
    if flat.ndim != 1 or int(offsets[0]) != 0 or int(offsets[-1]) != flat.shape[0]:
        raise HamiltonianError(
            f"{what} offsets span 0..{int(offsets[-1])} but the flat array holds {flat.size} values"
        )
    held = np.diff(offsets)
    wrong = np.flatnonzero(held != rows * cols)
    if wrong.size:
        e = int(wrong[0])
        raise HamiltonianError(
            f"{what} block of edge {_edge_str(edges[e])} holds {int(held[e])} values, the basis "
            f"needs {int(rows[e])}x{int(cols[e])} ({len(wrong)} blocks wrong in all)"
        )


def hermiticity_error(ham: Hamiltonian) -> float:
    """Largest |H_ij(R) − H_ji(−R)†| over all elements, in eV (a missing reverse block counts
    as zero, so its partner's largest element is the error)."""
    rows, cols = _layout(ham)
    rev = reverse_edges(ham.edges)
    dev = _hermiticity_deviation(ham.h, ham.offsets, rows, cols, rev)
    return float(dev.max(initial=0.0))


def check_hamiltonian(ham: Hamiltonian, herm_tol: float = 1e-6, s_tol: float | None = None) -> None:
    """Raise HamiltonianError naming what and where if `ham` is not a valid Hamiltonian.

    herm_tol: largest allowed |H_ij(R) − H_ji(−R)†| in eV; s_tol the same for S (default
    herm_tol). Checks, in order: edge indices, block sizes against the basis, duplicate
    edges, finiteness, on-site blocks, reverse edges, hermiticity. A spinless Hamiltonian may
    be complex (e.g. a Haldane model); spin "soc" blocks are complex spinor blocks.

    Finiteness and hermiticity share one pass over each flat array (each pair of blocks
    compared once); a separate finiteness scan runs only to name the edge of a non-finite
    value, or when a reverse edge is missing.
    """
    s_tol = herm_tol if s_tol is None else s_tol
    rows, cols = _layout(ham)
    edges = ham.edges
    if len(edges):
        _, first, counts = np.unique(edges, axis=0, return_index=True, return_counts=True)
        if (counts > 1).any():
            e = int(first[np.argmax(counts > 1)])
            raise HamiltonianError(f"edge {_edge_str(edges[e])} appears more than once")
    rev = reverse_edges(edges)
    complete = bool((rev >= 0).all())
    devs: dict[str, np.ndarray] = {}
    if complete:
        # One pass per array gives hermiticity and finiteness: every element enters exactly
        # one comparison, so a non-finite element makes its edge's deviation non-finite.
        for what, flat, offsets, ns in (
            ("H", ham.h, ham.offsets, 1),
            ("S", ham.s, ham.s_offsets, ham.n_spin),
        ):
            if flat is not None and offsets is not None:
                devs[what] = _hermiticity_deviation(flat, offsets, rows // ns, cols // ns, rev)
    if not complete or not all(np.isfinite(d).all() for d in devs.values()):
        # names the first non-finite value's edge; if all values are finite, a deviation
        # overflowed (values beyond the dtype's range) and the hermiticity test below fails
        _check_finite(ham)
    onsite = (edges[:, 0] == edges[:, 1]) & (edges[:, 2:5] == 0).all(axis=1)
    have = np.zeros(len(ham.structure), dtype=bool)
    have[edges[onsite, 0]] = True
    missing = np.flatnonzero(~have)
    if missing.size:
        raise HamiltonianError(
            f"site {int(missing[0])} ({ham.species[int(missing[0])]}) has no on-site block "
            f"(i, i, 0, 0, 0) ({missing.size} sites missing one)"
        )
    lonely = np.flatnonzero(rev < 0)
    if lonely.size:
        e = int(lonely[0])
        i, j, *r = (int(x) for x in edges[e])
        raise HamiltonianError(
            f"edge {_edge_str(edges[e])} has no reverse edge (i={j}, j={i}, "
            f"R=({-r[0]}, {-r[1]}, {-r[2]})) ({lonely.size} edges lack one)"
        )
    for what, tol in (("H", herm_tol), ("S", s_tol)):
        dev = devs.get(what)
        if dev is not None and dev.size and dev.max() > tol:
            e = int(np.argmax(dev))
            unit = " eV" if what == "H" else ""
            raise HamiltonianError(
                f"{what} is not Hermitian: |{what}_ij(R) - {what}_ji(-R)^†| = "
                f"{dev[e]:.3g}{unit} > {tol:g} at edge {_edge_str(edges[e])}"
            )


def _check_finite(ham: Hamiltonian) -> None:
    """HamiltonianError naming the edge of the first non-finite value of H or S, if any."""
    for what, flat, offsets in (("H", ham.h, ham.offsets), ("S", ham.s, ham.s_offsets)):
        if flat is None or offsets is None:
            continue
        bad = np.flatnonzero(~np.isfinite(flat))
        if bad.size:
            e = int(np.searchsorted(offsets, bad[0], side="right") - 1)
            raise HamiltonianError(
                f"{what} block of edge {_edge_str(ham.edges[e])} has {bad.size} non-finite values"
            )
