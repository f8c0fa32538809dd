"""Predict SOC Hamiltonians from structures: the API the pipeline builds on (keep it stable).

    predictor = Predictor.load(session, store, "production")   # or "name@3", "name@alias"
    predictor = Predictor.from_path("models/hamdb-small")      # the model shipped with hamdb
    hams = predictor.predict(structures)                       # list[Hamiltonian]
    predictor.model_version_id                                 # registry id (None if unregistered)

Each prediction is the canonical `Hamiltonian` (DESIGN.md §2–3): spin "soc" (complex spinor
blocks, interleaved) when the model has a SOC part, H = H_nonsoc⊗σ0 + ΔH; the overlap S(R)
on the same edges; n_electrons from the basis's valence counts; Hermitian exactly.

Edges: every pair (i, j, R) closer than the longest edge the training data had for that pair
of elements (`pair_cutoff_ang`), so a prediction has the blocks a DFT run would have.
Overlap: the model's learned "overlap" network when it has one (see the issue note for its
band error), else exact from the basis through `hamdb.dft.compute_overlap(structure)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hamdb.errors import ModelError
from hamdb.ml.bundle import ModelBundle
from hamdb.ml.data import check_basis, make_graph, spinor_from_spinless
from hamdb.ml.graph import BlockLayout, periodic_neighbours
from hamdb.ml.model import ModelConfig
from hamdb.ml.network_io import blocks_to_flat, run_network
from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian

BUNDLE_FILE = "model.pt"


def pair_cutoffs(cfg: ModelConfig, species: Sequence[str]) -> np.ndarray:
    """(n, n) edge cut-offs in Å for these sites from the training data's longest edges.

    A pair of known elements never seen together gets r_A + r_B with r_X half the longest
    edge of X with anything (the orbital spheres must overlap for a non-zero block).
    """
    radius: dict[str, float] = {}
    for key, d in cfg.pair_cutoff_ang.items():
        for el in key.split("-"):
            radius[el] = max(radius.get(el, 0.0), d / 2)
    n = len(species)
    out = np.zeros((n, n))
    for i, a in enumerate(species):
        for j, b in enumerate(species):
            key = "-".join(sorted((a, b)))
            out[i, j] = cfg.pair_cutoff_ang.get(key, radius.get(a, 0.0) + radius.get(b, 0.0)) + 1e-3
    return out


def pair_cutoff_table(hams: Sequence[Hamiltonian]) -> dict[str, float]:
    """{"A-B": longest edge in Å} over the training Hamiltonians (A ≤ B alphabetically)."""
    table: dict[str, float] = {}
    for ham in hams:
        species = ham.species
        lattice = ham.structure.lattice.matrix
        cart = ham.structure.cart_coords
        e = ham.edges
        vec = cart[e[:, 1]] + e[:, 2:] @ lattice - cart[e[:, 0]]
        dist = np.linalg.norm(vec, axis=1)
        for (i, j), d in zip(e[:, :2].tolist(), dist.tolist(), strict=True):
            key = "-".join(sorted((species[i], species[j])))
            table[key] = max(table.get(key, 0.0), float(d))
    return table


def _exact_overlap() -> Any:
    """hamdb.dft.compute_overlap(structure) -> Hamiltonian with S, or None where unavailable."""
    try:
        from hamdb import dft
    except ImportError:
        return None
    return getattr(dft, "compute_overlap", None)


class Predictor:
    """A loaded model version: structures in, canonical (SOC) Hamiltonians out."""

    def __init__(
        self,
        bundle: ModelBundle,
        model_version_id: int | None = None,
        spec: str = "",
        metrics: dict[str, Any] | None = None,
    ) -> None:
        self.bundle = bundle
        self.model_version_id = model_version_id
        self.spec = spec
        self.metrics = metrics or {}
        self.batch_size = 8
        self.overlap = "auto"  # "exact": always hamdb.dft.compute_overlap

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, session: Any, store_or_project: Any, spec: str = "production") -> Predictor:
        """The registry version `spec` ("name@version", "name@alias", "name" or an alias).

        store_or_project: a HamiltonianStore, a hamdb Project, or the store folder (Path).
        """
        from hamdb.ml.registry import resolve_version, verify_weights

        store_root = Path(
            getattr(store_or_project, "store_path", None)
            or getattr(store_or_project, "root", store_or_project)
        )
        row = resolve_version(session, spec)
        path = verify_weights(store_root, row)
        bundle = ModelBundle.load(path)
        return cls(bundle, row.id, f"{row.model.name}@{row.version}", row.metrics)

    @classmethod
    def from_path(cls, path: str | Path) -> Predictor:
        """An unregistered bundle: a weights file or a folder holding model.pt (models/<name>)."""
        path = Path(path)
        if path.is_dir():
            path = path / BUNDLE_FILE
        bundle = ModelBundle.load(path)
        return cls(bundle, None, str(path), bundle.meta.get("metrics"))

    # -- prediction ------------------------------------------------------------------------
    @property
    def basis(self) -> BasisSet:
        return self.bundle.basis

    def check(self, structure: Any, basis: BasisSet | None = None) -> None:
        """ModelError naming the element or shells the model cannot handle."""
        species = [site.specie.symbol for site in structure]
        cfg = self.bundle.nets["nonsoc"].cfg
        check_basis(basis or self.basis, species, cfg.shells, cfg.basis_name)
        if basis is not None and basis.name != cfg.basis_name:
            raise ModelError(
                f"basis mismatch: structures use {basis.name!r}, the model was trained on {cfg.basis_name!r}"
            )

    def edges_for(self, structure: Any) -> np.ndarray:
        species = [site.specie.symbol for site in structure]
        cut = pair_cutoffs(self.bundle.nets["nonsoc"].cfg, species)
        edges, _ = periodic_neighbours(structure.lattice.matrix, structure.frac_coords, cut)
        return edges

    def predict(
        self, structures: Sequence[Any], basis: BasisSet | None = None
    ) -> list[Hamiltonian]:
        """Hamiltonians of `structures` (pymatgen), batched through the networks.

        basis: the basis the caller expects (e.g. of its DFT data); a different one is a
        ModelError, as is an element the model never saw.
        """
        for s in structures:
            self.check(s, basis)
        nets = self.bundle.nets
        l_pairs = nets["nonsoc"].cfg.l_pairs
        graphs, layouts = [], []
        for s in structures:
            g, layout = make_graph(s, self.basis, self.edges_for(s), l_pairs)
            graphs.append(g)
            layouts.append(layout)
        with torch.inference_mode():
            outputs = {
                name: run_network(net, graphs, self.batch_size) for name, net in nets.items()
            }
        return [self._assemble(k, s, layouts[k], outputs) for k, s in enumerate(structures)]

    def _assemble(
        self, k: int, structure: Any, layout: BlockLayout, outputs: dict[str, list]
    ) -> Hamiltonian:
        nets = self.bundle.nets
        h0 = blocks_to_flat(nets["nonsoc"], layout, outputs["nonsoc"][k])
        s_flat = self._overlap(k, structure, layout, outputs)
        species = [site.specie.symbol for site in structure]
        sizes = self.basis.orbital_counts(species)
        e = layout.edges
        s_offsets = np.concatenate([[0], np.cumsum(sizes[e[:, 0]] * sizes[e[:, 1]])]).astype(
            np.int64
        )
        spin = "soc" if self.bundle.has_soc else "none"
        if spin == "soc":
            h = spinor_from_spinless(layout, h0) + blocks_to_flat(
                nets["soc"], layout, outputs["soc"][k]
            )
            offsets = 4 * s_offsets
        else:
            h, offsets = h0, s_offsets
        ham = Hamiltonian(
            structure, self.basis, spin, e.copy(), offsets, h, s_flat, s_offsets,
            n_electrons=self.basis.n_valence(species),
            origin={"model": self.spec, "model_version_id": self.model_version_id},
        )  # fmt: skip
        ham.uncertainty_ev = self.metrics.get("gap_mae_ev")  # type: ignore[attr-defined]
        return ham

    def _overlap(
        self, k: int, structure: Any, layout: BlockLayout, outputs: dict[str, list]
    ) -> np.ndarray:
        """S on the prediction's edges: the learned part if the bundle has one, else exact."""
        if "overlap" in outputs and self.overlap != "exact":
            return blocks_to_flat(self.bundle.nets["overlap"], layout, outputs["overlap"][k])
        exact = _exact_overlap()
        if exact is None:
            raise ModelError(
                f"model {self.spec} has no overlap network and hamdb.dft.compute_overlap "
                "(exact S from the basis) is unavailable"
            )
        return _align_overlap(exact(structure), layout, self.basis, structure)


def _align_overlap(
    ref: Hamiltonian, layout: BlockLayout, basis: BasisSet, structure: Any
) -> np.ndarray:
    """The reference overlap's blocks on the prediction's edges (zero where it has none)."""
    species = [site.specie.symbol for site in structure]
    sizes = basis.orbital_counts(species)
    parts = []
    for i, j, *R in layout.edges.tolist():
        e = ref.edge_index.get((i, j, tuple(R)))
        parts.append(ref.s_block(e).ravel() if e is not None else np.zeros(sizes[i] * sizes[j]))
    return np.concatenate(parts) if parts else np.zeros(0)
