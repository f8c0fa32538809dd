"""Hamiltonians <-> torch-geometric graphs with per-shell-pair targets, and back.

A graph (`HamGraph`) holds the structure (z, pos in Å, lattice rows in Å), the block edges
(`edge_index` = (i, j), `edge_shift` = R) and, per shell pair (l1, l2) of the model, the index
arrays `blk_<l1><l2>_edge|_a|_b|_rev` and the target `y_<l1><l2>` in e3nn's basis:
  nonsoc: (n, 2l1+1, 2l2+1) = C_{l1}ᵀ H_design C_{l2};
  soc:    (n, 4, 2l1+1, 2l2+1) = (δH0, K_x, K_y, K_z) of ΔH = H_soc − H_nonsoc⊗σ0
          = δH0⊗σ0 + Σ_α iK_α⊗σ_α (DESIGN.md §2 split).
`Batch.from_data_list` concatenates graphs; `__inc__` shifts the edge and reverse indices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from hamdb.errors import BasisError, ModelError
from hamdb.ml.graph import BlockLayout, LPair, block_layout
from hamdb.ml.irreps import change_of_basis
from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian

PAULI = np.array(
    [[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]],
    dtype=np.complex128,
)


class HamGraph(Data):
    """A crystal graph whose shell-pair index arrays shift correctly when batched."""

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key.startswith("blk_") and key.endswith("_edge"):
            return self.edge_index.size(1)
        if key.startswith("blk_") and key.endswith("_rev"):
            pair = key[4:-4]
            return self[f"blk_{pair[::-1]}_edge"].numel()
        return super().__inc__(key, value, *args, **kwargs)


@dataclass
class Sample:
    """One structure ready for the network: its graph, its layout, and where it came from."""

    graph: HamGraph
    layout: BlockLayout
    structure: Any
    key: str = ""


def to_e3nn(block: np.ndarray, l1: int, l2: int) -> np.ndarray:
    """DESIGN-basis blocks (..., 2l1+1, 2l2+1) -> e3nn basis."""
    return change_of_basis(l1).T @ block @ change_of_basis(l2)


def to_design(block: np.ndarray, l1: int, l2: int) -> np.ndarray:
    """e3nn-basis blocks (..., 2l1+1, 2l2+1) -> DESIGN basis."""
    return change_of_basis(l1) @ block @ change_of_basis(l2).T


def check_basis(
    basis: BasisSet, species: Sequence[str], shells: Mapping[str, Sequence[int]], name: str
) -> None:
    """Raise ModelError if an element is unknown to the model or its shells differ."""
    for el in sorted(set(species)):
        if el not in shells:
            raise ModelError(
                f"the model (basis {name!r}) never saw element {el}; "
                f"it knows {', '.join(sorted(shells))}"
            )
        try:
            ls = basis.shell_ls(el)
        except BasisError as exc:
            raise ModelError(str(exc)) from None
        if tuple(ls) != tuple(shells[el]):
            raise ModelError(
                f"basis mismatch for {el}: structure basis {basis.name!r} has shells l={list(ls)}, "
                f"the model (basis {name!r}) was trained on l={list(shells[el])}"
            )


def make_graph(
    structure: Any, basis: BasisSet, edges: np.ndarray, l_pairs: Sequence[LPair]
) -> tuple[HamGraph, BlockLayout]:
    """The graph of a structure on the given (i, j, R) edges (no targets)."""
    species = [site.specie.symbol for site in structure]
    layout = block_layout(basis, species, edges)
    e = np.asarray(layout.edges, dtype=np.int64)
    data: dict[str, Any] = {
        "z": torch.tensor([site.specie.Z for site in structure], dtype=torch.long),
        "pos": torch.tensor(structure.cart_coords, dtype=torch.float32),
        "lattice": torch.tensor(structure.lattice.matrix, dtype=torch.float32).view(1, 3, 3),
        "edge_index": torch.tensor(e[:, :2].T.copy(), dtype=torch.long),
        "edge_shift": torch.tensor(e[:, 2:], dtype=torch.long),
    }
    for l1, l2 in l_pairs:
        key = f"{l1}{l2}"
        g = layout.groups.get((l1, l2))
        for name in ("edge", "a", "b", "rev"):
            arr = (
                getattr(g, {"edge": "edge", "a": "shell_a", "b": "shell_b", "rev": "rev"}[name])
                if g
                else np.zeros(0)
            )
            data[f"blk_{key}_{name}"] = torch.tensor(np.asarray(arr), dtype=torch.long)
    return HamGraph(**data), layout


def nonsoc_targets(
    H: Hamiltonian, layout: BlockLayout, l_pairs: Sequence[LPair]
) -> dict[str, torch.Tensor]:
    """{"y_<l1><l2>": (n, 2l1+1, 2l2+1)} real targets in e3nn's basis from a spinless H."""
    if H.spin != "none":
        raise ModelError(f"{H!r}: the non-SOC model needs a spinless Hamiltonian")
    blocks = layout.gather(np.asarray(H.h, dtype=np.float64))
    return {
        f"y_{l1}{l2}": torch.tensor(
            to_e3nn(blocks[(l1, l2)], l1, l2)
            if (l1, l2) in blocks
            else np.zeros((0, 2 * l1 + 1, 2 * l2 + 1)),
            dtype=torch.float32,
        )
        for l1, l2 in l_pairs
    }


def soc_split(spinor: np.ndarray) -> np.ndarray:
    """(…, 2, 2) spinor elements -> (4, …) real (H0, K_x, K_y, K_z) with X = H0σ0 + Σ iK_ασ_α."""
    h0 = (spinor[..., 0, 0] + spinor[..., 1, 1]) / 2
    hx = (spinor[..., 0, 1] + spinor[..., 1, 0]) / 2
    hy = 1j * (spinor[..., 0, 1] - spinor[..., 1, 0]) / 2
    hz = (spinor[..., 0, 0] - spinor[..., 1, 1]) / 2
    return np.stack([h0.real, hx.imag, hy.imag, hz.imag])


def soc_compose(parts: np.ndarray) -> np.ndarray:
    """(…, 4) real (H0, K_x, K_y, K_z) -> (…, 2, 2) spinor elements H0σ0 + Σ iK_ασ_α."""
    coeff = parts.astype(np.complex128)
    coeff[..., 1:] *= 1j
    return np.einsum("...a,ast->...st", coeff, PAULI)


def align_edges(H: Hamiltonian, edges: np.ndarray) -> np.ndarray:
    """Indices of `edges` inside H's edges (raises ModelError naming a missing one)."""
    index = H.edge_index
    out = np.empty(len(edges), dtype=np.int64)
    for k, (i, j, r1, r2, r3) in enumerate(np.asarray(edges).tolist()):
        e = index.get((i, j, (r1, r2, r3)))
        if e is None:
            raise ModelError(f"{H!r} lacks the block {(i, j, (r1, r2, r3))} of its SOC partner")
        out[k] = e
    return out


def spinless_on_edges(H: Hamiltonian, edges: np.ndarray) -> np.ndarray:
    """H's spinless flat h reordered onto `edges` (same structure and basis)."""
    idx = align_edges(H, edges)
    return np.concatenate([H.h_block(e).ravel() for e in idx]) if len(idx) else np.zeros(0)


def soc_targets(
    H_soc: Hamiltonian, H_nonsoc: Hamiltonian, layout: BlockLayout, l_pairs: Sequence[LPair]
) -> dict[str, torch.Tensor]:
    """{"y_<l1><l2>": (n, 4, 2l1+1, 2l2+1)} = (δH0, K_x, K_y, K_z) of H_soc − H_nonsoc⊗σ0."""
    if H_soc.spin != "soc" or H_nonsoc.spin != "none":
        raise ModelError(
            f"SOC targets need a SOC and a spinless Hamiltonian, got {H_soc!r}, {H_nonsoc!r}"
        )
    spinor = layout.gather_soc(np.asarray(H_soc.h))
    plain = layout.gather(spinless_on_edges(H_nonsoc, layout.edges))
    out = {}
    for l1, l2 in l_pairs:
        if (l1, l2) not in spinor:
            out[f"y_{l1}{l2}"] = torch.zeros((0, 4, 2 * l1 + 1, 2 * l2 + 1))
            continue
        parts = soc_split(spinor[(l1, l2)])  # (4, n, M1, M2)
        parts[0] -= plain[(l1, l2)]
        out[f"y_{l1}{l2}"] = torch.tensor(
            np.moveaxis(to_e3nn(parts, l1, l2), 0, 1).copy(), dtype=torch.float32
        )
    return out


def spinless_h(layout: BlockLayout, blocks: Mapping[LPair, np.ndarray]) -> np.ndarray:
    """Flat spinless h (DESIGN basis) from network output blocks (e3nn basis)."""
    return layout.scatter({lp: to_design(b, *lp) for lp, b in blocks.items()})


def soc_delta_h(layout: BlockLayout, blocks: Mapping[LPair, np.ndarray]) -> np.ndarray:
    """Flat complex ΔH (interleaved spinors) from SOC output blocks (n, 4, M1, M2), e3nn basis."""
    spinor = {}
    for lp, b in blocks.items():
        parts = to_design(np.asarray(b, dtype=np.float64), *lp)  # (n, 4, M1, M2)
        spinor[lp] = soc_compose(np.moveaxis(parts, 1, -1))
    return layout.scatter_soc(spinor)


def spinor_from_spinless(layout: BlockLayout, h: np.ndarray) -> np.ndarray:
    """Flat complex h ⊗ σ0 (interleaved) from a flat spinless h on the same layout."""
    blocks = layout.gather(h)
    eye = np.eye(2)
    return layout.scatter_soc({lp: b[..., None, None] * eye for lp, b in blocks.items()})


def attach_targets(
    graph: HamGraph, blocks: Mapping[LPair, np.ndarray], l_pairs: Sequence[LPair], kind: str
) -> HamGraph:
    """Set `y_<l1><l2>` of a graph from e3nn-basis blocks (e.g. a teacher network's output).

    Groups the structure lacks get empty targets of the right shape, so graphs batch together.
    """
    lead = (4,) if kind == "soc" else ()
    for l1, l2 in l_pairs:
        empty = np.zeros((0, *lead, 2 * l1 + 1, 2 * l2 + 1))
        graph[f"y_{l1}{l2}"] = torch.tensor(
            np.asarray(blocks.get((l1, l2), empty)), dtype=torch.float32
        )
    return graph
