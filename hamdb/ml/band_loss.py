"""What the bands see of an H(R) error: filtered overlap frames and the orthogonal-frame loss.

GPAW's dzp basis is nearly linearly dependent (λ_min S(k) ~ 1e-5 .. 1e-3), so an H error δ of
a few meV along a near-null direction v of S(k) moves a generalised eigenvalue by ~δ/λ_min:
eV. The canonical (Löwdin) orthogonalisation with a cut-off drops those directions:

    S(k) = V Λ V†,   X_k = V[:, kept] Λ^{-1/2}[kept],   X_k† S(k) X_k = 1,
    kept: λ > s_min · λ_max(S(k))  (relative, as `hamdb.physics.orthogonal` and `--s-min`),

and the bands of the kept subspace are the eigenvalues of X_k† H(k) X_k (`frame_eigenvalues`;
s_min = 0 keeps everything and gives the exact generalised eigenvalues).

The band loss (`BandFrame`, `band_loss`): at a few k per structure, with W_k = X_k or the
X_k-frame DFT eigenvectors of the lowest `n_window` bands (W_k = X_k U_k[:, :n_window]),

    L_band = (1/n_k) Σ_k ‖W_k† (H_pred(k) − H_dft(k)) W_k‖_F² / m_k      (eV², m_k = columns),

linear in the element error and free of eigenvalue derivatives. The "diagonal" variant keeps
only (W†ΔHW)_nn in the DFT eigenbasis, the first-order shifts δε_n(k) of the window's bands;
on a fine-tune it lowers those bands' error where the full frame, ill-conditioned, does not
(tests/ml/test_band_loss.py).
By Hoffman–Wielandt the frame loss bounds
the mean squared error of the eigenvalues of W†HW (the filtered bands, or within the window)
and by Weyl its spectral norm bounds each one. For the SOC correction ΔH = δH0⊗σ0 + Σ iK_α⊗σ_α
with the spinor frame W⊗1 the Pauli matrices are orthogonal, so the spinor norm is
2 (‖W†δH0 W‖² + Σ_α ‖W†K_α W‖²): the loss sums the four real channels (the factor 2 dropped).
"""

# ruff: noqa: E741  (l is the angular momentum quantum number, as in the physics)

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hamdb.ml.graph import BlockLayout, LPair
from hamdb.ml.irreps import change_of_basis
from hamdb.physics.hamiltonian import Hamiltonian


def overlap_frames(s_k: np.ndarray, s_min: float) -> list[np.ndarray]:
    """Per k the (N, m_k) frame X_k = V_kept Λ_kept^{-1/2}, kept: λ > s_min · λ_max(S(k)).

    s_k: (nk, N, N) Hermitian overlaps. X_k† S X_k = 1; m_k = N when s_min = 0 and S > 0.
    s_min is relative to the largest eigenvalue at the same k, as in
    `hamdb.physics.orthogonal` (`hamdb topology --s-min`), so both keep the same subspace.
    """
    frames = []
    for sk in np.asarray(s_k):
        lam, vec = np.linalg.eigh(sk)
        keep = lam > s_min * lam[-1] if s_min > 0 else lam > 0
        frames.append(vec[:, keep] / np.sqrt(lam[keep]))
    return frames


def frame_eigenvalues(h_k: np.ndarray, frames: Sequence[np.ndarray]) -> np.ndarray:
    """Eigenvalues of X_k† H(k) X_k (nk, min_k m_k) ascending, in eV.

    Bands of the kept subspace; with s_min = 0 these are the generalised eigenvalues of
    (H(k), S(k)). Each k is cut to the smallest kept dimension so the array is rectangular
    (the cut removes the highest bands only).
    """
    out = [np.linalg.eigvalsh(x.conj().T @ h @ x) for h, x in zip(h_k, frames, strict=True)]
    n = min(len(e) for e in out)
    return np.array([e[:n] for e in out])


def spinor_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """X ⊗ 1₂ in the interleaved spinor order (orbital-major, spin-minor) of DESIGN.md §2."""
    return [np.kron(x, np.eye(2)) for x in frames]


def band_kpoints(n_random: int, seed: int) -> np.ndarray:
    """Γ plus `n_random` uniform random fractional k-points (the loss's sample of the zone)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([np.zeros((1, 3)), rng.random((n_random, 3))])


@dataclass
class BandFrame:
    """One structure's precomputed band-loss data (spinless orbital space, N orbitals).

    frames: (nk, N, m) complex W_k, zero-padded to the largest m_k (padding adds nothing);
    n_cols: (nk,) true m_k; place[(l1, l2)]: (n_b, 2l1+1, 2l2+1) position row·N + col of each
    block element in an N×N matrix; phase[(l1, l2)]: (nk, n_b) e^{2πi k·R} of each block.
    """

    n: int
    frames: torch.Tensor
    n_cols: torch.Tensor
    place: dict[LPair, torch.Tensor]
    phase: dict[LPair, torch.Tensor]
    diagonal: bool = False


def build_band_frame(
    h_none: Hamiltonian,
    layout: BlockLayout,
    kpts: np.ndarray,
    s_min: float,
    n_window: int | None = None,
    diagonal: bool = False,
) -> BandFrame:
    """Frames of the DFT overlap (and DFT eigenvectors if n_window) at kpts for `band_loss`.

    h_none: the spinless DFT Hamiltonian with S; layout: the graph's block layout (its edges
    are h_none's edges, in the graph's order). diagonal: the loss keeps only the diagonal of
    W†ΔHW in the DFT eigenbasis, the first-order eigenvalue shifts (W always rotated into the
    DFT eigenvectors then, all kept bands if n_window is None).
    """
    from hamdb.physics.bloch import bloch_matrices

    h_k, s_k = bloch_matrices(h_none, kpts)
    if s_k is None:
        s_k = np.broadcast_to(np.eye(h_none.n_orbitals), h_k.shape)
    frames = overlap_frames(s_k, s_min)
    if n_window is not None or diagonal:
        n_window = n_window if n_window is not None else h_none.n_orbitals
        windowed = []
        for h, x in zip(h_k, frames, strict=True):
            _, u = np.linalg.eigh(x.conj().T @ h @ x)
            windowed.append(x @ u[:, : min(n_window, u.shape[1])])
        frames = windowed
    n = h_none.n_orbitals
    m = max(x.shape[1] for x in frames)
    padded = np.zeros((len(frames), n, m), dtype=np.complex64)
    for k, x in enumerate(frames):
        padded[k, :, : x.shape[1]] = x
    starts = h_none.orbital_starts
    edges = np.asarray(layout.edges, dtype=np.int64)
    place, phase = {}, {}
    for (l1, l2), g in layout.groups.items():
        basis_rows, basis_cols = _shell_starts(h_none, edges, g.edge, g.shell_a, g.shell_b)
        row = starts[edges[g.edge, 0]] + basis_rows
        col = starts[edges[g.edge, 1]] + basis_cols
        m1 = np.arange(2 * l1 + 1)[None, :, None]
        m2 = np.arange(2 * l2 + 1)[None, None, :]
        place[(l1, l2)] = torch.from_numpy((row[:, None, None] + m1) * n + col[:, None, None] + m2)
        shift = edges[g.edge, 2:].astype(float)
        phase[(l1, l2)] = torch.from_numpy(
            np.exp(2j * np.pi * np.asarray(kpts) @ shift.T).astype(np.complex64)
        )
    return BandFrame(
        n,
        torch.from_numpy(padded),
        torch.tensor([x.shape[1] for x in frames], dtype=torch.float32),
        place,
        phase,
        diagonal,
    )


def _shell_starts(
    ham: Hamiltonian, edges: np.ndarray, edge: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of shell a (of atom i) and shell b (of atom j) inside their atoms' orbitals."""
    species = ham.species
    starts = {
        el: np.concatenate([[0], np.cumsum([2 * l + 1 for l in ham.basis.shell_ls(el)])])
        for el in set(species)
    }
    i, j = edges[edge, 0], edges[edge, 1]
    rows = np.array([starts[species[x]][y] for x, y in zip(i, a, strict=True)], dtype=np.int64)
    cols = np.array([starts[species[x]][y] for x, y in zip(j, b, strict=True)], dtype=np.int64)
    return rows, cols


_BASIS_CHANGE: dict[tuple[int, str], torch.Tensor] = {}


def _design(l: int, device: torch.device) -> torch.Tensor:
    key = (l, str(device))
    if key not in _BASIS_CHANGE:
        _BASIS_CHANGE[key] = torch.tensor(change_of_basis(l), dtype=torch.float32, device=device)
    return _BASIS_CHANGE[key]


def band_loss(
    diff: Mapping[LPair, torch.Tensor], frame: BandFrame, kind: str = "nonsoc"
) -> torch.Tensor:
    """L_band (eV², module docstring) of one structure from its element errors per group.

    diff[(l1, l2)]: prediction − target in e3nn's basis, (n_b, 2l1+1, 2l2+1) for "nonsoc",
    (n_b, 4, 2l1+1, 2l2+1) for "soc" (channels δH0, K_x, K_y, K_z).
    """
    nk, n, _ = frame.frames.shape
    channels = 4 if kind == "soc" else 1
    device = frame.frames.device
    dense = torch.zeros(channels, nk, n * n, dtype=torch.complex64, device=device)
    for (l1, l2), d in diff.items():
        if d.shape[0] == 0:
            continue
        d = d.reshape(d.shape[0], channels, 2 * l1 + 1, 2 * l2 + 1)
        block = torch.einsum("ab,ncbd,ed->cnae", _design(l1, device), d, _design(l2, device))
        vals = frame.phase[(l1, l2)][None, :, :, None] * block.reshape(
            channels, 1, d.shape[0], -1
        ).to(torch.complex64)
        dense.index_add_(2, frame.place[(l1, l2)].reshape(-1), vals.reshape(channels, nk, -1))
    w = frame.frames
    if frame.diagonal:
        shift = torch.einsum("kan,ckab,kbn->ckn", w.conj(), dense.view(channels, nk, n, n), w)
        per_k = shift.abs().pow(2).sum(dim=(0, 2)) / frame.n_cols
    else:
        proj = w.conj().transpose(-1, -2)[None] @ dense.view(channels, nk, n, n) @ w[None]
        per_k = proj.abs().pow(2).sum(dim=(0, 2, 3)) / frame.n_cols
    return per_k.mean()


def batch_band_loss(
    pred: Mapping[LPair, torch.Tensor],
    batch: object,
    frames: Sequence[BandFrame | None],
    kind: str,
) -> torch.Tensor:
    """Mean `band_loss` over the graphs of a batch (frames in the batch's graph order).

    Each graph's shell-pair items are contiguous in the batch, in graph order; graphs without a
    frame (None) are skipped.
    """
    counts = {
        lp: torch.bincount(
            batch.batch[batch.edge_index[0][batch[f"blk_{lp[0]}{lp[1]}_edge"]]],  # type: ignore[attr-defined]
            minlength=len(frames),
        ).tolist()
        for lp in pred
    }
    parts = {
        lp: torch.split(p - batch[f"y_{lp[0]}{lp[1]}"].to(p.dtype), counts[lp])  # type: ignore[index]
        for lp, p in pred.items()
    }
    losses = [
        band_loss({lp: parts[lp][k] for lp in pred}, frame, kind)
        for k, frame in enumerate(frames)
        if frame is not None
    ]
    if not losses:
        return torch.zeros(())
    return torch.stack(losses).mean()


def rms_bound(loss: torch.Tensor) -> float:
    """√L_band in eV: the Hoffman–Wielandt bound on the RMS band error it stands for."""
    return math.sqrt(max(float(loss), 0.0))
