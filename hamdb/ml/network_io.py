"""Run a network over many structures at once and turn its output into Hamiltonians.

Structures are batched through torch-geometric (`Batch.from_data_list`); the per-shell-pair
outputs of the batch are split back per structure (each graph's items are contiguous) and
scattered into the flat arrays of the canonical `Hamiltonian` (DESIGN.md §3).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.data import Batch

from hamdb.ml.data import HamGraph, soc_delta_h, spinless_h
from hamdb.ml.graph import BlockLayout, LPair
from hamdb.ml.model import HamiltonianNet


@torch.no_grad()
def run_network(
    net: HamiltonianNet,
    graphs: Sequence[HamGraph],
    batch_size: int = 8,
    device: str = "cpu",
    double: bool = True,
) -> list[dict[LPair, np.ndarray]]:
    """Output blocks (e3nn basis, numpy float64, or the network's float32 with double=False)
    of each graph, in input order."""
    net.eval()
    out: list[dict[LPair, np.ndarray]] = []
    for start in range(0, len(graphs), batch_size):
        chunk = list(graphs[start : start + batch_size])
        batch = Batch.from_data_list(chunk).to(device)
        pred = net(batch)
        counts = {
            lp: [int(g[f"blk_{lp[0]}{lp[1]}_edge"].numel()) for g in chunk]
            for lp in net.cfg.l_pairs
        }
        per_graph: list[dict[LPair, np.ndarray]] = [{} for _ in chunk]
        for lp, tensor in pred.items():
            parts = torch.split((tensor.double() if double else tensor).cpu(), counts[lp])
            for k, part in enumerate(parts):
                if part.shape[0]:
                    per_graph[k][lp] = part.numpy()
        out.extend(per_graph)
    return out


def blocks_to_flat(
    net: HamiltonianNet, layout: BlockLayout, blocks: dict[LPair, np.ndarray]
) -> np.ndarray:
    """Flat h of one structure: real spinless for a non-SOC net, complex ΔH for a SOC net."""
    if net.cfg.kind == "nonsoc":
        return layout.hermitise(spinless_h(layout, blocks))
    return layout.hermitise(soc_delta_h(layout, blocks))
