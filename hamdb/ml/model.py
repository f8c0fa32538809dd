"""The E(3)-equivariant network: crystal graph in, H(R) blocks per shell pair out.

Architecture (ideas from NequIP, DeepH-E3 and Uni-HamGNN; written from the formulas):

1. Species embedding: Z = 1..MAX_Z -> scalars h_i^0 (irreps `Cx0e`).
2. Interaction layers (NequIP-style), on edges shorter than `mp_cutoff_ang`:
       m_i = Σ_j  TP_{w(|r_ij|)}( h_j ⊗ Y(r̂_ij) ) / √⟨n_neighbours⟩,
       h_i ← h_i + Gate( Lin(m_i) + Lin(h_i) ),
   w = MLP(Bessel(|r_ij|)·envelope) so the filter is smooth at the cut-off; Y the real
   spherical harmonics up to 2·l_max of the basis. Every operation maps irreps to irreps, so
   the features rotate with the crystal (E(3) equivariance, parity included).
3. Edge features for every (i, j, R) block, the on-site ones (i, i, 0) from the node alone:
       x_ij = Lin( TP_w(h_i ⊗ Y(r̂_ij)) + TP_w'(h_j ⊗ Y(r̂_ij)) ) + TP(h_i ⊗ h_j),
       x_ii = TP(h_i ⊗ h_i) + Lin(h_i).
4. Heads per shell pair (l1, l2), grouped over the batch (no padding): the coefficients of
   the irreps of l1 ⊗ l2 (parity (−1)^{l1+l2}) are channel mixes of x_e with weights from an
   invariant MLP of the two shells' embeddings (element, shell index), the edge length and an
   on-site flag; Clebsch–Gordan tensors (`irreps.block_tensor`) turn them into blocks.
   The SOC model has a second head producing (l1 ⊗ l2) ⊗ 1e, mapped to (K_x, K_y, K_z).
5. Exact symmetry of the output: H_ij(R) = (B_ij(R) + B_ji(−R)ᵀ)/2 for the real part and
   K_ij(R) = (B_ij(R) − B_ji(−R)ᵀ)/2 for the SOC part, so H is Hermitian to the last bit.

Blocks come out in e3nn's basis; `hamdb.ml.data` converts to DESIGN.md's order.
"""

# ruff: noqa: E741  (l is the angular momentum quantum number, as in the physics)

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from e3nn import nn as enn
from e3nn import o3
from torch import nn

from hamdb.ml.irreps import axial_block_irreps, axial_block_tensor, block_irreps, block_tensor

MAX_Z = 100
MAX_SHELLS = 12
ModelKind = Literal["nonsoc", "soc"]
#: e3nn's einsum optimisation costs seconds per module at build time and gains little for
#: these small irreps (measured: 8.5 of 13.9 s of building a network, on a loaded CPU).
FAST_BUILD = {"_optimize_einsums": False}


@dataclass
class ModelConfig:
    """Size and physics of a network; stored with the weights (JSON) so a version rebuilds.

    kind: "nonsoc" predicts the real spinless H(R); "soc" the correction ΔH = δH0⊗σ0 + Σ iK⊗σ.
    shells: element -> l of each shell (the basis the model was trained on).
    basis_name: name of that basis, checked against the structures' basis at prediction.
    hidden: node irreps; edge_mul: multiplicity of each edge irrep; layers: interactions.
    mp_cutoff_ang: message-passing radius; edge_cutoff_ang: radius of the Bessel basis for the
    block edges (≥ the longest block edge); pair_cutoff_ang: "A-B" -> longest edge seen.
    """

    kind: ModelKind
    shells: dict[str, list[int]]
    basis_name: str
    valence_electrons: dict[str, float] = field(default_factory=dict)
    hidden: str = "16x0e+8x1o+8x2e+4x1e+4x2o"
    edge_mul: int = 8
    layers: int = 2
    n_rbf: int = 8
    radial_hidden: int = 32
    shell_embedding: int = 16
    mp_cutoff_ang: float = 5.0
    edge_cutoff_ang: float = 12.0
    pair_cutoff_ang: dict[str, float] = field(default_factory=dict)
    zero_beyond_ang: float | None = None
    onsite_scale_ev: float | None = None
    avg_neighbours: float = 10.0
    scale_ev: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(**data)

    @property
    def l_pairs(self) -> list[tuple[int, int]]:
        """Every (l1, l2) shell pair the basis can produce."""
        ls = sorted({l for shells in self.shells.values() for l in shells})
        return [(a, b) for a in ls for b in ls]

    @property
    def max_l(self) -> int:
        return max((l for shells in self.shells.values() for l in shells), default=0)


def _cache_activation_moments() -> None:
    """Compute each activation's normalisation constant once per process.

    e3nn's `normalize2mom` estimates ⟨f(z)²⟩ from 10⁶ seeded normal samples for every
    activation it wraps (~45 ms each, 32 of them per model load, a third of loading the
    shipped model); the value depends on f alone (the seed is fixed), so it is cached.
    """
    from e3nn.math import _normalize_activation as na

    if getattr(na.moment, "cached_by_hamdb", False):
        return
    compute = na.moment
    cache: dict[tuple[Any, ...], torch.Tensor] = {}

    def moment(f: Any, n: int, dtype: Any = None, device: Any = None) -> torch.Tensor:
        key = (f, n, dtype, str(device))
        try:
            hash(key)
        except TypeError:  # e.g. an unhashable module: no caching
            return compute(f, n, dtype, device)
        if key not in cache:
            cache[key] = compute(f, n, dtype, device)
        return cache[key]

    moment.cached_by_hamdb = True  # type: ignore[attr-defined]
    na.moment = moment


def envelope(x: torch.Tensor, p: float = 6.0) -> torch.Tensor:
    """u(x) = 1 − (p+1)(p+2)/2 x^p + p(p+2) x^{p+1} − p(p+1)/2 x^{p+2}, 0 for x ≥ 1.

    The polynomial envelope of DimeNet (Klicpera et al. 2020): u(1) = u'(1) = u''(1) = 0.
    """
    x = x.clamp(max=1.0)
    return (
        1
        - (p + 1) * (p + 2) / 2 * x**p
        + p * (p + 2) * x ** (p + 1)
        - p * (p + 1) / 2 * x ** (p + 2)
    )


class RadialBasis(nn.Module):
    """Bessel functions √(2/c)·sin(nπr/c)/r times the polynomial envelope u(r/c) (p = 6).

    The envelope goes to zero with its first two derivatives at r = c, so features change
    smoothly when a neighbour crosses the cut-off.
    """

    def __init__(self, n: int, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.register_buffer("freq", torch.arange(1, n + 1) * math.pi / cutoff)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        env = envelope(r / self.cutoff)[:, None]
        safe = r.clamp(min=1e-3)[:, None]
        return math.sqrt(2 / self.cutoff) * torch.sin(self.freq * safe) / safe * env


def _uvu_tp(irreps_in: o3.Irreps, irreps_sh: o3.Irreps, targets: o3.Irreps) -> o3.TensorProduct:
    """Channel-wise tensor product h ⊗ Y keeping only outputs whose irreps appear in targets."""
    wanted = {ir for _, ir in targets}
    mid: list[tuple[int, o3.Irrep]] = []
    instructions = []
    for i, (mul, ir_in) in enumerate(irreps_in):
        for j, (_, ir_sh) in enumerate(irreps_sh):
            for ir_out in ir_in * ir_sh:
                if ir_out in wanted:
                    instructions.append((i, j, len(mid), "uvu", True))
                    mid.append((mul, ir_out))
    return o3.TensorProduct(
        irreps_in,
        irreps_sh,
        o3.Irreps(mid),
        instructions,
        shared_weights=False,
        internal_weights=False,
        _optimize_einsums=False,
    )


class Interaction(nn.Module):
    """h_i ← h_i + Gate(Lin(Σ_j TP_w(h_j ⊗ Y_ij)/√n) + Lin(h_i)); irreps hidden -> hidden."""

    def __init__(self, hidden: o3.Irreps, irreps_sh: o3.Irreps, cfg: ModelConfig) -> None:
        super().__init__()
        scalars = o3.Irreps([(m, ir) for m, ir in hidden if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in hidden if ir.l > 0])
        gates = o3.Irreps(f"{gated.num_irreps}x0e")
        self.gate = enn.Gate(scalars, [torch.nn.functional.silu], gates, [torch.sigmoid], gated)
        self.tp = _uvu_tp(hidden, irreps_sh, self.gate.irreps_in)
        self.radial = enn.FullyConnectedNet(
            [cfg.n_rbf, cfg.radial_hidden, self.tp.weight_numel], torch.nn.functional.silu
        )
        self.lin_msg = o3.Linear(self.tp.irreps_out.simplify(), self.gate.irreps_in, **FAST_BUILD)
        self.lin_self = o3.Linear(hidden, self.gate.irreps_in, **FAST_BUILD)
        self.norm = 1.0 / math.sqrt(cfg.avg_neighbours)

    def forward(
        self,
        h: torch.Tensor,
        src: torch.Tensor,
        dst: torch.Tensor,
        sh: torch.Tensor,
        rbf: torch.Tensor,
    ) -> torch.Tensor:
        msg = self.tp(h[src], sh, self.radial(rbf))
        agg = torch.zeros(h.shape[0], msg.shape[1], dtype=h.dtype, device=h.device)
        agg.index_add_(0, dst, msg)
        return h + self.gate(self.lin_msg(agg * self.norm) + self.lin_self(h))


class HamiltonianNet(nn.Module):
    """Graph -> per-shell-pair blocks (e3nn basis), Hermitian by construction.

    forward(batch) returns {(l1, l2): tensor}: for kind "nonsoc" the real blocks
    (n, 2l1+1, 2l2+1) in eV; for kind "soc" (n, 4, 2l1+1, 2l2+1) holding δH0 and K_x, K_y, K_z.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        _cache_activation_moments()
        self.cfg = cfg
        lmax_sh = 2 * cfg.max_l
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax_sh)
        hidden = o3.Irreps(cfg.hidden).simplify()
        n_scalar = sum(m for m, ir in hidden if ir.l == 0 and ir.p == 1)
        self.hidden = hidden
        self.species = nn.Embedding(MAX_Z + 1, n_scalar)
        self.embed = o3.Linear(o3.Irreps(f"{n_scalar}x0e"), hidden, **FAST_BUILD)
        self.rbf = RadialBasis(cfg.n_rbf, cfg.mp_cutoff_ang)
        self.edge_rbf = RadialBasis(cfg.n_rbf, cfg.edge_cutoff_ang)
        self.layers = nn.ModuleList(
            Interaction(hidden, self.irreps_sh, cfg) for _ in range(cfg.layers)
        )

        needed: set[tuple[int, int]] = set()
        for l1, l2 in cfg.l_pairs:
            needed |= set(block_irreps(l1, l2))
            if cfg.kind == "soc":
                needed |= set(axial_block_irreps(l1, l2))
        self.edge_irreps = o3.Irreps([(cfg.edge_mul, (L, p)) for L, p in sorted(needed)])
        self.tp_i = _uvu_tp(hidden, self.irreps_sh, self.edge_irreps)
        self.tp_j = _uvu_tp(hidden, self.irreps_sh, self.edge_irreps)
        self.edge_radial = enn.FullyConnectedNet(
            [cfg.n_rbf, cfg.radial_hidden, self.tp_i.weight_numel + self.tp_j.weight_numel],
            torch.nn.functional.silu,
        )
        self.lin_i = o3.Linear(self.tp_i.irreps_out.simplify(), self.edge_irreps, **FAST_BUILD)
        self.lin_j = o3.Linear(self.tp_j.irreps_out.simplify(), self.edge_irreps, **FAST_BUILD)
        self.pair_tp = o3.FullyConnectedTensorProduct(
            hidden, hidden, self.edge_irreps, **FAST_BUILD
        )
        self.onsite_tp = o3.FullyConnectedTensorProduct(
            hidden, hidden, self.edge_irreps, **FAST_BUILD
        )
        self.onsite_lin = o3.Linear(hidden, self.edge_irreps, **FAST_BUILD)

        # Slices of each (L, parity) in the edge features, shaped (mul, 2L+1).
        self._slices = {
            (ir.l, ir.p): sl
            for (_, ir), sl in zip(self.edge_irreps, self.edge_irreps.slices(), strict=True)
        }
        self._sizes = [sl.stop - sl.start for sl in self._slices.values()]
        self.shell_embed = nn.Embedding((MAX_Z + 1) * MAX_SHELLS, cfg.shell_embedding)
        self.onsite_shift = nn.Embedding((MAX_Z + 1) * MAX_SHELLS * MAX_SHELLS, 1)
        nn.init.zeros_(self.onsite_shift.weight)
        self.heads = nn.ModuleDict()
        self._head_irreps: dict[str, list[tuple[int, int]]] = {}
        for l1, l2 in cfg.l_pairs:
            irreps = list(block_irreps(l1, l2))
            if cfg.kind == "soc":
                irreps += axial_block_irreps(l1, l2)
            key = f"{l1}{l2}"
            self._head_irreps[key] = irreps
            self.heads[key] = enn.FullyConnectedNet(
                [
                    2 * cfg.shell_embedding + cfg.n_rbf + 1,
                    cfg.radial_hidden,
                    len(irreps) * cfg.edge_mul,
                ],
                torch.nn.functional.silu,
            )
            self.register_buffer(
                f"cg_{key}", torch.tensor(block_tensor(l1, l2), dtype=torch.float32)
            )
            if cfg.kind == "soc":
                self.register_buffer(
                    f"cga_{key}", torch.tensor(axial_block_tensor(l1, l2), dtype=torch.float32)
                )

    # -- geometry ----------------------------------------------------------------------------
    @staticmethod
    def edge_vectors(batch: Any) -> torch.Tensor:
        """r_ij = τ_j + R·A − τ_i in Å for every edge of the batch."""
        i, j = batch.edge_index
        lattice = batch.lattice.view(-1, 3, 3)[batch.batch[i]]
        shift = torch.einsum("ek,ekc->ec", batch.edge_shift.to(lattice.dtype), lattice)
        return batch.pos[j] + shift - batch.pos[i]

    def node_features(self, batch: Any, vec: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        h = self.embed(self.species(batch.z))
        i, j = batch.edge_index
        mask = (length > 1e-4) & (length < self.cfg.mp_cutoff_ang)
        src, dst = j[mask], i[mask]
        sh = o3.spherical_harmonics(
            self.irreps_sh, vec[mask], normalize=True, normalization="component"
        )
        rbf = self.rbf(length[mask])
        for layer in self.layers:
            h = layer(h, src, dst, sh, rbf)
        return h

    def edge_features(
        self, batch: Any, h: torch.Tensor, vec: torch.Tensor, length: torch.Tensor
    ) -> torch.Tensor:
        i, j = batch.edge_index
        onsite = length < 1e-4
        x = torch.zeros(len(length), self.edge_irreps.dim, dtype=h.dtype, device=h.device)
        off = ~onsite & self.predicted(length)
        if off.any():
            io, jo = i[off], j[off]
            sh = o3.spherical_harmonics(
                self.irreps_sh, vec[off], normalize=True, normalization="component"
            )
            w = self.edge_radial(self.edge_rbf(length[off]))
            wi, wj = w[:, : self.tp_i.weight_numel], w[:, self.tp_i.weight_numel :]
            x_off = self.lin_i(self.tp_i(h[io], sh, wi)) + self.lin_j(self.tp_j(h[jo], sh, wj))
            # TP(h_i ⊗ h_j) depends on the atom pair only, not on R: once per pair, then
            # gathered (a 4-atom cell has 16 pairs but ~10³ edges at the basis cut-off).
            pair, inverse = torch.unique(io * h.shape[0] + jo, return_inverse=True)
            pi, pj = pair // h.shape[0], pair % h.shape[0]
            x[off] = x_off + self.pair_tp(h[pi], h[pj])[inverse]
        if onsite.any():
            hi = h[i[onsite]]
            x[onsite] = self.onsite_tp(hi, hi) + self.onsite_lin(hi)
        return x

    def predicted(self, length: torch.Tensor) -> torch.Tensor:
        """Edges whose blocks the network computes; the others are exactly zero."""
        if self.cfg.zero_beyond_ang is None:
            return torch.ones_like(length, dtype=torch.bool)
        return length < self.cfg.zero_beyond_ang

    # -- heads -----------------------------------------------------------------------------
    def forward(self, batch: Any) -> dict[tuple[int, int], torch.Tensor]:
        vec = self.edge_vectors(batch)
        length = vec.norm(dim=1)
        h = self.node_features(batch, vec, length)
        x = self.edge_features(batch, h, vec, length)
        # Cut the edge features into their irreps once (slicing per head costs a full-size
        # gradient buffer per slice in the backward pass).
        raw: dict[tuple[int, int], torch.Tensor] = {}
        lead = (4,) if self.cfg.kind == "soc" else ()
        for l1, l2 in self.cfg.l_pairs:
            key = f"{l1}{l2}"
            edge = batch[f"blk_{key}_edge"]
            if edge.numel() == 0:
                continue
            a, b = batch[f"blk_{key}_a"], batch[f"blk_{key}_b"]
            keep = self.predicted(length[edge])
            if bool(keep.all()):
                raw[(l1, l2)] = self._blocks(l1, l2, edge, a, b, batch, length, x)
                continue
            sel = torch.nonzero(keep).squeeze(1)
            block = torch.zeros(
                len(edge), *lead, 2 * l1 + 1, 2 * l2 + 1, dtype=x.dtype, device=x.device
            )
            if sel.numel():
                block[sel] = self._blocks(l1, l2, edge[sel], a[sel], b[sel], batch, length, x)
            raw[(l1, l2)] = block
        return symmetrise(raw, batch, self.cfg.kind)

    def _blocks(
        self,
        l1: int,
        l2: int,
        edge: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        batch: Any,
        length: torch.Tensor,
        x: torch.Tensor,
    ) -> torch.Tensor:
        """Blocks (n, [4,] 2l1+1, 2l2+1) of the shell pairs (edge, a, b) of group (l1, l2)
        from the edge features x (n_edges, edge_irreps)."""
        key = f"{l1}{l2}"
        i, j = batch.edge_index
        zi, zj = batch.z[i[edge]], batch.z[j[edge]]
        ea = self.shell_embed(zi * MAX_SHELLS + a)
        eb = self.shell_embed(zj * MAX_SHELLS + b)
        onsite = (length[edge] < 1e-4).to(length.dtype)[:, None]
        feats = torch.cat([ea, eb, self.edge_rbf(length[edge]), onsite], dim=1)
        irreps = self._head_irreps[key]
        mul = self.cfg.edge_mul
        w = self.heads[key](feats).view(len(edge), len(irreps), mul)
        # One gather of the items' edge features, split into irreps once (views; the
        # backward pass joins their gradients in one buffer), then a channel sum per irrep:
        # gathering each irrep apart copies as much in many more calls, and batched matmuls
        # of these tiny matrices are slower still.
        chunks = dict(zip(self._slices, x.index_select(0, edge).split(self._sizes, 1), strict=True))
        coeffs = [
            (w[:, k, :, None] * chunks[ir].view(len(edge), mul, 2 * ir[0] + 1)).sum(1)
            for k, ir in enumerate(irreps)
        ]
        scale = self.cfg.scale_ev
        if self.cfg.onsite_scale_ev is not None:
            scale = scale + onsite * (self.cfg.onsite_scale_ev - scale)
        if self.cfg.zero_beyond_ang is not None:
            fade = envelope(length[edge] / self.cfg.zero_beyond_ang)[:, None]
            scale = scale * (onsite + (1 - onsite) * fade)
        c = torch.cat(coeffs, dim=1) * scale
        n_sym = getattr(self, f"cg_{key}").shape[2]
        block = torch.einsum("abk,nk->nab", getattr(self, f"cg_{key}"), c[:, :n_sym])
        if l1 == l2:
            # Atomic reference level of each on-site shell pair (an invariant times 1).
            shift = self.onsite_shift((zi * MAX_SHELLS + a) * MAX_SHELLS + b)
            eye = torch.eye(2 * l1 + 1, dtype=block.dtype, device=block.device)
            block = block + (shift * onsite)[:, :, None] * eye
        if self.cfg.kind == "soc":
            k_blocks = torch.einsum("xabk,nk->nxab", getattr(self, f"cga_{key}"), c[:, n_sym:])
            block = torch.cat([block[:, None], k_blocks], dim=1)
        return block


def symmetrise(
    raw: dict[tuple[int, int], torch.Tensor], batch: Any, kind: ModelKind
) -> dict[tuple[int, int], torch.Tensor]:
    """Exact Hermiticity: average each shell pair with the transpose of its reverse pair.

    Real part: H = (B + B_revᵀ)/2; SOC channels 1..3: K = (B − B_revᵀ)/2, so that
    ΔH = Σ iK⊗σ is Hermitian, K_α,ij(R) = −K_α,ji(−R)ᵀ.
    """
    out = {}
    for (l1, l2), block in raw.items():
        rev = batch[f"blk_{l1}{l2}_rev"]
        other = raw[(l2, l1)][rev].transpose(-1, -2)
        if kind == "nonsoc":
            out[(l1, l2)] = (block + other) / 2
        else:
            sign = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=block.dtype, device=block.device)
            out[(l1, l2)] = (block + sign[None, :, None, None] * other) / 2
    return out


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def seed_everything(seed: int) -> None:
    """Seed torch and numpy so a training run repeats bit for bit on the same machine."""
    torch.manual_seed(seed)
    np.random.seed(seed)
