"""The model's cost on real DFT data: train seconds per epoch (CPU), inference structures/s,
and memory per structure with blocks grouped by shell pair vs padded to a square block.

The "padded" peer is what HamGNN does: every (i, j, R) block padded to P×P (P = 26 in
Uni-HamGNN's universal basis, or the largest orbital count of the data), outputs and targets
included. We count the real numbers the heads produce and hold (and their float32 bytes) per
structure, and the bytes autograd saves for the backward pass of one structure (the
activation memory that limits batch size).
Printed, never asserted.

    OMP_NUM_THREADS=1 python bench/ml.py --project P [--n 10]

P: a hamdb project holding DFT Hamiltonians, e.g. the starter set of `hamdb dataset build`
(the model card's command) or the demo's project after `bash scripts/demo.sh` (./demo).
    OMP_NUM_THREADS=1 python bench/ml.py --project P --model models/hamdb-small/model.pt

With --model, the networks of that bundle are timed instead of a fresh "small" one: forward
seconds per structure of each part (nonsoc, soc), batch 1, best of 3, on all DFT edges and on
the edges the Predictor runs them on.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--project", required=True, help="a hamdb project with DFT Hamiltonians (see above)"
    )
    parser.add_argument("--n", type=int, default=10, help="structures")
    parser.add_argument("--pad", type=int, default=26, help="HamGNN's padded block size")
    parser.add_argument("--model", default=None, help="a bundle (model.pt) to time instead")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.model:
        time_bundle(args.project, args.model, args.n)
        return

    from sqlalchemy.orm import Session
    from torch_geometric.data import Batch

    from hamdb.config import load_project
    from hamdb.db.engine import make_engine
    from hamdb.ml.dataset import common_basis, load_records
    from hamdb.ml.model import HamiltonianNet, ModelConfig
    from hamdb.ml.train import element_loss, init_from_data
    from hamdb.ml.training_run import PRESETS, build_graphs
    from hamdb.store.store import HamiltonianStore

    project = load_project(args.project)
    with Session(make_engine(project.database_url)) as session:
        records, _ = load_records(
            session, HamiltonianStore(project.store_path), f"limit={args.n}", False
        )
    basis = common_basis(records)
    cfg = ModelConfig(
        kind="nonsoc",
        shells={el: list(ls) for el, ls in basis.shells.items()},
        basis_name=basis.name,
        **PRESETS["small"],
    )
    graphs = build_graphs(records, basis, cfg)
    net = HamiltonianNet(cfg)
    init_from_data(net, graphs)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    print(f"{len(records)} structures, basis {basis.name}, small preset, 1 CPU thread")
    print(
        "structure  atoms  edges  grouped_reals  padded_reals(P=max)  padded_reals(P=26)  "
        "ratio26  saved_MB(backward)  train_s  infer_s"
    )
    totals = {"grouped": 0, "pmax": 0, "p26": 0, "train": 0.0, "infer": 0.0, "peak": 0.0}
    for rec, g in zip(records, graphs, strict=True):
        h = rec.h_none
        grouped = int(h.h.size)
        pmax = int(h.orbital_counts.max()) ** 2 * h.n_edges
        p26 = args.pad**2 * h.n_edges
        batch = Batch.from_data_list([g])
        saved = [0]

        def pack(t: torch.Tensor, saved: list[int] = saved) -> torch.Tensor:
            saved[0] += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss, _ = element_loss(net(batch), batch, "nonsoc", "mse", 1.0)
        loss.backward()
        peak = saved[0] / 2**20
        opt.zero_grad()
        start = time.perf_counter()
        loss, _ = element_loss(net(batch), batch, "nonsoc", "mse", 1.0)
        loss.backward()
        opt.step()
        t_train = time.perf_counter() - start
        start = time.perf_counter()
        with torch.inference_mode():
            net(batch)
        t_infer = time.perf_counter() - start
        print(
            f"{rec.structure_id:9d}  {len(h.structure):5d}  {h.n_edges:5d}  {grouped:13d}  "
            f"{pmax:19d}  {p26:18d}  {p26 / grouped:7.1f}  {peak:16.1f}  {t_train:7.2f}  "
            f"{t_infer:7.3f}"
        )
        for key, value in (
            ("grouped", grouped),
            ("pmax", pmax),
            ("p26", p26),
            ("train", t_train),
            ("infer", t_infer),
            ("peak", peak),
        ):
            totals[key] += value
    n = len(records)
    print(
        f"mean per structure: grouped {totals['grouped'] / n:.0f} reals "
        f"({4 * totals['grouped'] / n / 2**20:.2f} MB float32) vs padded-26 "
        f"{totals['p26'] / n:.0f} ({4 * totals['p26'] / n / 2**20:.2f} MB), "
        f"x{totals['p26'] / totals['grouped']:.1f}; padded to the data's max "
        f"x{totals['pmax'] / totals['grouped']:.1f}"
    )
    print(
        f"train: {totals['train']:.1f} s per epoch over {n} structures (batch 1); "
        f"inference (network only): {n / totals['infer']:.2f} structures/s; "
        f"tensors saved for backward {totals['peak'] / n:.0f} MB per structure"
    )


def time_bundle(project_dir: str, path: str, n: int) -> None:
    """Forward seconds per structure of each part of a saved bundle, on the project's data:
    on all DFT edges, and on the edges the Predictor runs the networks on (those within
    reach of a network, `Predictor.network_edges`; the other blocks are zero by the model's
    own rule)."""
    from pathlib import Path

    from sqlalchemy.orm import Session
    from torch_geometric.data import Batch

    from hamdb.config import load_project
    from hamdb.db.engine import make_engine
    from hamdb.ml.bundle import ModelBundle
    from hamdb.ml.data import make_graph
    from hamdb.ml.dataset import load_records
    from hamdb.ml.inference import Predictor
    from hamdb.store.store import HamiltonianStore

    bundle = ModelBundle.load(Path(path))
    predictor = Predictor(bundle)
    project = load_project(project_dir)
    known = set(bundle.nets["nonsoc"].cfg.shells)
    with Session(make_engine(project.database_url)) as session:
        records, _ = load_records(session, HamiltonianStore(project.store_path), None, False)
    records = [r for r in records if set(r.h_none.species) <= known][:n]
    print(f"{path}: {len(records)} structures, parts {sorted(bundle.nets)}, 1 CPU thread")
    print(
        "structure  atoms  edges  net_edges  "
        + "  ".join(f"{p}_fwd_s  {p}_net_s" for p in bundle.nets)
    )
    totals = {(p, k): 0.0 for p in bundle.nets for k in ("all", "net")}
    for rec in records:
        h = rec.h_none
        on = predictor.network_edges(h.structure, h.edges)
        row = f"{rec.structure_id:9d}  {len(h.structure):5d}  {h.n_edges:5d}  {len(on):9d}"
        for part, net in bundle.nets.items():
            for which, edges in (("all", h.edges), ("net", h.edges[on])):
                graph, _ = make_graph(h.structure, bundle.basis, edges, net.cfg.l_pairs)
                batch = Batch.from_data_list([graph])
                best = float("inf")
                with torch.inference_mode():
                    for _ in range(3):
                        start = time.perf_counter()
                        net(batch)
                        best = min(best, time.perf_counter() - start)
                totals[(part, which)] += best
                row += f"  {best:8.3f}"
        print(row)
    m = len(records)
    for which, label in (("all", "all DFT edges"), ("net", "the networks' edges")):
        both = sum(t for (_, k), t in totals.items() if k == which) / m
        print(
            f"mean forward per structure on {label}: "
            + ", ".join(f"{p} {totals[(p, which)] / m:.3f} s" for p in bundle.nets)
            + f"; all parts {both:.3f} s = {1 / both:.1f} structures/s/core"
        )


if __name__ == "__main__":
    main()
