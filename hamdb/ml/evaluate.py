"""Held-out metrics of a model version (what `hamdb evaluate` writes into the registry row).

All in eV, per structure then averaged over the test structures:
  h_mae_ev            MAE of the spinless H elements (DFT edges, DESIGN basis);
  h_mae_shifted_ev    the same after the constant zero-point shift H_pred + ΔE·S with the
                      least-squares ΔE (HamGNN reports its MAEs after this shift);
  soc_k_mae_ev        MAE of the SOC correction's (K_x, K_y, K_z) elements;
  soc_h0_mae_ev       MAE of its scalar part δH0 (= H0_soc − H_nonsoc);
  soc_split_mae_ev    MAE of the SOC splittings E_n^soc(k) − E_{n/2}^nonsoc(k) of the 8 bands
                      around the gap at the high-symmetry k-points (seekpath);
  band_mae_ev         MAE of the occupied SOC bands (Γ-centred 4×4×4 mesh + high-symmetry k);
  gap_mae_ev          |gap_pred − gap_DFT| on the same k-points (SOC);
  band_mae_filtered_ev, gap_mae_filtered_ev  the same in the span of S(k) eigenvalues > 1e-3
                      (see `filtered_eigenvalues`: the dzp basis is nearly linearly dependent);
  overlap_mae, overlap_band_mae_ev  when the model's S is learned: S elements and the band
                      error it alone causes (DFT H with learned S vs DFT S).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hamdb.errors import HamdbError
from hamdb.ml.bundle import ModelBundle
from hamdb.ml.data import make_graph, soc_split, spinless_on_edges, spinor_from_spinless
from hamdb.ml.dataset import Record
from hamdb.ml.network_io import blocks_to_flat, run_network
from hamdb.physics.hamiltonian import Hamiltonian


def _kpoints(structure: Any) -> tuple[np.ndarray, np.ndarray]:
    """(high-symmetry k, mesh + high-symmetry k), fractional."""
    from hamdb.physics.bands import kmesh, kpath

    try:
        path = kpath(structure, reference_distance=10.0)
        special = path.kpts[[n for n, _ in path.labels]]
    except Exception:  # seekpath refuses some cells (e.g. non-standard); Γ always exists
        special = np.zeros((1, 3))
    return special, np.concatenate([kmesh((4, 4, 4)), special])


def predict_on_edges(bundle: ModelBundle, record: Record) -> dict[str, Hamiltonian]:
    """The bundle's predictions on the record's own DFT edges (element-wise comparable)."""
    ref = record.h_soc if record.h_soc is not None else record.h_none
    nets = bundle.nets
    graph, layout = make_graph(ref.structure, bundle.basis, ref.edges, nets["nonsoc"].cfg.l_pairs)
    out = {name: run_network(net, [graph])[0] for name, net in nets.items()}
    s_flat = ref.s if ref.s is not None else None
    if "overlap" in nets:
        s_flat = blocks_to_flat(nets["overlap"], layout, out["overlap"])
    h0 = blocks_to_flat(nets["nonsoc"], layout, out["nonsoc"])
    s_offsets = ref.s_offsets
    pred = {
        "none": Hamiltonian(
            ref.structure,
            ref.basis,
            "none",
            ref.edges,
            s_offsets,
            h0,
            s_flat,
            s_offsets,
            n_electrons=ref.n_electrons,
        )
    }
    if "soc" in nets:
        h = spinor_from_spinless(layout, h0) + blocks_to_flat(nets["soc"], layout, out["soc"])
        pred["soc"] = Hamiltonian(
            ref.structure,
            ref.basis,
            "soc",
            ref.edges,
            4 * s_offsets,
            h,
            s_flat,
            s_offsets,
            n_electrons=ref.n_electrons,
        )
    return pred


def _with_overlap(ham: Hamiltonian, s: np.ndarray | None) -> Hamiltonian:
    return Hamiltonian(
        ham.structure,
        ham.basis,
        ham.spin,
        ham.edges,
        ham.offsets,
        ham.h,
        s,
        ham.s_offsets,
        n_electrons=ham.n_electrons,
    )


S_MIN = 1e-3  # S(k) eigenvalues below this are dropped for the *_filtered band metrics


def filtered_eigenvalues(ham: Hamiltonian, s_ref: Hamiltonian, kpts: np.ndarray) -> np.ndarray:
    """Bands of `ham` in the span of the S(k) eigenvectors of `s_ref` above S_MIN (eV).

    GPAW's dzp basis is nearly linearly dependent (λ_min(S(k)) ~ 1e-5 for Si), so a meV
    error of a predicted H along those directions moves generalized eigenvalues by eV; the
    canonical orthogonalisation (Löwdin) removes them the same way for DFT and prediction.
    Returns (nk, n_kept_min) ascending.
    """
    from hamdb.physics.bloch import bloch_matrices

    h_k, _ = bloch_matrices(ham, kpts)
    _, s_k = bloch_matrices(s_ref, kpts)
    out = []
    for h, sk in zip(h_k, s_k, strict=True):
        lam, vec = np.linalg.eigh(sk)
        keep = lam > S_MIN
        x = vec[:, keep] / np.sqrt(lam[keep])
        out.append(np.linalg.eigvalsh(x.conj().T @ h @ x))
    n = min(len(e) for e in out)
    return np.array([e[:n] for e in out])


def structure_metrics(bundle: ModelBundle, record: Record) -> dict[str, float]:
    """The metrics of one held-out structure (see module docstring)."""
    from hamdb.physics.bands import band_gap, eigenvalues, n_occupied

    pred = predict_on_edges(bundle, record)
    ref_edges = (record.h_soc or record.h_none).edges
    h_dft = spinless_on_edges(record.h_none, ref_edges)
    h_pred = pred["none"].h
    m: dict[str, float] = {"h_mae_ev": float(np.abs(h_pred - h_dft).mean())}
    s_dft = (record.h_soc or record.h_none).s
    if s_dft is not None:
        shift = float(np.dot(h_dft - h_pred, s_dft) / np.dot(s_dft, s_dft))
        m["h_mae_shifted_ev"] = float(np.abs(h_pred + shift * s_dft - h_dft).mean())
        m["zero_point_shift_ev"] = shift
        if "overlap" in bundle.nets:
            m["overlap_mae"] = float(np.abs(pred["none"].s - s_dft).mean())
    if record.h_soc is None:
        return m
    special, kpts = _kpoints(record.h_soc.structure)
    dft_soc = record.h_soc
    dft_none = Hamiltonian(
        dft_soc.structure,
        dft_soc.basis,
        "none",
        dft_soc.edges,
        dft_soc.s_offsets,
        h_dft,
        dft_soc.s,
        dft_soc.s_offsets,
        n_electrons=dft_soc.n_electrons,
    )
    try:
        n_occ = n_occupied(dft_soc)
    except HamdbError:
        n_occ = None
    if "soc" in pred:
        delta_pred = pred["soc"].h - spinor_from_spinless_flat(pred["none"], h_pred)
        delta_dft = dft_soc.h - spinor_from_spinless_flat(pred["none"], h_dft)
        parts_pred = soc_split(_as_spinor_elements(pred["soc"], delta_pred))
        parts_dft = soc_split(_as_spinor_elements(pred["soc"], delta_dft))
        m["soc_h0_mae_ev"] = float(np.abs(parts_pred[0] - parts_dft[0]).mean())
        m["soc_k_mae_ev"] = float(np.abs(parts_pred[1:] - parts_dft[1:]).mean())
        soc_pred = _with_overlap(pred["soc"], dft_soc.s)
        if n_occ is not None:
            try:
                _full_band_metrics(
                    m, soc_pred, pred["none"], dft_soc, dft_none, n_occ, kpts, special
                )
            except HamdbError:  # the DFT S(k) itself is not positive definite somewhere
                m["dft_s_not_positive_definite"] = 1.0
        if n_occ is not None:
            f_pred = filtered_eigenvalues(soc_pred, dft_soc, kpts)
            f_dft = filtered_eigenvalues(dft_soc, dft_soc, kpts)
            if n_occ < f_dft.shape[1]:
                m["band_mae_filtered_ev"] = float(
                    np.abs(f_pred[:, :n_occ] - f_dft[:, :n_occ]).mean()
                )
                m["gap_mae_filtered_ev"] = abs(
                    band_gap(f_pred, n_occ)[0] - band_gap(f_dft, n_occ)[0]
                )
        if "overlap" in bundle.nets and n_occ is not None:
            try:
                e_dft = eigenvalues(dft_soc, kpts)
                e_s = eigenvalues(_with_overlap(dft_soc, pred["soc"].s), kpts)
                m["overlap_band_mae_ev"] = float(np.abs(e_s[:, :n_occ] - e_dft[:, :n_occ]).mean())
            except HamdbError:  # a learned S(k) that is not positive definite
                m["overlap_not_positive_definite"] = 1.0
    return m


def _full_band_metrics(
    m: dict[str, float],
    soc_pred: Hamiltonian,
    none_pred: Hamiltonian,
    dft_soc: Hamiltonian,
    dft_none: Hamiltonian,
    n_occ: int,
    kpts: np.ndarray,
    special: np.ndarray,
) -> None:
    """Band, gap and SOC-splitting errors with the full DFT S(k) (no filtering)."""
    from hamdb.physics.bands import band_gap, eigenvalues

    e_pred, e_dft = eigenvalues(soc_pred, kpts), eigenvalues(dft_soc, kpts)
    if not 0 < n_occ < e_dft.shape[1]:
        return
    m["band_mae_ev"] = float(np.abs(e_pred[:, :n_occ] - e_dft[:, :n_occ]).mean())
    m["gap_dft_ev"] = band_gap(e_dft, n_occ)[0]
    m["gap_pred_ev"] = band_gap(e_pred, n_occ)[0]
    m["gap_mae_ev"] = abs(m["gap_pred_ev"] - m["gap_dft_ev"])
    lo, hi = max(n_occ - 4, 0), min(n_occ + 4, e_dft.shape[1])
    pn = eigenvalues(_with_overlap(none_pred, dft_soc.s), special)
    dn = eigenvalues(dft_none, special)
    split_pred = eigenvalues(soc_pred, special)[:, lo:hi] - np.repeat(pn, 2, axis=1)[:, lo:hi]
    split_dft = eigenvalues(dft_soc, special)[:, lo:hi] - np.repeat(dn, 2, axis=1)[:, lo:hi]
    m["soc_split_mae_ev"] = float(np.abs(split_pred - split_dft).mean())


def spinor_from_spinless_flat(template: Hamiltonian, h: np.ndarray) -> np.ndarray:
    """h ⊗ σ0 in interleaved spinor layout on the template's edges."""
    from hamdb.ml.graph import block_layout

    layout = block_layout(template.basis, list(template.species), template.edges)
    return spinor_from_spinless(layout, h)


def _as_spinor_elements(template: Hamiltonian, flat: np.ndarray) -> np.ndarray:
    """Flat interleaved SOC h -> (n_pairs, 2, 2) spinor elements (one per orbital pair)."""
    parts = []
    for e in range(template.n_edges):
        rows, cols = template.block_shape(e)
        block = flat[template.offsets[e] : template.offsets[e + 1]].reshape(
            rows // 2, 2, cols // 2, 2
        )
        parts.append(block.transpose(0, 2, 1, 3).reshape(-1, 2, 2))
    return np.concatenate(parts)


def evaluate_records(bundle: ModelBundle, records: Sequence[Record]) -> dict[str, Any]:
    """Mean of each metric over the records, plus their count and the per-structure values."""
    known = set.intersection(*(set(net.cfg.shells) for net in bundle.nets.values()))
    usable = [r for r in records if set(r.h_none.species) <= known]
    rows = [structure_metrics(bundle, r) | {"structure_id": r.structure_id} for r in usable]
    keys = sorted({k for r in rows for k in r if k != "structure_id"})
    summary: dict[str, Any] = {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}
    summary["n_structures"] = len(rows)
    summary["n_skipped_unseen_element"] = len(records) - len(usable)
    summary["per_structure"] = rows
    return summary


def held_out_ids(training_data: dict[str, Any] | None) -> list[int]:
    """Structure ids no part of the version trained or validated on."""
    seen: set[int] = set()
    test: set[int] = set()
    for part in (training_data or {}).values():
        split = part.get("split", {}) if isinstance(part, dict) else {}
        seen |= set(split.get("train", [])) | set(split.get("val", []))
        test |= set(split.get("test", []))
    return sorted(test - seen)


def evaluate_version(
    session: Any, store_root: Any, spec: str, data_filter: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """Evaluate a registry version on its held-out split (or `data_filter`); store metrics."""
    from pathlib import Path

    from hamdb.errors import ModelError
    from hamdb.ml.dataset import load_records
    from hamdb.ml.registry import resolve_version, verify_weights
    from hamdb.store.store import HamiltonianStore

    row = resolve_version(session, spec)
    bundle = ModelBundle.load(verify_weights(Path(store_root), row))
    if data_filter is None:
        ids = held_out_ids(row.training_data)
        if not ids:
            raise ModelError(
                f"{row.model.name}@{row.version} has no held-out structures; pass --data"
            )
        data_filter = "ids=" + ",".join(map(str, ids))
    records, _ = load_records(session, HamiltonianStore(store_root), data_filter, need_soc=False)
    metrics = evaluate_records(bundle, records)
    metrics["data"] = data_filter
    row.metrics = {
        **(row.metrics or {}),
        **{k: v for k, v in metrics.items() if k != "per_structure"},
        "per_structure": metrics["per_structure"],
    }
    session.flush()
    return row, metrics
