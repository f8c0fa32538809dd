"""Predict SOC Hamiltonians from structures: the API the pipeline builds on (keep it stable).

    predictor = Predictor.load(session, store, "production")   # or "name@3", "name@alias"
    predictor = Predictor.shipped()                            # models/hamdb-small, no registry
    hams = predictor.predict(structures)                       # list[Hamiltonian]
    predictor.model_version_id                                 # registry id (None if unregistered)

Each prediction is the canonical `Hamiltonian` (DESIGN.md §2–3): spin "soc" (complex spinor
blocks, interleaved) when the model has a SOC part, H = H_nonsoc⊗σ0 + ΔH; the overlap S(R)
on the same edges; n_electrons from the basis's valence counts; Hermitian exactly.

Edges: every pair (i, j, R) closer than the longest edge the training data had for that pair
of elements (`pair_cutoff_ang`), so a prediction has the blocks a DFT run would have.
Overlap: exact from the basis through GPAW (`hamdb.dft.gpaw_overlap.exact_overlap`, no SCF;
GPAW's tables cached per element set in the process) for a GPAW-basis model where GPAW is
installed; then the edges are exactly GPAW's. Otherwise the model's learned "overlap" network
(see the issue note for its error) on edges from the training data's cut-offs.
`predictor.overlap = "exact" | "learned"` forces one.

Assembly: the networks' shell-pair blocks are turned into DESIGN's basis, made exactly Hermitian
and written into the flat arrays group by group (hamdb.ml.graph), the SOC Hamiltonian from its
real Pauli parts H = (H0 + δH0)⊗σ0 + i Σ_α K_α⊗σ_α in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hamdb.errors import HamdbError, ModelError
from hamdb.ml.bundle import ModelBundle
from hamdb.ml.data import check_basis, make_graph
from hamdb.ml.graph import BlockLayout, LPair, periodic_neighbours
from hamdb.ml.irreps import change_of_basis
from hamdb.ml.model import ModelConfig
from hamdb.ml.network_io import blocks_to_flat, run_network
from hamdb.ml.shipped import shipped_models_dir
from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian

BUNDLE_FILE = "model.pt"
#: The models shipped with hamdb (<name>/model.pt): in the installed package (a wheel or
#: `pip install .`), else models/ of a source checkout (editable install); hamdb.ml.shipped.
SHIPPED_MODELS_DIR = shipped_models_dir()
SHIPPED_MODEL = "hamdb-small"
#: A prediction's own uncertainty (eV) without an ensemble, the first of these held-out
#: metrics the version has: the gap error on insulators (what a candidate is), overlap-filtered
#: as predictions are screened; gap_mae_ev averages over metals too, where it is ~0.
UNCERTAINTY_METRICS = ("insulator_gap_mae_filtered_ev", "insulator_gap_mae_ev", "gap_mae_ev")


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


def _gpaw_installed() -> bool:
    """GPAW is an optional dependency (the [dft] extra); the exact overlap needs it."""
    import importlib.util

    return importlib.util.find_spec("gpaw") is not None


def to_design_basis(blocks: np.ndarray, l1: int, l2: int) -> np.ndarray:
    """e3nn-basis blocks (..., 2l1+1, 2l2+1) -> DESIGN basis, C_l1 · B · C_l2ᵀ as two GEMMs
    over all blocks at once (a batched matmul of tiny matrices is several times slower)."""
    c1, c2 = change_of_basis(l1), change_of_basis(l2)
    return np.einsum("ai,...ij,bj->...ab", c1, blocks, c2, optimize=True)


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
        self.overlap = "auto"  # or "exact" (GPAW's S) or "learned" (the overlap network)

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

    @classmethod
    def shipped(cls, name: str = SHIPPED_MODEL) -> Predictor:
        """The model shipped in models/<name> (no registry needed)."""
        folder = SHIPPED_MODELS_DIR / name
        if not (folder / BUNDLE_FILE).is_file():
            raise ModelError(f"{folder}: no shipped model {name!r} here (reinstall hamdb)")
        return cls.from_path(folder)

    # -- prediction ------------------------------------------------------------------------
    @property
    def basis(self) -> BasisSet:
        return self.bundle.basis

    def check(self, structure: Any, basis: BasisSet | None = None) -> None:
        """ModelError naming the element or shells the model cannot handle."""
        species = [site.specie.symbol for site in structure]
        for cfg in (net.cfg for net in self.bundle.nets.values()):
            check_basis(basis or self.basis, species, cfg.shells, cfg.basis_name)
        cfg = self.bundle.nets["nonsoc"].cfg
        if basis is not None and basis.name != cfg.basis_name:
            raise ModelError(
                f"basis mismatch: structures use {basis.name!r}, "
                f"the model was trained on {cfg.basis_name!r}"
            )

    def edges_for(self, structure: Any) -> np.ndarray:
        """(i, j, R) edges from the training data's longest edge per element pair."""
        species = [site.specie.symbol for site in structure]
        cut = pair_cutoffs(self.bundle.nets["nonsoc"].cfg, species)
        edges, _ = periodic_neighbours(structure.lattice.matrix, structure.frac_coords, cut)
        return edges

    def use_exact_overlap(self) -> bool:
        """Exact S from GPAW ("auto": when GPAW is there and speaks the model's basis)."""
        if self.overlap == "learned":
            return False
        if self.overlap == "exact":
            return True
        if "overlap" in self.bundle.nets and not self.basis.name.startswith("gpaw"):
            return False
        return self.basis.name.startswith("gpaw") and _gpaw_installed()

    def reference_overlap(self, structure: Any) -> Any:
        """hamdb.dft's exact S(R) and its edges for `structure` (`gpaw_overlap.Overlap`)."""
        if not _gpaw_installed():
            raise ModelError(
                f"model {self.spec}: the exact overlap needs GPAW (hamdb.dft.gpaw_overlap), "
                "which is not installed here (pip install 'hamdb[dft]')"
            )
        from hamdb.dft.gpaw_lcao import LcaoSettings, validate_structure
        from hamdb.dft.gpaw_overlap import exact_overlap

        settings = LcaoSettings(basis=self.basis.name.removeprefix("gpaw-"))
        try:
            validate_structure(structure, settings)
        except HamdbError as exc:
            raise ModelError(str(exc)) from None
        ref = exact_overlap(structure, settings.basis, settings.xc, settings.grid_spacing)
        if ref.basis.name != self.basis.name:
            raise ModelError(
                f"basis mismatch: GPAW gives {ref.basis.name!r}, "
                f"the model speaks {self.basis.name!r}"
            )
        return ref

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
        exact = self.use_exact_overlap()
        if not exact and "overlap" not in nets:
            raise ModelError(
                f"model {self.spec} has no overlap network and the exact overlap is unavailable"
            )
        l_pairs = nets["nonsoc"].cfg.l_pairs
        graphs, layouts, overlaps = [], [], []
        for s in structures:
            ref = self.reference_overlap(s) if exact else None
            edges = ref.edges if ref is not None else self.edges_for(s)
            g, layout = make_graph(s, self.basis, edges, l_pairs)
            graphs.append(g)
            layouts.append(layout)
            overlaps.append(ref.s if ref is not None else None)
        names = [n for n in nets if n != "overlap" or not exact]
        with torch.inference_mode():
            outputs = {n: run_network(nets[n], graphs, self.batch_size) for n in names}
        return [
            self._assemble(k, s, layouts[k], outputs, overlaps[k]) for k, s in enumerate(structures)
        ]

    def _assemble(
        self,
        k: int,
        structure: Any,
        layout: BlockLayout,
        outputs: dict[str, list],
        s_flat: np.ndarray | None,
    ) -> Hamiltonian:
        nets = self.bundle.nets
        if s_flat is None:
            s_flat = blocks_to_flat(nets["overlap"], layout, outputs["overlap"][k])
        species = [site.specie.symbol for site in structure]
        s_offsets = layout.offsets
        h0: dict[LPair, np.ndarray] = {
            lp: to_design_basis(b, *lp) for lp, b in outputs["nonsoc"][k].items()
        }
        if self.bundle.has_soc:
            spin = "soc"
            parts = {lp: to_design_basis(b, *lp) for lp, b in outputs["soc"][k].items()}
            for lp, b in h0.items():
                parts[lp][:, 0] += b  # H0 + δH0 is the σ0 part
            h = layout.scatter_pauli(layout.hermitise_pauli(parts))
            offsets = 4 * s_offsets
        else:
            spin = "none"
            h, offsets = layout.scatter(layout.hermitise_blocks(h0)), s_offsets
        ham = Hamiltonian(
            structure,
            self.basis,
            spin,
            layout.edges.copy(),
            offsets,
            h,
            s_flat,
            s_offsets,
            n_electrons=self.basis.n_valence(species),
            origin={"model": self.spec, "model_version_id": self.model_version_id},
        )
        ham.uncertainty_ev = next(  # type: ignore[attr-defined]
            (self.metrics[k] for k in UNCERTAINTY_METRICS if k in self.metrics), None
        )
        return ham
