"""`hamdb train nonsoc|soc|overlap`: data from the project -> trained part -> registry version.

A model name collects parts trained one after the other (delta learning as in Uni-HamGNN):
  nonsoc   the spinless H(R) from many non-SOC Hamiltonians;
  soc      the correction ΔH = H_soc − H_nonsoc⊗σ0 from the (fewer) SOC ones;
  overlap  S(R) (only where the exact overlap is unavailable at prediction time).
Each run registers a new version holding the new part plus the other parts of the newest
version of the same name, so `name@latest` always predicts with everything trained so far.
Checkpoints live in <store>/models/<name>/runs/<kind>-seed<seed>/; a killed run started again
with the same settings resumes there.
"""

from __future__ import annotations

import json
import math
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hamdb.db.engine import SQLITE_BEGIN_OPTION
from hamdb.errors import InputError, ModelError
from hamdb.ml.band_loss import BandFrame
from hamdb.ml.bundle import ModelBundle
from hamdb.ml.data import HamGraph, make_graph, nonsoc_targets, soc_targets
from hamdb.ml.dataset import Record, common_basis, load_records
from hamdb.ml.inference import pair_cutoff_table
from hamdb.ml.model import HamiltonianNet, ModelConfig, seed_everything
from hamdb.ml.train import History, TrainConfig, Trainer, init_from_data, split_by_group
from hamdb.physics.hamiltonian import Hamiltonian

KINDS = ("nonsoc", "soc", "overlap")
#: Sizes: "small" trains on 2 CPU cores in minutes; "large" is meant for a GPU.
PRESETS: dict[str, dict[str, Any]] = {
    "small": {"hidden": "16x0e+8x1o+8x2e+4x1e+4x2o", "edge_mul": 8, "layers": 2},
    "large": {
        "hidden": "64x0e+32x1o+32x2e+16x1e+16x2o",
        "edge_mul": 32,
        "layers": 3,
        "radial_hidden": 64,
    },
}


def read_config_file(path: str | Path | None) -> dict[str, Any]:
    """{"train": {...TrainConfig}, "model": {...ModelConfig or preset="large"}} from TOML/JSON."""
    if path is None:
        return {}
    p = Path(path)
    try:
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: cannot read the training config ({exc})") from None
    unknown = set(data) - {"train", "model"}
    if unknown:
        raise InputError(f"{p}: unknown sections {sorted(unknown)}; use [train] and [model]")
    return data


def overlap_as_hamiltonian(ham: Hamiltonian) -> Hamiltonian:
    """S(R) of `ham` dressed as a spinless Hamiltonian (the overlap network's target)."""
    if ham.s is None:
        raise ModelError(f"{ham!r} has no overlap to learn")
    return Hamiltonian(
        ham.structure, ham.basis, "none", ham.edges, ham.s_offsets, ham.s, ham.s, ham.s_offsets
    )


def build_graphs(
    records: Sequence[Record], basis: Any, cfg: ModelConfig, with_overlap: bool = False
) -> list[HamGraph]:
    """Graphs with the targets of `cfg.kind` (targets of the 'overlap' part are S).

    with_overlap (non-SOC): also S as `s_<l1><l2>` beside each `y_<l1><l2>`, what the
    zero-point-free loss (`TrainConfig.shift_invariant`) projects out.
    """
    graphs = []
    for r in records:
        ref = r.h_soc if cfg.kind == "soc" else r.h_none
        graph, layout = make_graph(ref.structure, basis, ref.edges, cfg.l_pairs)
        if cfg.kind == "soc":
            targets = soc_targets(r.h_soc, r.h_none, layout, cfg.l_pairs)
        else:
            targets = nonsoc_targets(r.h_none, layout, cfg.l_pairs)
            if with_overlap:
                s = nonsoc_targets(overlap_as_hamiltonian(r.h_none), layout, cfg.l_pairs)
                targets.update({"s_" + key[2:]: value for key, value in s.items()})
        for key, value in targets.items():
            graph[key] = value
        graphs.append(graph)
    return graphs


def build_frames(
    records: Sequence[Record], basis: Any, cfg: ModelConfig, tcfg: TrainConfig
) -> list[BandFrame]:
    """Band-loss frames (hamdb.ml.band_loss) of each record on its graph's layout.

    k-points: Γ plus `band_kpoints` random ones seeded by the structure id (the same for every
    run); window: the occupied spinless bands (⌈n_electrons/2⌉) plus `band_window`.
    """
    from hamdb.ml.band_loss import band_kpoints, build_band_frame
    from hamdb.ml.graph import block_layout

    frames = []
    for r in records:
        ref = r.h_soc if cfg.kind == "soc" else r.h_none
        layout = block_layout(basis, list(ref.species), ref.edges)
        window = None
        if tcfg.band_window is not None:
            window = math.ceil(r.h_none.n_electrons / 2) + tcfg.band_window
        kpts = band_kpoints(tcfg.band_kpoints, r.structure_id)
        frames.append(
            build_band_frame(
                r.h_none, layout, kpts, tcfg.band_s_min, window, tcfg.band_mode == "diagonal"
            )
        )
    return frames


def _average_neighbours(records: Sequence[Record], cutoff: float) -> float:
    counts = []
    for r in records:
        h = r.h_none
        cart, lattice = h.structure.cart_coords, h.structure.lattice.matrix
        vec = cart[h.edges[:, 1]] + h.edges[:, 2:] @ lattice - cart[h.edges[:, 0]]
        d = np.linalg.norm(vec, axis=1)
        counts.append(float(((d > 1e-4) & (d < cutoff)).sum()) / len(h.structure))
    return max(float(np.mean(counts)), 1.0)


def newest_bundle(session: Any, store_root: Path, name: str) -> tuple[ModelBundle | None, Any]:
    from hamdb.ml.registry import resolve_version, verify_weights

    try:
        row = resolve_version(session, name)
    except ModelError:
        return None, None
    return ModelBundle.load(verify_weights(store_root, row)), row


def train_part(
    session: Any,
    store_root: Path,
    kind: str,
    *,
    name: str = "hamdb",
    data_filter: str | None = None,
    epochs: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    config: dict[str, Any] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    records: Sequence[Record] | None = None,
) -> tuple[Any, History]:
    """Train part `kind` of model `name` and register the new version (returned with history).

    records: already loaded data (tests, benchmarks); otherwise read with `data_filter`.
    """
    if kind not in KINDS:
        raise InputError(f"unknown part {kind!r}; choose one of {', '.join(KINDS)}")
    config = config or {}
    tcfg = TrainConfig(**{**config.get("train", {}), "seed": seed, "device": device})
    if epochs is not None:
        tcfg.epochs = epochs
    base, base_row = newest_bundle(session, store_root, name)
    if kind != "nonsoc" and base is None:
        raise ModelError(
            f"train the 'nonsoc' part of {name!r} first; the {kind} part is added to it"
        )
    selection: dict[str, Any] = {}
    if records is None:
        records, selection = load_records(
            session, _store(store_root), data_filter, need_soc=kind == "soc"
        )
    # End the read transaction before the long training: on SQLite a stale snapshot cannot
    # write the version row later once another writer (a part trained alongside) committed.
    session.rollback()
    records = [r for r in records if kind != "soc" or r.h_soc is not None]
    if not records:
        raise ModelError("no training structures with the Hamiltonians this part needs")
    basis = common_basis(records)
    if base is not None:
        for el, ls in basis.shells.items():
            known = base.basis.shells.get(el)
            if known is not None and tuple(known) != tuple(ls):
                raise ModelError(
                    f"basis mismatch for {el}: data has shells {ls}, model {name!r} has {known}"
                )

    train_idx, val_idx, test_idx = split_by_group(
        [r.group for r in records], tcfg.val_fraction, tcfg.test_fraction, tcfg.split_seed
    )
    # Only elements the network trains on count as known: a test structure with another
    # element is refused at prediction (ModelError), not answered from an untrained embedding.
    seen = sorted({el for k in train_idx for el in records[k].h_none.species})
    # Validate only on structures the model can answer (else the untrained embeddings of a
    # new element, not the fit, pick the "best" epoch); with none left, the training loss.
    val_idx = [k for k in val_idx if set(records[k].h_none.species) <= set(seen)]
    model_opts = dict(config.get("model", {}))
    preset = PRESETS[model_opts.pop("preset", "small")]
    mcfg = ModelConfig(
        kind="soc" if kind == "soc" else "nonsoc",
        shells={el: list(basis.shells[el]) for el in seen},
        basis_name=basis.name,
        valence_electrons=dict(basis.valence_electrons),
        **{**preset, **model_opts},
    )
    train_recs = [records[k] for k in train_idx]
    mcfg.pair_cutoff_ang = pair_cutoff_table([r.h_none for r in records])
    mcfg.edge_cutoff_ang = max(mcfg.pair_cutoff_ang.values()) + 0.5
    mcfg.avg_neighbours = _average_neighbours(train_recs, mcfg.mp_cutoff_ang)
    if kind == "overlap":
        records = [
            Record(r.structure_id, r.group, overlap_as_hamiltonian(r.h_none), None, r.ids)
            for r in records
        ]
    seed_everything(tcfg.seed)
    start_net = _start_from(session, store_root, tcfg.init_from, kind, mcfg)
    if start_net is not None:
        mcfg = start_net.cfg
    graphs = build_graphs(records, basis, mcfg, tcfg.shift_invariant and kind == "nonsoc")
    net = start_net if start_net is not None else HamiltonianNet(mcfg)
    if start_net is None:
        init_from_data(net, [graphs[k] for k in train_idx])
    run_dir = Path(store_root) / "models" / name / "runs" / f"{kind}-seed{tcfg.seed}"
    frames: dict[str, list[BandFrame] | None] = {"train": None, "val": None}
    if tcfg.band_weight > 0 and kind != "overlap":
        for part, idx in (("train", train_idx), ("val", val_idx)):
            frames[part] = build_frames([records[k] for k in idx], basis, mcfg, tcfg)
    trainer = Trainer(
        net,
        [graphs[k] for k in train_idx],
        [graphs[k] for k in val_idx],
        tcfg,
        run_dir,
        frames["train"],
        frames["val"],
    )
    resumed = trainer.try_resume()
    start = time.perf_counter()
    history = trainer.fit(on_epoch)
    seconds = time.perf_counter() - start

    # The newest version now (another part may have been registered while this one trained),
    # read and registered in one write transaction taken at BEGIN: on SQLite a read that then
    # writes fails at once with "database is locked" if another run registers meanwhile.
    session.rollback()
    session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
    base, base_row = newest_bundle(session, store_root, name)
    nets = dict(base.nets) if base is not None else {}
    nets[kind] = trainer.net
    merged_shells = {**(base.basis.shells if base else {}), **{el: basis.shells[el] for el in seen}}
    from hamdb.physics.basis import BasisSet

    full_basis = BasisSet(
        basis.name,
        merged_shells,
        {**(base.basis.valence_electrons if base else {}), **basis.valence_electrons},
    )
    ids = [r.structure_id for r in records]
    part_data = {
        "selection": selection,
        "split": {
            "train": [ids[k] for k in train_idx],
            "val": [ids[k] for k in val_idx],
            "test": [ids[k] for k in test_idx],
        },
        "train_config": tcfg.as_dict(),
        "epochs_run": len(history.epochs),
        "best_epoch": history.best_epoch,
        "stopped_early": history.stopped_early,
        "resumed": resumed,
        "seconds": seconds,
        "seconds_per_epoch": float(np.mean([e["seconds"] for e in history.epochs]))
        if history.epochs
        else None,
    }
    training_data = dict(base_row.training_data or {}) if base_row is not None else {}
    training_data[kind] = part_data
    last = history.epochs[-1] if history.epochs else {}
    best = next((e for e in history.epochs if e["epoch"] == history.best_epoch), last)
    metrics = dict(base_row.metrics or {}) if base_row is not None else {}
    metrics.update({f"{kind}_{k}": v for k, v in best.items() if k.startswith("val_")})
    bundle = ModelBundle(full_basis, nets, {"name": name})
    from hamdb.ml.registry import register_version

    row = register_version(
        session, store_root, name, bundle, training_data=training_data, metrics=metrics
    )
    return row, history


def _start_from(
    session: Any, store_root: Path, spec: str | None, kind: str, cfg: ModelConfig
) -> HamiltonianNet | None:
    """The `kind` network of registry version `spec` to fine-tune (None without a spec).

    Its elements and shells must be those the new training split sees (ModelError otherwise);
    its configuration (size, scales, cut-offs) is kept.
    """
    if spec is None:
        return None
    from hamdb.ml.registry import resolve_version, verify_weights

    row = resolve_version(session, spec)
    bundle = ModelBundle.load(verify_weights(Path(store_root), row))
    net = bundle.nets.get("soc" if kind == "soc" else kind)
    if net is None:
        raise ModelError(f"{spec} has no {kind!r} part to start from")
    if {el: list(ls) for el, ls in net.cfg.shells.items()} != cfg.shells:
        raise ModelError(
            f"{spec}: its {kind} part knows {sorted(net.cfg.shells)}, the training split "
            f"{sorted(cfg.shells)}; fine-tune on the same elements"
        )
    net.train()
    return net


def _store(store_root: Path) -> Any:
    from hamdb.store.store import HamiltonianStore

    return HamiltonianStore(store_root)
