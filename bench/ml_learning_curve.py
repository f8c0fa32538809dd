"""Learning curve of the non-SOC model: held-out error vs training-set size, fixed budget.

One split by material group (seed 0, as `hamdb train`), then for each size N the first N
structures of the shuffled training pool train a fresh network for the same number of optimiser
steps (so every size gets the same compute); without validation the epoch of lowest training
error is kept.
Scored on the same held-out structures for every size (those whose elements the smallest set
covers): H element MAE (and the zero-prediction MAE, its scale), the filtered spinless
occupied-band MAE (raw and after the zero-point shift) and the insulators' gap error
(`hamdb.ml.evaluate`, s_min = S_MIN).
Printed as a table, never asserted.

    OMP_NUM_THREADS=1 python bench/ml_learning_curve.py --project /work/data/focused \\
        --sizes 20,40,80,0 --steps 300 [--config cfg.toml] [--data FILTER]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default="/work/data/focused")
    parser.add_argument("--data", default=None, help="--data filter of `hamdb train`")
    parser.add_argument("--sizes", default="20,40,80,0", help="training sizes, 0 = all")
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps per size")
    parser.add_argument("--config", default=None, help="TOML as for `hamdb train --config`")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from sqlalchemy.orm import Session

    from hamdb.config import load_project
    from hamdb.db.engine import make_engine
    from hamdb.ml.bundle import ModelBundle
    from hamdb.ml.dataset import common_basis, load_records
    from hamdb.ml.evaluate import structure_metrics
    from hamdb.ml.inference import pair_cutoff_table
    from hamdb.ml.model import HamiltonianNet, ModelConfig, count_parameters, seed_everything
    from hamdb.ml.train import TrainConfig, Trainer, init_from_data, split_by_group
    from hamdb.ml.training_run import (
        PRESETS,
        _average_neighbours,
        build_frames,
        build_graphs,
        read_config_file,
    )
    from hamdb.store.store import HamiltonianStore

    torch.set_num_threads(1)
    config = read_config_file(args.config)
    project = load_project(args.project)
    with Session(make_engine(project.database_url)) as session:
        records, selection = load_records(
            session, HamiltonianStore(project.store_path), args.data, False
        )
    base = TrainConfig(**{**config.get("train", {}), "seed": args.seed})
    train_pool, _, test_idx = split_by_group(
        [r.group for r in records], base.val_fraction, base.test_fraction, base.split_seed
    )
    rng = np.random.default_rng(args.seed)
    train_pool = list(rng.permutation(train_pool))
    basis = common_basis(records)
    model_opts = dict(config.get("model", {}))
    preset = PRESETS[model_opts.pop("preset", "small")]
    print(
        f"{len(records)} structures ({selection['filter'] or 'all'}), test {len(test_idx)} "
        f"(ids {[records[k].structure_id for k in test_idx]}), pool {len(train_pool)}; "
        f"{args.steps} steps of batch {base.batch_size} per size, loss {base.loss}, "
        f"band_weight {base.band_weight}"
    )
    header = (
        "  N_train  elements  epochs  minutes  test_h_mae_meV  zero_pred_meV  "
        "band_mae_filt_eV  shifted  insulator_gap_err_filt_eV(n)  train_h_mae_meV"
    )
    print(header)
    sizes = [int(x) for x in args.sizes.split(",")]
    subsets = [train_pool if size <= 0 else train_pool[:size] for size in sizes]
    # Every size is scored on the same structures: those whose elements the smallest knows.
    smallest = {el for k in min(subsets, key=len) for el in records[k].h_none.species}
    test = [k for k in test_idx if set(records[k].h_none.species) <= smallest]
    print(f"scored on the {len(test)} test structures of elements the smallest set knows")
    for chosen in subsets:
        seen = sorted({el for k in chosen for el in records[k].h_none.species})
        cfg = ModelConfig(
            kind="nonsoc",
            shells={el: list(basis.shells[el]) for el in seen},
            basis_name=basis.name,
            valence_electrons=dict(basis.valence_electrons),
            **{**preset, **model_opts},
        )
        cfg.pair_cutoff_ang = pair_cutoff_table([r.h_none for r in records])
        cfg.edge_cutoff_ang = max(cfg.pair_cutoff_ang.values()) + 0.5
        cfg.avg_neighbours = _average_neighbours([records[k] for k in chosen], cfg.mp_cutoff_ang)
        epochs = max(1, round(args.steps * base.batch_size / len(chosen)))
        tcfg = TrainConfig(**{**base.as_dict(), "epochs": epochs, "patience": epochs + 1})
        seed_everything(args.seed)
        graphs = build_graphs([records[k] for k in chosen], basis, cfg, tcfg.shift_invariant)
        net = HamiltonianNet(cfg)
        init_from_data(net, graphs)
        frames = None
        if tcfg.band_weight > 0:
            frames = build_frames([records[k] for k in chosen], basis, cfg, tcfg)
        trainer = Trainer(net, graphs, [], tcfg, train_frames=frames)
        start = time.perf_counter()
        history = trainer.fit()
        minutes = (time.perf_counter() - start) / 60
        bundle = ModelBundle(basis, {"nonsoc": trainer.net})
        rows = [structure_metrics(bundle, records[k]) for k in test]

        def mean(key: str, rows: list[dict[str, float]] = rows) -> tuple[float, int]:
            vals = [r[key] for r in rows if key in r]
            return (float(np.mean(vals)) if vals else float("nan")), len(vals)

        gap, n_gap = mean("nonsoc_insulator_gap_mae_filtered_ev")
        print(
            f"{len(chosen):9d}  {len(seen):8d}  {epochs:6d}  {minutes:7.1f}  "
            f"{1000 * mean('h_mae_ev')[0]:14.2f}  {1000 * mean('h_mae_zero_ev')[0]:13.2f}  "
            f"{mean('nonsoc_band_mae_filtered_ev')[0]:16.3f}  "
            f"{mean('nonsoc_band_mae_shifted_filtered_ev')[0]:7.3f}  {gap:25.3f}({n_gap:2d})  "
            f"{1000 * history.epochs[-1]['train_h']:15.2f}",
            flush=True,
        )
        print(f"#  params {count_parameters(net)}")


if __name__ == "__main__":
    main()
