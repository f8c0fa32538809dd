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
installed; then the edges are GPAW's. Otherwise the model's learned "overlap" network
(see the issue note for its error) on edges from the training data's cut-offs.
`predictor.overlap = "exact" | "learned"` forces one.

Which of GPAW's edges (`edge_set`, recorded in origin["edge_set"]; a departure from DESIGN.md
§3, whose DFT Hamiltonians keep all): by default "direct", the edges whose orbital spheres
overlap. A DFT run also has the edges where two orbitals merely touch one PAW projector sphere
(three-centre terms), ~60 % of a dzp cell's edges with |S| < 1e-5; zeroing their H and S
blocks in 19 DFT Hamiltonians (2-6 atoms, spinless and SOC; bench/paw_edges.py) moved occupied
bands by at most 0.15 meV and gaps by at most 0.03 meV (exact and s_min = 1e-2 overlap), while
they cost the prediction its size and time. "dft" keeps them.

Network edges: a network's blocks are exactly zero beyond its `zero_beyond_ang` (the shipped
model: 9 Å, SOC part 6 Å), while the exact S reaches further (dzp orbitals: ~10 Å apart, most
edges). The networks therefore run on a sub-graph, the edges within reach of one of them
(`network_edges`, also covering message passing), and the other blocks of H are filled with
zeros: the same H to the bit, at a third of the edges.

Assembly: the networks' shell-pair blocks are turned into DESIGN's basis, made exactly Hermitian
and written into the flat arrays group by group (hamdb.ml.graph), the SOC Hamiltonian from its
real Pauli parts H = (H0 + δH0)⊗σ0 + i Σ_α K_α⊗σ_α in one pass. `precision = "single"` keeps
the networks' float32 and gives a complex64 h (what the store keeps of a prediction; the
workers use it), half the memory and time of the default complex128; origin["precision"] says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hamdb.errors import HamdbError, ModelError
from hamdb.ml.bundle import ModelBundle
from hamdb.ml.data import check_basis, make_graph
from hamdb.ml.graph import (
    BlockLayout,
    LPair,
    SubItems,
    block_layout,
    periodic_neighbours,
    reverse_edges,
    sub_items,
)
from hamdb.ml.irreps import change_of_basis
from hamdb.ml.model import ModelConfig
from hamdb.ml.network_io import run_network
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
#: Å added to a network's reach when choosing the edges it runs on (its own test is float32).
NETWORK_EDGE_MARGIN_ANG = 1e-3


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
    c1, c2 = (change_of_basis(ell).astype(blocks.dtype) for ell in (l1, l2))
    return np.einsum("ai,...ij,bj->...ab", c1, blocks, c2, optimize=True)


@dataclass(frozen=True)
class Prepared:
    """One structure ready for the networks: the graph of the edges they run on (`sub`), the
    layout of all its edges (`full`, the same object when they are all run), where the sub
    items sit in it, and the exact overlap s (flat, on the full edges) or None."""

    graph: Any
    full: BlockLayout
    sub: BlockLayout
    items: SubItems | None
    s: np.ndarray | None


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
        #: "double": h complex128/float64; "single": complex64/float32 from the networks'
        #: float32 output (what the store keeps of a prediction), half the memory and time
        self.precision = "double"
        #: with the exact overlap, "direct": the edges whose orbital spheres overlap; "dft": a
        #: DFT run's edges, also those where both orbitals only touch one PAW projector sphere
        #: (see the module docstring); origin["edge_set"] records which
        self.edge_set = "direct"

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
        ref = exact_overlap(
            structure,
            settings.basis,
            settings.xc,
            settings.grid_spacing,
            paw_edges=self.edge_set == "dft",
        )
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
        names = [n for n in nets if n != "overlap" or not exact]
        prepared = [self.prepare(s, exact, names) for s in structures]
        outputs = self.run_networks([p.graph for p in prepared], names)
        return [self.assemble(k, s, prepared[k], outputs) for k, s in enumerate(structures)]

    def prepare(
        self, structure: Any, exact: bool, names: Sequence[str], overlap: Any = None
    ) -> Prepared:
        """Edges, exact overlap (when `exact`; `overlap`: that of `reference_overlap`,
        already computed), graph and layouts of one structure."""
        ref = overlap if overlap is not None or not exact else self.reference_overlap(structure)
        edges = ref.edges if ref is not None else self.edges_for(structure)
        on = self.network_edges(structure, edges, names)
        l_pairs = self.bundle.nets["nonsoc"].cfg.l_pairs
        graph, sub = make_graph(structure, self.basis, edges[on], l_pairs)
        if len(on) == len(edges):
            full, items = sub, None
        else:
            species = [site.specie.symbol for site in structure]
            full = block_layout(self.basis, species, edges)
            items = sub_items(full, sub, on)
        return Prepared(graph, full, sub, items, ref.s if ref is not None else None)

    def run_networks(self, graphs: Sequence[Any], names: Sequence[str]) -> dict[str, list]:
        """{network: per-graph output blocks}, batched by `batch_size`."""
        double = self.precision != "single"
        with torch.inference_mode():
            return {
                n: run_network(self.bundle.nets[n], graphs, self.batch_size, double=double)
                for n in names
            }

    def network_edges(
        self, structure: Any, edges: np.ndarray, names: Sequence[str] | None = None
    ) -> np.ndarray:
        """Indices of the edges the networks `names` run on, in edge order: those shorter than
        the longest a network predicts or passes messages along (`zero_beyond_ang`,
        `mp_cutoff_ang`), and their reverses. The blocks of the other edges are exactly zero
        (the networks' own rule), so they are filled in, not computed."""
        cfgs = [self.bundle.nets[n].cfg for n in (names or self.bundle.nets)]
        if any(c.zero_beyond_ang is None for c in cfgs) or not len(edges):
            return np.arange(len(edges))
        reach = max(max(c.zero_beyond_ang or 0.0, c.mp_cutoff_ang) for c in cfgs)
        e = np.asarray(edges, dtype=np.int64)
        lattice = np.asarray(structure.lattice.matrix, dtype=float)
        cart = np.asarray(structure.cart_coords, dtype=float)
        length = np.linalg.norm(cart[e[:, 1]] + e[:, 2:] @ lattice - cart[e[:, 0]], axis=1)
        keep = length < reach + NETWORK_EDGE_MARGIN_ANG
        keep |= keep[reverse_edges(e)]
        return np.nonzero(keep)[0]

    def assemble(
        self, k: int, structure: Any, prepared: Prepared, outputs: dict[str, list]
    ) -> Hamiltonian:
        """The Hamiltonian of graph k on its full layout from the network blocks on its
        sub-layout; the blocks of the edges no network reaches are zero."""
        full, sub, items, s_flat = prepared.full, prepared.sub, prepared.items, prepared.s
        exact = s_flat is not None
        if s_flat is None:
            s_blocks = {lp: to_design_basis(b, *lp) for lp, b in outputs["overlap"][k].items()}
            s_flat = full.scatter(sub.hermitise_blocks(s_blocks), np.float64, sub=items)
        species = [site.specie.symbol for site in structure]
        s_offsets = full.offsets
        h0: dict[LPair, np.ndarray] = {
            lp: to_design_basis(b, *lp) for lp, b in outputs["nonsoc"][k].items()
        }
        if self.bundle.has_soc:
            spin = "soc"
            parts = {lp: to_design_basis(b, *lp) for lp, b in outputs["soc"][k].items()}
            for lp, b in h0.items():
                parts[lp][:, 0] += b  # H0 + δH0 is the σ0 part
            h = full.scatter_pauli(sub.hermitise_pauli(parts), sub=items)
            offsets = 4 * s_offsets
        else:
            spin = "none"
            real = np.float32 if self.precision == "single" else np.float64
            h, offsets = full.scatter(sub.hermitise_blocks(h0), real, sub=items), s_offsets
        ham = Hamiltonian(
            structure,
            self.basis,
            spin,
            full.edges.copy(),
            offsets,
            h,
            s_flat,
            s_offsets,
            n_electrons=self.basis.n_valence(species),
            origin={
                "model": self.spec,
                "model_version_id": self.model_version_id,
                "precision": self.precision,
                "edge_set": self.edge_set if exact else "training",
            },
        )
        ham.uncertainty_ev = next(  # type: ignore[attr-defined]
            (self.metrics[k] for k in UNCERTAINTY_METRICS if k in self.metrics), None
        )
        return ham
