"""The canonical Hamiltonian: block-sparse H(R) and S(R) of a crystal in an atomic-orbital basis.

Convention (DESIGN.md §2): H_{(i,a),(j,b)}(R) = <φ_{i,a}(r − τ_i)| H |φ_{j,b}(r − τ_j − R)>,
energies in eV, R an integer lattice translation. Blocks are keyed by edges (i, j, R1, R2, R3);
both directions of every pair are kept and on-site blocks (i, i, 0, 0, 0) are always present.

The arrays are exactly those of the HDF5 store (DESIGN.md §3): `edges` int32 (n_edges, 5),
`offsets` int64 (n_edges + 1) into the flat `h`; block e has shape (n_i·n_spin, n_j·n_spin) in C
order; the overlap `s` (real, no spin) has its own `s_offsets`. For spin "soc" the spinor index
is 2·orbital + s (interleaved) and `h` is complex.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hamdb.errors import HamiltonianError
from hamdb.physics.basis import BasisSet

if TYPE_CHECKING:
    from pymatgen.core import Structure

SpinKind = Literal["none", "soc"]
EdgeKey = tuple[int, int, tuple[int, int, int]]


@dataclass(eq=False)
class Hamiltonian:
    """H(R) (and S(R)) of one structure in one basis, with what is needed to interpret it.

    structure: pymatgen Structure (Å); site order = atom index i, j of the edges.
    basis: shells per element; orbitals of site i follow `basis.shell_ls(species[i])`.
    spin: "none" (real, spinless) or "soc" (complex, 2n×2n spinor blocks, interleaved).
    edges, offsets, h: the block-sparse H(R) in eV (see module docstring).
    s, s_offsets: block-sparse spinless overlap on the same edges, or None (orthogonal basis).
    n_electrons: electrons filling the bands (counting both spins).
    fermi_level_ev: Fermi level in eV if known.
    origin: where it came from: {"code": "gpaw", "settings": {...}} or {"model": "name@3"}.
    """

    structure: Structure
    basis: BasisSet
    spin: SpinKind
    edges: np.ndarray
    offsets: np.ndarray
    h: np.ndarray
    s: np.ndarray | None = None
    s_offsets: np.ndarray | None = None
    n_electrons: float = 0.0
    fermi_level_ev: float | None = None
    origin: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.spin not in ("none", "soc"):
            raise HamiltonianError(f"spin kind must be 'none' or 'soc', not {self.spin!r}")
        self.edges = np.ascontiguousarray(self.edges, dtype=np.int32).reshape(-1, 5)
        self.offsets = np.ascontiguousarray(self.offsets, dtype=np.int64)
        if self.s is not None and self.s_offsets is None:
            raise HamiltonianError("an overlap s was given without s_offsets")

    # -- sizes -----------------------------------------------------------------------------
    @property
    def n_spin(self) -> int:
        """1 for a spinless Hamiltonian, 2 for a spinor (SOC) one."""
        return 2 if self.spin == "soc" else 1

    @cached_property
    def species(self) -> tuple[str, ...]:
        return tuple(site.specie.symbol for site in self.structure)

    @cached_property
    def orbital_counts(self) -> np.ndarray:
        """Spatial orbitals per site (no spin), int64."""
        return self.basis.orbital_counts(self.species)

    @cached_property
    def orbital_starts(self) -> np.ndarray:
        """Index of the first spatial orbital of each site, plus the total at the end."""
        return np.concatenate([[0], np.cumsum(self.orbital_counts)])

    @property
    def n_orbitals(self) -> int:
        """Spatial orbitals in the cell (no spin)."""
        return int(self.orbital_starts[-1])

    @property
    def n_states(self) -> int:
        """Matrix dimension of H(k): n_orbitals · n_spin."""
        return self.n_orbitals * self.n_spin

    @property
    def n_edges(self) -> int:
        return int(self.edges.shape[0])

    @property
    def is_orthogonal(self) -> bool:
        return self.s is None

    # -- blocks ----------------------------------------------------------------------------
    def block_shape(self, e: int, spin: bool = True) -> tuple[int, int]:
        """Shape of block e of h (spin=True) or of s (spin=False)."""
        ns = self.n_spin if spin else 1
        i, j = int(self.edges[e, 0]), int(self.edges[e, 1])
        return int(self.orbital_counts[i]) * ns, int(self.orbital_counts[j]) * ns

    def h_block(self, e: int) -> np.ndarray:
        """Block e of H as a 2D view (eV)."""
        return self.h[self.offsets[e] : self.offsets[e + 1]].reshape(self.block_shape(e))

    def s_block(self, e: int) -> np.ndarray:
        """Block e of S (spinless) as a 2D view."""
        if self.s is None or self.s_offsets is None:
            raise HamiltonianError("this Hamiltonian has an orthogonal basis: no overlap blocks")
        return self.s[self.s_offsets[e] : self.s_offsets[e + 1]].reshape(self.block_shape(e, False))

    def edge_key(self, e: int) -> EdgeKey:
        i, j, r1, r2, r3 = (int(x) for x in self.edges[e])
        return i, j, (r1, r2, r3)

    @cached_property
    def edge_index(self) -> dict[EdgeKey, int]:
        """Map (i, j, R) -> edge number."""
        return {self.edge_key(e): e for e in range(self.n_edges)}

    def blocks(self) -> Iterator[tuple[EdgeKey, np.ndarray]]:
        """Iterate ((i, j, R), H block) over all edges."""
        for e in range(self.n_edges):
            yield self.edge_key(e), self.h_block(e)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_blocks(
        cls,
        structure: Structure,
        basis: BasisSet,
        spin: SpinKind,
        h_blocks: Mapping[EdgeKey, np.ndarray],
        s_blocks: Mapping[EdgeKey, np.ndarray] | None = None,
        **kwargs: Any,
    ) -> Hamiltonian:
        """Build from {(i, j, (R1, R2, R3)): block} dicts; edges are sorted canonically.

        An overlap block without a Hamiltonian block gets a zero H block. Spinless blocks give a
        real (float64) `h` unless some block has a nonzero imaginary part; spin "soc" is always
        complex128.
        """
        keys = set(h_blocks) | set(s_blocks or {})
        ordered = sorted(keys, key=lambda k: (k[0], k[1], *k[2]))
        edges = np.array([(i, j, *R) for i, j, R in ordered], dtype=np.int32).reshape(-1, 5)
        counts = basis.orbital_counts([site.specie.symbol for site in structure])
        ns = 2 if spin == "soc" else 1
        # spinless blocks stay real unless one has an imaginary part (e.g. a Haldane phase)
        complex_blocks = any(
            np.iscomplexobj(b) and np.abs(np.imag(b)).max(initial=0.0) > 0
            for b in h_blocks.values()
        )
        dtype = np.complex128 if spin == "soc" or complex_blocks else np.float64
        sizes = counts[edges[:, 0]] * counts[edges[:, 1]]
        offsets = np.concatenate([[0], np.cumsum(sizes * ns * ns)]).astype(np.int64)
        h = np.zeros(int(offsets[-1]), dtype=dtype)
        for e, key in enumerate(ordered):
            if key in h_blocks:
                block = np.asarray(h_blocks[key])
                expected = (int(counts[key[0]]) * ns, int(counts[key[1]]) * ns)
                if block.shape != expected:
                    raise HamiltonianError(
                        f"H block {key} has shape {block.shape}, the basis needs {expected}"
                    )
                if dtype == np.float64 and np.iscomplexobj(block):
                    block = block.real
                h[offsets[e] : offsets[e + 1]] = block.ravel()
        s = s_offsets = None
        if s_blocks is not None:
            s_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            s = np.zeros(int(s_offsets[-1]), dtype=np.float64)
            for e, key in enumerate(ordered):
                if key in s_blocks:
                    block = np.asarray(s_blocks[key])
                    expected = (int(counts[key[0]]), int(counts[key[1]]))
                    if block.shape != expected:
                        raise HamiltonianError(
                            f"S block {key} has shape {block.shape}, the basis needs {expected}"
                        )
                    s[s_offsets[e] : s_offsets[e + 1]] = np.real(block).ravel()
        return cls(structure, basis, spin, edges, offsets, h, s, s_offsets, **kwargs)

    def with_h(self, h: np.ndarray, spin: SpinKind | None = None, **changes: Any) -> Hamiltonian:
        """A copy on the same edges and overlap with another flat `h` (and maybe spin kind)."""
        spin = spin or self.spin
        ns = 2 if spin == "soc" else 1
        sizes = self.orbital_counts[self.edges[:, 0]] * self.orbital_counts[self.edges[:, 1]]
        offsets = np.concatenate([[0], np.cumsum(sizes * ns * ns)]).astype(np.int64)
        if h.shape != (offsets[-1],):
            raise HamiltonianError(
                f"flat h has {h.shape[0]} values, {spin} blocks need {offsets[-1]}"
            )
        fields = {
            "n_electrons": self.n_electrons,
            "fermi_level_ev": self.fermi_level_ev,
            "origin": dict(self.origin),
        }
        fields.update(changes)
        return Hamiltonian(
            self.structure, self.basis, spin, self.edges.copy(), offsets, h,
            self.s, self.s_offsets, **fields,
        )  # fmt: skip

    def on_edges(self, edges: np.ndarray) -> Hamiltonian:
        """The same Hamiltonian on another edge list: blocks missing here become zero.

        Raises HamiltonianError if an edge of this Hamiltonian with a nonzero H or S block is
        not in `edges` (it would be lost). Vectorised: one gather over the flat arrays.
        """
        from hamdb.physics.checks import match_edges

        new = np.ascontiguousarray(edges, dtype=np.int32).reshape(-1, 5)
        src = match_edges(new, self.edges)
        dropped = np.setdiff1d(np.arange(self.n_edges), src[src >= 0])
        counts = self.orbital_counts
        for e in dropped:
            nonzero = np.any(self.h_block(int(e))) or (
                self.s is not None and np.any(self.s_block(int(e)))
            )
            if nonzero:
                raise HamiltonianError(
                    f"edge {self.edge_key(int(e))} has a nonzero block but is not in the new edges"
                )
        sizes = counts[new[:, 0]] * counts[new[:, 1]]
        ns2 = self.n_spin**2
        offsets = np.concatenate([[0], np.cumsum(sizes * ns2)]).astype(np.int64)
        h = _gather(self.h, self.offsets, src, offsets)
        s = s_offsets = None
        if self.s is not None and self.s_offsets is not None:
            s_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            s = _gather(self.s, self.s_offsets, src, s_offsets)
        return Hamiltonian(
            self.structure, self.basis, self.spin, new, offsets, h, s, s_offsets,
            n_electrons=self.n_electrons, fermi_level_ev=self.fermi_level_ev,
            origin=dict(self.origin),
        )  # fmt: skip

    def __repr__(self) -> str:
        formula = self.structure.composition.reduced_formula
        return (
            f"Hamiltonian({formula}, basis={self.basis.name!r}, spin={self.spin!r}, "
            f"{self.n_states} states, {self.n_edges} edges, "
            f"{'orthogonal' if self.s is None else 'with overlap'})"
        )


def _gather(
    flat: np.ndarray, offsets: np.ndarray, src: np.ndarray, new_offsets: np.ndarray
) -> np.ndarray:
    """Flat blocks laid out by `new_offsets`, block e copied from old block src[e] (or 0 if −1)."""
    sizes = np.diff(new_offsets)
    out = np.zeros(int(new_offsets[-1]), dtype=flat.dtype)
    edge_of = np.repeat(np.arange(len(sizes)), sizes)
    local = np.arange(out.shape[0], dtype=np.int64) - new_offsets[:-1][edge_of]
    take = src[edge_of] >= 0
    out[take] = flat[offsets[:-1][src[edge_of][take]] + local[take]]
    return out
