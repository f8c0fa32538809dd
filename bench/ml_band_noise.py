"""How element errors of H(R) become band errors: DFT Hamiltonians plus random noise.

For each insulator of a project (SOC gap above --min-gap on the Γ-centred 4×4×4 mesh plus the
high-symmetry k-points, the k-points `hamdb evaluate` uses), add Hermitian random noise with a
mean absolute element error of 1, 3, 10 meV to the spinless part (δH ⊗ σ0 on the SOC H, with
δH_ij(R) = δH_ji(−R)ᵀ, every block of every edge) and measure, against the noise-free DFT bands:
  gap error |gap_noisy − gap_DFT| and occupied-band MAE,
exactly (generalised eigenvalues, s_min = 0) and in the filtered subspace (S(k) eigenvalues
above s_min · λ_max(S(k)) kept, Löwdin frame; `hamdb.ml.band_loss.frame_eigenvalues`, the
subspace `hamdb.physics.orthogonal` keeps). The "bias" row is the
price of filtering itself: filtered DFT bands vs exact DFT bands (no noise).
Printed, never asserted.

    OMP_NUM_THREADS=1 python bench/ml_band_noise.py --project /work/data/focused
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def hermitian_noise(
    ham: object, plain: np.ndarray, mae_ev: float, mode: str, rng: np.random.Generator
) -> np.ndarray:
    """Flat spinless noise on ham's spinless layout, H_ij(R) = H_ji(−R)ᵀ, mean |δ| = mae_ev.

    mode "white": the same spread on every element (long-range, near-zero ones included);
    "proportional": spread ∝ |H_ij(R)| of the spinless DFT `plain` (a model's errors are
    largest where the elements are: on-site and near neighbours).
    """
    edges = ham.s_offsets  # type: ignore[attr-defined]
    raw = rng.standard_normal(int(edges[-1]))
    if mode == "proportional":
        raw *= np.abs(plain)
    out = np.empty_like(raw)
    index = ham.edge_index  # type: ignore[attr-defined]
    for e in range(ham.n_edges):  # type: ignore[attr-defined]
        i, j, *r = (int(x) for x in ham.edges[e])  # type: ignore[attr-defined]
        rev = index[(j, i, (-r[0], -r[1], -r[2]))]
        rows, cols = ham.block_shape(e, spin=False)  # type: ignore[attr-defined]
        mine = raw[edges[e] : edges[e + 1]].reshape(rows, cols)
        other = raw[edges[rev] : edges[rev + 1]].reshape(cols, rows)
        out[edges[e] : edges[e + 1]] = ((mine + other.T) / 2).ravel()
    return out * (mae_ev / np.abs(out).mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default="/work/data/focused")
    parser.add_argument("--min-gap", type=float, default=0.05, help="eV, SOC gap of insulators")
    parser.add_argument("--max", type=int, default=4, help="insulators to use")
    parser.add_argument("--noise", default="0.001,0.003,0.01", help="element MAE, eV")
    parser.add_argument("--s-min", default="0,3e-4,1e-3,3e-3,1e-2,3e-2")
    parser.add_argument("--mode", default="white", choices=["white", "proportional"])
    parser.add_argument("--samples", type=int, default=2, help="noise draws per level")
    args = parser.parse_args()

    from sqlalchemy.orm import Session

    from hamdb.config import load_project
    from hamdb.db.engine import make_engine
    from hamdb.ml.band_loss import frame_eigenvalues, overlap_frames
    from hamdb.ml.data import spinless_on_edges
    from hamdb.ml.dataset import load_records
    from hamdb.ml.evaluate import _kpoints, spinor_from_spinless_flat
    from hamdb.physics.bands import band_gap, n_occupied
    from hamdb.physics.bloch import bloch_matrices
    from hamdb.store.store import HamiltonianStore

    noise_levels = [float(x) for x in args.noise.split(",")]
    s_mins = [float(x) for x in args.s_min.split(",")]
    project = load_project(args.project)
    with Session(make_engine(project.database_url)) as session:
        records, _ = load_records(session, HamiltonianStore(project.store_path), None, True)
    rng = np.random.default_rng(0)
    print(f"{args.mode} noise, mean |δH| per element over every block; {args.samples} draws/level")
    print(
        "structure  formula  atoms  N  gap_DFT  λmin(S)  noise_meV  s_min  kept  gap_err  occ_mae"
    )
    summary: dict[tuple[float, float], list[tuple[float, float]]] = {}
    used = 0
    for rec in records:
        h = rec.h_soc
        if h is None or used >= args.max:
            continue
        _, kpts = _kpoints(h.structure)
        try:
            n_occ = n_occupied(h)
        except Exception:
            continue
        plain = spinless_on_edges(rec.h_none, h.edges)
        h_k, s_k = bloch_matrices(h, kpts)
        lam_min = min(float(np.linalg.eigvalsh(s)[0]) for s in s_k)
        exact = frame_eigenvalues(h_k, overlap_frames(s_k, 0.0))
        gap_dft = band_gap(exact, n_occ)[0]
        if gap_dft < args.min_gap:
            continue
        used += 1
        start = time.perf_counter()
        frames = {s: overlap_frames(s_k, s) for s in s_mins}
        formula = h.structure.composition.reduced_formula
        head = f"{rec.structure_id:9d}  {formula:7s}  {len(h.structure):5d}  {h.n_states:3d}"
        for s_min in s_mins:
            ref = frame_eigenvalues(h_k, frames[s_min])
            kept = min(x.shape[1] for x in frames[s_min])
            bias_gap = abs(band_gap(ref, n_occ)[0] - gap_dft)
            bias_occ = float(np.abs(ref[:, :n_occ] - exact[:, :n_occ]).mean())
            print(
                f"{head}  {gap_dft:7.3f}  {lam_min:7.1e}  bias(0)    {s_min:5.0e}  {kept:4d}  "
                f"{bias_gap:7.3f}  {bias_occ:7.4f}"
            )
            for level in noise_levels:
                errs = []
                for _ in range(args.samples):
                    noise = spinor_from_spinless_flat(
                        h, hermitian_noise(h, plain, level, args.mode, rng)
                    )
                    n_k, _ = bloch_matrices(h.with_h(h.h + noise), kpts)
                    e = frame_eigenvalues(n_k, frames[s_min])
                    errs.append(
                        (
                            abs(band_gap(e, n_occ)[0] - band_gap(ref, n_occ)[0]),
                            float(np.abs(e[:, :n_occ] - ref[:, :n_occ]).mean()),
                        )
                    )
                gap_err, occ = np.mean(errs, axis=0)
                summary.setdefault((level, s_min), []).append((gap_err, occ))
                print(
                    f"{head}  {gap_dft:7.3f}  {lam_min:7.1e}  {1000 * level:9.0f}  {s_min:5.0e}  "
                    f"{kept:4d}  {gap_err:7.3f}  {occ:7.4f}"
                )
        print(
            f"# {rec.structure_id}: mean |H_DFT| {1000 * np.abs(plain).mean():.1f} meV over "
            f"{plain.size} elements, {time.perf_counter() - start:.0f} s"
        )
    print("\nmean over insulators (eV): gap error / occupied-band MAE vs the same-s_min DFT")
    print("noise_meV  " + "  ".join(f"s_min={s:<8.0e}" for s in s_mins))
    for level in noise_levels:
        cells = []
        for s in s_mins:
            arr = np.array(summary.get((level, s), [(np.nan, np.nan)]))
            cells.append(f"{arr[:, 0].mean():6.3f}/{arr[:, 1].mean():6.3f}")
        print(f"{1000 * level:9.0f}  " + "  ".join(f"{c:14s}" for c in cells))


if __name__ == "__main__":
    main()
