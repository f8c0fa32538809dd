"""Registry versions side by side on the same held-out structures (an A/B of training choices).

Each version (`--soc-from` lends its SOC part to versions without one, e.g. non-SOC-only A/B
arms) is scored with `hamdb.ml.evaluate.evaluate_records`, the metrics `hamdb evaluate`
stores; printed: the mean of each headline metric per version (eV unless marked), then the
DFT and predicted gaps of every structure that is an insulator in DFT (filtered, SOC if there
is a SOC part, else spinless). Printed, never asserted.

    OMP_NUM_THREADS=1 python bench/ml_compare.py --project P --models a@1+b@1 \\
        --soc-from hamdb-small@1 --data ids=8,19,44
"""

from __future__ import annotations

import argparse
import time

import numpy as np

#: (metric key, label, scale): the rows of the table.
ROWS = (
    ("h_mae_ev", "H MAE meV", 1e3),
    ("h_mae_shifted_ev", "H MAE after ΔE·S meV", 1e3),
    ("h_onsite_mae_ev", "on-site MAE meV", 1e3),
    ("h_onsite_mae_shifted_ev", "on-site after ΔE·S meV", 1e3),
    ("nonsoc_band_mae_filtered_ev", "spinless band MAE filt", 1.0),
    ("nonsoc_band_mae_shifted_filtered_ev", "  after ΔE", 1.0),
    ("nonsoc_band_mae_aligned_filtered_ev", "  after mean band error", 1.0),
    ("nonsoc_insulator_gap_mae_filtered_ev", "spinless insulator gap err filt", 1.0),
    ("band_mae_filtered_ev", "SOC band MAE filt", 1.0),
    ("band_mae_shifted_filtered_ev", "  after ΔE", 1.0),
    ("band_mae_aligned_filtered_ev", "  after mean band error", 1.0),
    ("insulator_gap_mae_filtered_ev", "SOC insulator gap err filt", 1.0),
    ("insulator_gap_mae_ev", "SOC insulator gap err exact", 1.0),
    ("gap_mae_filtered_ev", "SOC gap err filt (all)", 1.0),
    ("soc_k_mae_ev", "SOC K MAE meV", 1e3),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", required=True)
    parser.add_argument("--models", required=True, help="registry specs joined by +")
    parser.add_argument("--soc-from", default=None, help="spec whose SOC part others borrow")
    parser.add_argument("--data", required=True, help="--data filter of the structures")
    args = parser.parse_args()

    from pathlib import Path

    import torch
    from sqlalchemy.orm import Session

    from hamdb.config import load_project
    from hamdb.db.engine import make_engine
    from hamdb.ml.bundle import ModelBundle
    from hamdb.ml.dataset import load_records
    from hamdb.ml.evaluate import INSULATOR_GAP_EV, evaluate_records
    from hamdb.ml.registry import resolve_version, verify_weights
    from hamdb.store.store import HamiltonianStore

    torch.set_num_threads(1)
    project = load_project(args.project)
    specs = args.models.split("+")
    with Session(make_engine(project.database_url)) as session:

        def load(spec: str) -> ModelBundle:
            row = resolve_version(session, spec)
            return ModelBundle.load(verify_weights(Path(project.store_path), row))

        bundles = [load(spec) for spec in specs]
        if args.soc_from:
            soc = load(args.soc_from).nets["soc"]
            for bundle in bundles:
                bundle.nets.setdefault("soc", soc)
        records, _ = load_records(session, HamiltonianStore(project.store_path), args.data, False)
    results = []
    for spec, bundle in zip(specs, bundles, strict=True):
        start = time.perf_counter()
        results.append(evaluate_records(bundle, records))
        print(f"# {spec}: {time.perf_counter() - start:.0f} s", flush=True)
    print(f"{len(records)} structures ({args.data})")
    print(f"{'metric':34s}" + "".join(f"{s:>16s}" for s in specs))
    for key, label, scale in ROWS:
        values = [r.get(key) for r in results]
        if all(v is None for v in values):
            continue
        cells = "".join(f"{'-':>16s}" if v is None else f"{scale * v:16.3f}" for v in values)
        print(f"{label:34s}{cells}")
    for prefix, what in (("nonsoc_", "spinless"), ("", "SOC")):
        print(
            f"{what} insulators (filtered DFT gap > {INSULATOR_GAP_EV} eV): structure, DFT gap, "
            "predicted gap per version (eV)"
        )
        for k, row in enumerate(results[0]["per_structure"]):
            gap = row.get(f"{prefix}gap_dft_filtered_ev")
            if gap is None or gap <= INSULATOR_GAP_EV:
                continue
            preds = [
                r["per_structure"][k].get(f"{prefix}gap_pred_filtered_ev", np.nan) for r in results
            ]
            print(
                f"  {row['structure_id']:4d}  {gap:6.3f}  " + "  ".join(f"{p:6.3f}" for p in preds)
            )


if __name__ == "__main__":
    main()
