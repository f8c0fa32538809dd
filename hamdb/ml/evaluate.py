"""Held-out metrics of a model version (what `hamdb evaluate` writes into the registry row).

All in eV, per structure then averaged over the test structures:
  h_mae_ev            MAE of the spinless H elements (DFT edges, DESIGN basis);
  h_mae_shifted_ev    the same after the constant zero-point shift H_pred + ΔE·S with the
                      least-squares ΔE (HamGNN reports its MAEs after this shift);
  soc_k_mae_ev        MAE of the SOC correction's (K_x, K_y, K_z) elements;
  soc_k_mae_zero_ev   mean |K_DFT|: the MAE of predicting no SOC (the scale of soc_k_mae);
  soc_h0_mae_ev       MAE of its scalar part δH0 (= H0_soc − H_nonsoc);
  h_onsite_mae_ev, h_onsite_mae_shifted_ev  the same two over the on-site blocks only
                      (i = j, R = 0: the atomic levels, eV-sized, where bands are most sensitive);
  h_mae_zero_ev       mean |H_DFT|: the MAE of predicting zero everywhere (the scale of h_mae:
                      most elements are long-range and tiny);
  soc_split_mae_ev    MAE of the SOC splittings E_n^soc(k) − E_{n/2}^nonsoc(k) of the 8 bands
                      around the gap at the high-symmetry k-points (seekpath);
  band_mae_ev         MAE of the occupied SOC bands (Γ-centred 4×4×4 mesh + high-symmetry k);
  band_mae_shifted_ev the same after the zero-point shift (H + ΔE·S moves every band by ΔE);
  band_mae_aligned_ev the same after the band-optimal constant (the mean error of the occupied
                      bands removed): their shape error, what gaps and Z2 depend on;
  gap_dft_ev, gap_pred_ev, gap_mae_ev   SOC gaps and |gap_pred − gap_DFT| on the same k;
  insulator_gap_mae_ev  the same, only for structures whose DFT gap exceeds INSULATOR_GAP_EV
                      (the mean over the test set is then the insulators' mean);
  *_filtered_ev       each band metric in the subspace of S(k) directions with eigenvalue above
                      S_MIN · λ_max(S(k)) (`hamdb.physics.orthogonal`, the same subspace as
                      `hamdb topology --s-min`), for prediction and DFT alike: the dzp basis is
                      nearly linearly dependent and an meV element error along its near-null
                      directions moves exact eigenvalues by eV (bench/ml_band_noise.py);
  nonsoc_band_mae_filtered_ev, nonsoc_gap_mae_filtered_ev (and nonsoc_gap_dft|pred_…)  the
                      spinless bands of the non-SOC part alone (filtered), where the electron
                      count fills whole bands;
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
from hamdb.physics.orthogonal import PREDICTED_S_MIN


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


def _onsite_elements(ham: Hamiltonian) -> np.ndarray:
    """Boolean mask of the flat spinless h elements in on-site blocks (i = j, R = 0)."""
    edges = np.asarray(ham.edges)
    mask = np.zeros(len(ham.h), dtype=bool)
    for e in np.flatnonzero((edges[:, 0] == edges[:, 1]) & (edges[:, 2:] == 0).all(axis=1)):
        mask[ham.offsets[e] : ham.offsets[e + 1]] = True
    return mask


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


#: Overlap filter of the *_filtered band metrics, relative to λ_max(S(k)). With it, white
#: element noise of 3 meV moves insulator gaps by 0.05 eV and 10 meV by 0.25 eV (exact
#: eigenvalues: gaps close at 1 meV); filtering itself moves DFT gaps by ~0.08 eV
#: (bench/ml_band_noise.py on the focused set).
S_MIN = PREDICTED_S_MIN
#: A DFT gap above this (eV) makes a structure an insulator for insulator_gap_mae_*.
INSULATOR_GAP_EV = 0.05


def filtered_eigenvalues(
    ham: Hamiltonian, s_ref: Hamiltonian, kpts: np.ndarray, s_min: float = S_MIN
) -> np.ndarray:
    """Bands (eV, ascending) of `ham` with the overlap of `s_ref`, kept S(k) subspace only.

    `hamdb.physics.orthogonal.orthonormal_hamiltonian` drops S(k) directions with eigenvalue
    ≤ s_min · λ_max and parks them above every band; those top n_dropped eigenvalues are cut
    (to the smallest kept count over k, so the array is (nk, n_kept_min)). s_min = 0 gives the
    exact generalised eigenvalues.
    """
    from hamdb.physics.bloch import bloch_matrices
    from hamdb.physics.orthogonal import orthonormal_hamiltonian

    h_k, _ = bloch_matrices(ham, kpts)
    if s_ref.s is None:
        return np.linalg.eigvalsh(h_k)
    _, s_k = bloch_matrices(s_ref.with_h(np.zeros(s_ref.s.shape), spin="none"), kpts)
    h_prime, dropped = orthonormal_hamiltonian(h_k, s_k, ham.n_spin, s_min)
    return np.linalg.eigvalsh(h_prime)[:, : ham.n_states - int(dropped.max())]


def structure_metrics(bundle: ModelBundle, record: Record) -> dict[str, float]:
    """The metrics of one held-out structure (see module docstring)."""
    from hamdb.physics.bands import eigenvalues, n_occupied

    pred = predict_on_edges(bundle, record)
    ref = record.h_soc or record.h_none
    h_dft = spinless_on_edges(record.h_none, ref.edges)
    h_pred = pred["none"].h
    m: dict[str, float] = {
        "h_mae_ev": float(np.abs(h_pred - h_dft).mean()),
        "h_mae_zero_ev": float(np.abs(h_dft).mean()),
    }
    onsite = _onsite_elements(pred["none"])
    m["h_onsite_mae_ev"] = float(np.abs(h_pred - h_dft)[onsite].mean())
    s_dft = ref.s
    if s_dft is not None:
        shift = float(np.dot(h_dft - h_pred, s_dft) / np.dot(s_dft, s_dft))
        m["h_mae_shifted_ev"] = float(np.abs(h_pred + shift * s_dft - h_dft).mean())
        m["h_onsite_mae_shifted_ev"] = float(np.abs(h_pred + shift * s_dft - h_dft)[onsite].mean())
        m["zero_point_shift_ev"] = shift
        if "overlap" in bundle.nets:
            m["overlap_mae"] = float(np.abs(pred["none"].s - s_dft).mean())
    dft_none = Hamiltonian(
        ref.structure,
        ref.basis,
        "none",
        ref.edges,
        pred["none"].offsets,
        h_dft,
        s_dft,
        ref.s_offsets,
        n_electrons=ref.n_electrons,
    )
    special, kpts = _kpoints(ref.structure)
    if s_dft is not None:
        _nonsoc_band_metrics(m, _with_overlap(pred["none"], s_dft), dft_none, kpts, shift)
    if record.h_soc is None:
        return m
    dft_soc = record.h_soc
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
        m["soc_k_mae_zero_ev"] = float(np.abs(parts_dft[1:]).mean())
        soc_pred = _with_overlap(pred["soc"], dft_soc.s)
        if n_occ is not None:
            none_pred = _with_overlap(pred["none"], dft_soc.s)
            for s_min, suffix in ((0.0, "_ev"), (S_MIN, "_filtered_ev")):
                try:
                    _band_metrics(
                        m, suffix, s_min, (soc_pred, dft_soc), (none_pred, dft_none), n_occ,
                        kpts, special, m.get("zero_point_shift_ev", 0.0),
                    )  # fmt: skip
                except HamdbError:  # the DFT S(k) itself is not positive definite somewhere
                    m["dft_s_not_positive_definite"] = 1.0
        if "overlap" in bundle.nets and n_occ is not None:
            try:
                e_dft = eigenvalues(dft_soc, kpts)
                e_s = eigenvalues(_with_overlap(dft_soc, pred["soc"].s), kpts)
                m["overlap_band_mae_ev"] = float(np.abs(e_s[:, :n_occ] - e_dft[:, :n_occ]).mean())
            except HamdbError:  # a learned S(k) that is not positive definite
                m["overlap_not_positive_definite"] = 1.0
    return m


def _band_metrics(
    m: dict[str, float],
    suffix: str,
    s_min: float,
    soc: tuple[Hamiltonian, Hamiltonian],
    none: tuple[Hamiltonian, Hamiltonian],
    n_occ: int,
    kpts: np.ndarray,
    special: np.ndarray,
    shift: float,
) -> None:
    """Band, gap and SOC-splitting errors (pred vs DFT, both with the DFT S) at one s_min.

    soc, none: (prediction, DFT) SOC and spinless Hamiltonians; keys end in `suffix`;
    band_mae_shifted*: after the zero-point shift ΔE (`shift`, eV), which moves every band.
    """
    from hamdb.physics.bands import band_gap

    e_pred, e_dft = (filtered_eigenvalues(h, soc[1], kpts, s_min) for h in soc)
    if not 0 < n_occ < min(e_dft.shape[1], e_pred.shape[1]):
        return
    diff = e_pred[:, :n_occ] - e_dft[:, :n_occ]
    m["band_mae" + suffix] = float(np.abs(diff).mean())
    m["band_mae_shifted" + suffix] = float(np.abs(diff + shift).mean())
    m["band_mae_aligned" + suffix] = float(np.abs(diff - diff.mean()).mean())
    gap_dft, gap_pred = band_gap(e_dft, n_occ)[0], band_gap(e_pred, n_occ)[0]
    m["gap_dft" + suffix], m["gap_pred" + suffix] = gap_dft, gap_pred
    m["gap_mae" + suffix] = abs(gap_pred - gap_dft)
    if gap_dft > INSULATOR_GAP_EV:
        m["insulator_gap_mae" + suffix] = abs(gap_pred - gap_dft)
    splits = []
    for soc_h, none_h in zip(soc, none, strict=True):
        e_soc = filtered_eigenvalues(soc_h, soc[1], special, s_min)
        e_none = np.repeat(filtered_eigenvalues(none_h, soc[1], special, s_min), 2, axis=1)
        n = min(e_soc.shape[1], e_none.shape[1])
        lo, hi = max(n_occ - 4, 0), min(n_occ + 4, n)
        splits.append(e_soc[:, lo:hi] - e_none[:, lo:hi])
    m["soc_split_mae" + suffix] = float(np.abs(splits[0] - splits[1]).mean())


def _nonsoc_band_metrics(
    m: dict[str, float], pred: Hamiltonian, dft: Hamiltonian, kpts: np.ndarray, shift: float
) -> None:
    """Filtered spinless band and gap errors of the non-SOC part (whole bands filled only);
    `shift` is the zero-point ΔE (eV) of the elements, which moves every band by ΔE."""
    from hamdb.physics.bands import band_gap, n_occupied

    try:
        n_occ = n_occupied(dft)
        e_pred, e_dft = (filtered_eigenvalues(h, dft, kpts) for h in (pred, dft))
    except HamdbError:
        return
    if 0 < n_occ < min(e_dft.shape[1], e_pred.shape[1]):
        diff = e_pred[:, :n_occ] - e_dft[:, :n_occ]
        m["nonsoc_band_mae_filtered_ev"] = float(np.abs(diff).mean())
        m["nonsoc_band_mae_shifted_filtered_ev"] = float(np.abs(diff + shift).mean())
        m["nonsoc_band_mae_aligned_filtered_ev"] = float(np.abs(diff - diff.mean()).mean())
        gap_dft, gap_pred = band_gap(e_dft, n_occ)[0], band_gap(e_pred, n_occ)[0]
        m["nonsoc_gap_dft_filtered_ev"], m["nonsoc_gap_pred_filtered_ev"] = gap_dft, gap_pred
        m["nonsoc_gap_mae_filtered_ev"] = abs(gap_pred - gap_dft)
        if gap_dft > INSULATOR_GAP_EV:
            m["nonsoc_insulator_gap_mae_filtered_ev"] = m["nonsoc_gap_mae_filtered_ev"]


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
