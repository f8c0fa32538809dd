"""A model version on disk: the networks of one prediction in one weights file.

A bundle holds up to three `HamiltonianNet`s trained on the same basis:
  "nonsoc"  the spinless H(R) (required),
  "soc"     the correction ΔH = H_soc − H_nonsoc⊗σ0 (optional: without it predictions are
            spinless),
  "overlap" S(R) learned as a spinless block network (optional: used when the exact overlap
            from the basis is not available).
The file is a plain `torch.save` dict of tensors, numbers and strings (loadable with
`weights_only=True`, no pickled code); its sha256 is what the registry records.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hamdb.errors import ModelError
from hamdb.ml.model import HamiltonianNet, ModelConfig
from hamdb.physics.basis import BasisSet

FORMAT = "hamdb-model/1"
PARTS = ("nonsoc", "soc", "overlap")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ModelBundle:
    """The networks of a model version plus the basis they speak and free-form metadata."""

    basis: BasisSet
    nets: dict[str, HamiltonianNet]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "nonsoc" not in self.nets:
            raise ModelError("a model bundle needs a 'nonsoc' network")
        unknown = set(self.nets) - set(PARTS)
        if unknown:
            raise ModelError(f"unknown bundle parts {sorted(unknown)}; expected {PARTS}")

    @property
    def has_soc(self) -> bool:
        return "soc" in self.nets

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "basis": self.basis.as_dict(),
            "meta": self.meta,
            "parts": {
                name: {
                    "config": net.cfg.as_dict(),
                    "state": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                }
                for name, net in self.nets.items()
            },
        }

    def save(self, path: Path) -> str:
        """Write atomically (temp file, fsync, rename); returns the file's sha256."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.to_dict(), tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(path)
        return file_sha256(path)

    @classmethod
    def load(cls, path: Path, sha256: str | None = None) -> ModelBundle:
        """Read a bundle, checking its sha256 when given (a changed file is an error)."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: model weights file is missing")
        if sha256 is not None and file_sha256(path) != sha256:
            raise ModelError(
                f"{path}: weights file does not match its recorded sha256 {sha256[:12]}…"
            )
        try:
            data = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as exc:  # torch raises many types for a corrupt or foreign file
            raise ModelError(f"{path}: not a hamdb model file ({exc.__class__.__name__})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ModelError(f"{path}: not a {FORMAT} file")
        nets = {}
        for name, part in data["parts"].items():
            net = HamiltonianNet(ModelConfig.from_dict(part["config"]))
            net.load_state_dict(part["state"])
            net.eval()
            nets[name] = net
        return cls(BasisSet.from_dict(data["basis"]), nets, dict(data.get("meta", {})))
