"""Training loop: split by material group, MAE/MSE over real matrix elements, checkpoints,
resume after a kill, early stopping, bit-for-bit repeatable runs with a seed.

Loss over the shell-pair groups (every real matrix element counts once, whatever its block):
  nonsoc: L = ⟨|H_pred − H_dft|^p⟩;
  soc:    L = ⟨|δH0_pred − δH0|^p⟩ + soc_weight · ⟨|K_pred − K|^p⟩,  p = 1 (MAE) or 2 (MSE),
so the small SOC part (meV) is weighted on its own and not drowned by the scalar correction.
Zero-point-free non-SOC loss (`shift_invariant`): GPAW puts the zero of a periodic H at the
mean electrostatic potential, so H_dft = H_true + ΔE·S with a per-structure ΔE no local network
can know, and bands, gaps and Z2 do not depend on it. Per structure g the residual is then
  r = H_pred − H_dft + ΔE_g·S,  ΔE_g = ⟨H_dft − H_pred, S⟩_g / ⟨S, S⟩_g  (least squares),
i.e. the part of H_pred − H_dft orthogonal to S, and L = ⟨|r|^p⟩. ΔE_g is not detached: the
loss is exactly invariant under H_pred → H_pred + c·S, so its true gradient has no component
along S; for MSE a detached ΔE gives the same gradient (∂L/∂ΔE = 0 at the least-squares ΔE),
for MAE it would push the prediction along S, a direction the loss cannot see.
The band term (below) still sees ΔE (it shifts every band); it is off by default.
Optional band term (`band_weight` > 0, frames from `hamdb.ml.band_loss`): + band_weight · B
with B = √L_band (eV, the RMS band-error bound) for MAE and L_band (eV²) for MSE, where L_band is
the orthogonal-frame loss ‖W_k†(H_pred(k) − H_dft(k))W_k‖²/m at a few k per structure.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch

from hamdb.errors import ModelError
from hamdb.ml.band_loss import BandFrame, batch_band_loss
from hamdb.ml.data import HamGraph
from hamdb.ml.model import MAX_SHELLS, HamiltonianNet, seed_everything


@dataclass
class TrainConfig:
    """Optimisation settings (stored with the version). Energies in eV."""

    epochs: int = 300
    batch_size: int = 4
    lr: float = 3e-3
    lr_min: float = 1e-4
    weight_decay: float = 0.0
    loss: str = "mae"
    soc_weight: float = 10.0
    patience: int = 60
    seed: int = 0  # initial weights and batch order
    split_seed: int = 0  # train/val/test split: members of a seed ensemble share the test set
    device: str = "cpu"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    max_minutes: float | None = None  # wall-clock budget; the best weights so far are kept
    band_weight: float = 0.0  # weight of the band term (0: element loss only)
    band_s_min: float = 1e-2  # overlap filter of its frames, relative to λ_max(S(k))
    band_kpoints: int = 4  # random k per structure (plus Γ) of the band term
    band_window: int | None = None  # bands above the occupied ones in W (None: all kept)
    band_mode: str = "frame"  # "frame": ‖W†ΔHW‖²; "diagonal": first-order eigenvalue shifts
    # Non-SOC loss blind to a per-structure ΔE·S (module doc); graphs then need `s_<l1><l2>`.
    # Off by default: fine-tuning hamdb-small with it cut the held-out band-shape error by a
    # quarter, but the test insulator stayed gapless where the plain loss opened its gap
    # (models/hamdb-small/MODEL_CARD.md, "Zero-point-free loss").
    shift_invariant: bool = False
    init_from: str | None = None  # registry version whose part of this kind is fine-tuned
    model: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_by_group(
    groups: Sequence[Any], val_fraction: float, test_fraction: float, seed: int
) -> tuple[list[int], list[int], list[int]]:
    """Train/val/test sample indices with every material group wholly in one part.

    Groups are shuffled with `seed` and dealt out until each part holds its share of the
    samples, so strained copies of one material never straddle train and test (DESIGN.md §4).
    """
    unique = sorted({str(g) for g in groups})
    rng = np.random.default_rng(seed)
    rng.shuffle(unique)
    n = len(groups)
    by_group: dict[str, list[int]] = {}
    for k, g in enumerate(groups):
        by_group.setdefault(str(g), []).append(k)
    test: list[int] = []
    val: list[int] = []
    train: list[int] = []
    for g in unique:
        if len(unique) >= 3 and len(test) < test_fraction * n:
            test += by_group[g]
        elif len(unique) >= 3 and len(val) < val_fraction * n:
            val += by_group[g]
        else:
            train += by_group[g]
    return sorted(train), sorted(val), sorted(test)


def zero_point_shifts(
    pred: dict[tuple[int, int], torch.Tensor], batch: Batch
) -> dict[tuple[int, int], torch.Tensor]:
    """ΔE_g·S of each shell-pair group (eV): the least-squares zero-point shift per structure.

    ΔE_g = ⟨H_dft − H_pred, S⟩_g / ⟨S, S⟩_g over all elements of structure g (the overlap
    targets `s_<l1><l2>` sit in the graphs beside `y_<l1><l2>`, same layout and basis; the
    inner product is basis-independent). Differentiable in `pred`.
    """
    num = torch.zeros(batch.num_graphs, dtype=torch.float64)
    den = torch.zeros(batch.num_graphs, dtype=torch.float64)
    graph_of: dict[tuple[int, int], torch.Tensor] = {}
    for (l1, l2), p in pred.items():
        key = f"s_{l1}{l2}"
        if key not in batch:
            raise ModelError(
                "shift_invariant needs the overlap blocks in the graphs; build them with "
                "training_run.build_graphs(..., with_overlap=True)"
            )
        s = batch[key].to(torch.float64)
        y = batch[f"y_{l1}{l2}"].to(torch.float64)
        edge = batch[f"blk_{l1}{l2}_edge"]
        g = batch.batch[batch.edge_index[0][edge]] if edge.numel() else edge
        graph_of[(l1, l2)] = g
        dims = tuple(range(1, s.dim()))
        num = num.index_add(0, g, ((y - p.to(torch.float64)) * s).sum(dim=dims))
        den = den.index_add(0, g, (s * s).sum(dim=dims))
    delta = num / den.clamp_min(1e-30)
    out = {}
    for (l1, l2), p in pred.items():
        s = batch[f"s_{l1}{l2}"]
        shape = (-1,) + (1,) * (s.dim() - 1)
        out[(l1, l2)] = delta[graph_of[(l1, l2)]].view(shape).to(p.dtype) * s.to(p.dtype)
    return out


def element_loss(
    pred: dict[tuple[int, int], torch.Tensor],
    batch: Batch,
    kind: str,
    loss: str,
    soc_weight: float,
    shift_invariant: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss and its parts (MAE in eV of each channel, for the progress line).

    shift_invariant (non-SOC only): residuals after each structure's least-squares ΔE·S
    (module docstring); "h" is then the shifted MAE.
    """
    power = 1 if loss == "mae" else 2
    shifts = zero_point_shifts(pred, batch) if shift_invariant and kind == "nonsoc" else {}
    sums = {"h": 0.0, "k": 0.0}
    counts = {"h": 0, "k": 0}
    parts: dict[str, torch.Tensor] = {}
    for (l1, l2), p in pred.items():
        y = batch[f"y_{l1}{l2}"].to(p.dtype)
        residual = p - y
        if (l1, l2) in shifts:
            residual = residual + shifts[(l1, l2)]
        diff = residual.abs()
        chunks = {"h": diff} if kind == "nonsoc" else {"h": diff[:, :1], "k": diff[:, 1:]}
        for name, d in chunks.items():
            term = d.pow(power).sum()
            parts[name] = parts.get(name, 0) + term  # type: ignore[assignment]
            sums[name] += float(d.detach().sum())
            counts[name] += d.numel()
    total = parts["h"] / max(counts["h"], 1)
    if kind == "soc":
        total = total + soc_weight * parts["k"] / max(counts["k"], 1)
    maes = {name: sums[name] / counts[name] for name in sums if counts[name]}
    return total, maes


def init_from_data(net: HamiltonianNet, graphs: Sequence[HamGraph]) -> None:
    """Start the output scales and the atomic levels from the training targets.

    scale_ev = std of the off-site targets; onsite_shift[(Z, a, b)] (shells a, b of one l) =
    mean diagonal of the on-site (Z, a, b) blocks (non-SOC; a ≠ b too: the two zetas of a
    shell overlap, their on-site block is eV-sized); onsite_scale_ev = std of the on-site
    targets around those levels. The network then learns the environment around them.
    """
    values, levels = [], {}
    onsite_blocks: list[tuple[torch.Tensor, list[int] | None]] = []
    for g in graphs:
        onsite = (g.edge_index[0] == g.edge_index[1]) & (g.edge_shift == 0).all(dim=1)
        for l1, l2 in net.cfg.l_pairs:
            y = g[f"y_{l1}{l2}"]
            if y.numel() == 0:
                continue
            is_on = onsite[g[f"blk_{l1}{l2}_edge"]]
            values.append(y[~is_on].reshape(-1))
            keys: list[int] | None = None
            if net.cfg.kind == "nonsoc" and l1 == l2:
                a, b = g[f"blk_{l1}{l2}_a"], g[f"blk_{l1}{l2}_b"]
                z = g.z[g.edge_index[0][g[f"blk_{l1}{l2}_edge"]]]
                diag = y.diagonal(dim1=-2, dim2=-1).mean(dim=-1)
                keys = []
                for k in torch.nonzero(is_on).flatten().tolist():
                    key = (int(z[k]) * MAX_SHELLS + int(a[k])) * MAX_SHELLS + int(b[k])
                    levels.setdefault(key, []).append(float(diag[k]))
                    keys.append(key)
            onsite_blocks.append((y[is_on], keys))
    if values:
        flat = torch.cat(values)
        scale = float(flat.std()) if flat.numel() > 1 else 1.0
        net.cfg.scale_ev = scale if math.isfinite(scale) and scale > 1e-8 else 1.0
    mean_level = {key: float(np.mean(vals)) for key, vals in levels.items()}
    with torch.no_grad():
        for key, level in mean_level.items():
            net.onsite_shift.weight[key, 0] = level
    residuals = []
    for y, keys in onsite_blocks:
        if keys is not None and len(y):
            eye = torch.eye(y.shape[-1], dtype=y.dtype)
            y = y - torch.tensor([mean_level[k] for k in keys], dtype=y.dtype)[:, None, None] * eye
        residuals.append(y.reshape(-1))
    if residuals:
        flat = torch.cat(residuals)
        scale = float(flat.std()) if flat.numel() > 1 else 1.0
        net.cfg.onsite_scale_ev = scale if math.isfinite(scale) and scale > 1e-8 else 1.0


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)


@dataclass
class History:
    """Per-epoch losses (eV) and seconds; what `fit` returns and the checkpoint stores."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_val: float = float("inf")
    best_epoch: int = -1
    stopped_early: bool = False


class Trainer:
    """Fits a `HamiltonianNet` on graphs with targets; `fit` resumes from `checkpoint_dir`."""

    def __init__(
        self,
        net: HamiltonianNet,
        train: Sequence[HamGraph],
        val: Sequence[HamGraph],
        cfg: TrainConfig,
        checkpoint_dir: Path | None = None,
        train_frames: Sequence[BandFrame | None] | None = None,
        val_frames: Sequence[BandFrame | None] | None = None,
    ) -> None:
        self.net = net.to(cfg.device)
        self.train, self.val, self.cfg = list(train), list(val), cfg
        self.frames = {"train": train_frames, "val": val_frames}
        self.checkpoint_dir = checkpoint_dir
        self.opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.opt, T_max=max(cfg.epochs, 1), eta_min=cfg.lr_min
        )
        self.history = History()
        self.best_state: dict[str, torch.Tensor] = {
            k: v.detach().clone() for k, v in net.state_dict().items()
        }
        self.start_epoch = 0

    # -- checkpoints ---------------------------------------------------------------------
    def _checkpoint_path(self) -> Path | None:
        return self.checkpoint_dir / "checkpoint.pt" if self.checkpoint_dir else None

    def save_checkpoint(self, epoch: int) -> None:
        path = self._checkpoint_path()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_save(
            {
                "epoch": epoch,
                "model": self.net.state_dict(),
                "scale_ev": self.net.cfg.scale_ev,
                "onsite_scale_ev": self.net.cfg.onsite_scale_ev or 0.0,
                "best": self.best_state,
                "opt": self.opt.state_dict(),
                "sched": self.sched.state_dict(),
                "history": json.dumps(asdict(self.history)),
                "train_config": json.dumps(self.cfg.as_dict(), sort_keys=True),
            },
            path,
        )

    def try_resume(self) -> bool:
        """Continue a killed run from its last finished epoch; False when there is none."""
        path = self._checkpoint_path()
        if path is None or not path.is_file():
            return False
        state = torch.load(path, weights_only=True)
        if state["train_config"] != json.dumps(self.cfg.as_dict(), sort_keys=True):
            raise ModelError(
                f"{path}: checkpoint of a run with other settings; remove it or use another --name"
            )
        self.net.cfg.scale_ev = float(state["scale_ev"])
        self.net.cfg.onsite_scale_ev = float(state["onsite_scale_ev"]) or None
        self.net.load_state_dict(state["model"])
        self.best_state = state["best"]
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        hist = json.loads(state["history"])
        self.history = History(**hist)
        self.start_epoch = int(state["epoch"]) + 1
        return True

    # -- loop ----------------------------------------------------------------------------
    def _batches(
        self, graphs: Sequence[HamGraph], epoch: int, shuffle: bool
    ) -> list[tuple[Batch, list[int]]]:
        """Batches and the indices of their graphs in `graphs`."""
        order = list(range(len(graphs)))
        if shuffle:
            gen = torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch)
            order = torch.randperm(len(graphs), generator=gen).tolist()
        size = self.cfg.batch_size
        return [
            (
                Batch.from_data_list([graphs[k] for k in order[s : s + size]]).to(self.cfg.device),
                order[s : s + size],
            )
            for s in range(0, len(order), size)
        ]

    def _band_term(
        self,
        pred: dict[tuple[int, int], torch.Tensor],
        batch: Batch,
        frames: Sequence[BandFrame | None] | None,
        index: list[int],
    ) -> torch.Tensor | None:
        """B of the batch (module docstring), or None without frames."""
        if not frames or self.cfg.band_weight <= 0:
            return None
        sq = batch_band_loss(pred, batch, [frames[k] for k in index], self.net.cfg.kind)
        return torch.sqrt(sq + 1e-12) if self.cfg.loss == "mae" else sq

    def evaluate(self, graphs: Sequence[HamGraph], part: str | None = None) -> dict[str, float]:
        """Mean absolute errors (eV) of the real part ("h") and SOC part ("k") over graphs,
        and with band frames of `part` ("train"/"val") the band term ("band", eV or eV²)."""
        self.net.eval()
        tot: dict[str, float] = {}
        frames = self.frames.get(part or "")
        with torch.no_grad():
            for batch, index in self._batches(graphs, 0, shuffle=False):
                pred = self.net(batch)
                _, maes = element_loss(
                    pred, batch, self.net.cfg.kind, "mae", 1.0, self.cfg.shift_invariant
                )
                band = self._band_term(pred, batch, frames, index)
                if band is not None:
                    maes["band"] = float(band)
                n = batch.num_graphs
                for k, v in maes.items():
                    tot[k] = tot.get(k, 0.0) + v * n
        return {k: v / max(len(graphs), 1) for k, v in tot.items()}

    def _score(self, maes: dict[str, float]) -> float:
        score = maes.get("h", 0.0) + self.cfg.band_weight * maes.get("band", 0.0)
        if self.net.cfg.kind == "soc":
            score += self.cfg.soc_weight * maes.get("k", 0.0)
        return score

    def fit(self, on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> History:
        """Train until `epochs` or until the validation score stalls for `patience` epochs."""
        seed_everything(self.cfg.seed)
        began = time.perf_counter()
        for epoch in range(self.start_epoch, self.cfg.epochs):
            if (
                self.cfg.max_minutes is not None
                and time.perf_counter() - began > 60 * self.cfg.max_minutes
            ):
                self.history.stopped_early = True
                break
            torch.manual_seed(self.cfg.seed * 7919 + epoch)
            start = time.perf_counter()
            self.net.train()
            train_sum, n_batches = {}, 0
            for batch, index in self._batches(self.train, epoch, shuffle=True):
                self.opt.zero_grad()
                pred = self.net(batch)
                loss, maes = element_loss(
                    pred,
                    batch,
                    self.net.cfg.kind,
                    self.cfg.loss,
                    self.cfg.soc_weight,
                    self.cfg.shift_invariant,
                )
                band = self._band_term(pred, batch, self.frames["train"], index)
                if band is not None:
                    loss = loss + self.cfg.band_weight * band
                    maes["band"] = float(band.detach())
                loss.backward()
                self.opt.step()
                n_batches += 1
                for k, v in maes.items():
                    train_sum[k] = train_sum.get(k, 0.0) + v
            self.sched.step()
            row = {f"train_{k}": v / max(n_batches, 1) for k, v in train_sum.items()}
            val = self.evaluate(self.val, "val") if self.val else {k[6:]: v for k, v in row.items()}
            row.update({f"val_{k}": v for k, v in val.items()})
            row["epoch"] = epoch
            row["seconds"] = time.perf_counter() - start
            self.history.epochs.append(row)
            score = self._score(val)
            if score < self.history.best_val:
                self.history.best_val, self.history.best_epoch = score, epoch
                self.best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
            if on_epoch:
                on_epoch(epoch, row)
            stalled = epoch - self.history.best_epoch >= self.cfg.patience
            self.history.stopped_early = stalled
            self.save_checkpoint(epoch)
            if stalled:
                break
        self.net.load_state_dict(self.best_state)
        return self.history


def progress_printer(
    total: int,
) -> tuple[Callable[[int, dict[str, float]], None], Callable[[], None]]:
    """A rich progress bar with the live loss on a terminal; silent otherwise (CI, pipes)."""
    if not sys.stderr.isatty():
        return (lambda epoch, row: None), (lambda: None)
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]epoch {task.completed}/{task.total}"),
        BarColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeRemainingColumn(),
        transient=False,
    )
    task = bar.add_task("train", total=total, loss="")
    bar.start()

    def update(epoch: int, row: dict[str, float]) -> None:
        text = " ".join(
            f"{k}={1000 * v:.2f}meV" for k, v in row.items() if k.startswith(("train_", "val_"))
        )
        bar.update(task, completed=epoch + 1, loss=text)

    return update, bar.stop
