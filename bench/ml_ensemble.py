"""Is a seed ensemble's gap spread calibrated? Member gaps vs the DFT gap on held-out data.

Each member (a registry version; `--soc-from` lends its SOC part to members without one)
predicts the SOC Hamiltonian of every selected structure on the DFT edges; the gap is taken,
like `hamdb evaluate`'s filtered metrics, in the S(k) subspace above S_MIN·λ_max on the
Γ-centred 4×4×4 mesh plus the high-symmetry k. Printed per structure: DFT gap, the first
member's gap, the members' mean and sample σ; then the fraction of |gap_first − gap_DFT|
within 1σ and 2σ (calibrated: ~68% and ~95%, the test of hamdb.pipeline.uncertainty), over
all structures and over those where either side has a gap. Printed, never asserted.

    OMP_NUM_THREADS=1 python bench/ml_ensemble.py --project P --models a@2+b@1+c@1 \\
        --soc-from a@2 --data ids=8,19,44
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", required=True)
    parser.add_argument("--models", required=True, help="registry specs joined by +")
    parser.add_argument("--soc-from", default=None, help="spec whose SOC part members borrow")
    parser.add_argument("--data", default=None, help="--data filter of the structures")
    parser.add_argument("--data-project", default=None, help="read structures from here")
    args = parser.parse_args()

    from pathlib import Path

    from sqlalchemy.orm import Session

    from hamdb.config import load_project
    from hamdb.db.engine import make_engine
    from hamdb.ml.bundle import ModelBundle
    from hamdb.ml.dataset import load_records
    from hamdb.ml.evaluate import S_MIN, _kpoints, filtered_eigenvalues, predict_on_edges
    from hamdb.ml.registry import resolve_version, verify_weights
    from hamdb.physics.bands import band_gap, n_occupied
    from hamdb.store.store import HamiltonianStore

    project = load_project(args.project)
    with Session(make_engine(project.database_url)) as session:

        def load(spec: str) -> ModelBundle:
            row = resolve_version(session, spec)
            return ModelBundle.load(verify_weights(Path(project.store_path), row))

        members = [load(spec) for spec in args.models.split("+")]
        if args.soc_from:
            soc = load(args.soc_from).nets["soc"]
            for bundle in members:
                bundle.nets.setdefault("soc", soc)
    data = load_project(args.data_project) if args.data_project else project
    with Session(make_engine(data.database_url)) as session:
        records, _ = load_records(session, HamiltonianStore(data.store_path), args.data, True)
    known = set.intersection(*(set(b.nets["nonsoc"].cfg.shells) for b in members))
    records = [r for r in records if set(r.h_none.species) <= known]
    print(f"{len(members)} members, {len(records)} structures, gaps filtered at s_min {S_MIN}")
    print("structure  formula   gap_DFT  gap_first  gap_mean  sigma   |err|/sigma")
    rows = []
    for rec in records:
        _, kpts = _kpoints(rec.h_soc.structure)
        try:
            n_occ = n_occupied(rec.h_soc)
        except Exception:  # electrons not filling whole bands: no gap to compare
            continue
        dft = band_gap(filtered_eigenvalues(rec.h_soc, rec.h_soc, kpts), n_occ)[0]
        gaps = []
        for bundle in members:
            pred = predict_on_edges(bundle, rec)["soc"]
            gaps.append(band_gap(filtered_eigenvalues(pred, rec.h_soc, kpts), n_occ)[0])
        sigma = float(np.std(gaps, ddof=1)) if len(gaps) > 1 else 0.0
        err = abs(gaps[0] - dft)
        rows.append((dft, gaps[0], err, sigma))
        ratio = err / sigma if sigma > 0 else float("inf") if err > 0 else 0.0
        print(
            f"{rec.structure_id:9d}  {rec.h_soc.structure.composition.reduced_formula:8s}"
            f"  {dft:7.3f}  {gaps[0]:9.3f}  {np.mean(gaps):8.3f}  {sigma:5.3f}  {ratio:8.2f}"
        )
    for name, subset in (
        ("all", rows),
        ("gapped (DFT or prediction)", [r for r in rows if r[0] > 0 or r[1] > 0]),
    ):
        if not subset:
            continue
        err = np.array([r[2] for r in subset])
        sig = np.array([r[3] for r in subset])
        print(
            f"{name}: n={len(subset)}  mean |err| {err.mean():.3f} eV  mean σ {sig.mean():.3f} eV"
            f"  within 1σ {np.mean(err <= sig):.0%}  within 2σ {np.mean(err <= 2 * sig):.0%}"
        )


if __name__ == "__main__":
    main()
