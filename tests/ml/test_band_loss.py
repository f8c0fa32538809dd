"""The orthogonal-frame band loss equals its dense numpy definition, its frames are the subspace
`hamdb.physics.orthogonal` keeps, and training with it lowers the band error of an overfit."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from hamdb.ml.band_loss import (
    band_kpoints,
    band_loss,
    batch_band_loss,
    build_band_frame,
    frame_eigenvalues,
    overlap_frames,
    spinor_frames,
)
from hamdb.ml.data import attach_targets, make_graph, soc_delta_h, spinless_h
from hamdb.ml.graph import periodic_neighbours
from hamdb.ml.network_io import run_network
from hamdb.ml.train import TrainConfig, Trainer
from hamdb.physics.bloch import bloch_matrices
from hamdb.physics.hamiltonian import Hamiltonian
from hamdb.physics.orthogonal import orthonormal_hamiltonian

from .test_model import BASIS, make_net, random_structure


def _offsets(structure, edges: np.ndarray, spin: int = 1) -> np.ndarray:
    counts = BASIS.orbital_counts([s.specie.symbol for s in structure]) * spin
    return np.concatenate([[0], np.cumsum(counts[edges[:, 0]] * counts[edges[:, 1]])])


def teacher_case(seed: int, kind: str = "nonsoc"):
    """A structure's graph with teacher targets of `kind`, its layout, and a spinless H(R) (the
    non-SOC teacher) with a near-dependent overlap S.

    S(R) = δ_R0 1 + c·T(R) with T a symmetric network output, c chosen so that the smallest
    eigenvalue of S(k) at a few k is ~1e-3: the dzp situation in miniature.
    """
    s = random_structure(seed)
    edges, _ = periodic_neighbours(s.lattice.matrix, s.frac_coords, np.full((4, 4), 4.5))
    teacher = make_net(kind, seed=5)
    graph, layout = make_graph(s, BASIS, edges, teacher.cfg.l_pairs)
    attach_targets(graph, run_network(teacher, [graph])[0], teacher.cfg.l_pairs, kind)
    offsets = _offsets(s, layout.edges)

    def spinless(seed: int) -> np.ndarray:
        net = make_net("nonsoc", seed=seed)
        return layout.hermitise(spinless_h(layout, run_network(net, [graph])[0]))

    t_flat = spinless(9)
    eye = np.zeros_like(t_flat)
    for e, (i, j, *r) in enumerate(layout.edges.tolist()):
        if i == j and not any(r):
            n = round(np.sqrt(offsets[e + 1] - offsets[e]))
            eye[offsets[e] : offsets[e + 1]] = np.eye(n).ravel()
    probe = Hamiltonian(s, BASIS, "none", layout.edges, offsets, t_flat, t_flat, offsets)
    _, t_k = bloch_matrices(probe, band_kpoints(6, 0))
    c = 1 / (1e-3 - np.linalg.eigvalsh(t_k)[:, 0].min())
    ham = Hamiltonian(
        s, BASIS, "none", layout.edges, offsets, spinless(5), eye + c * t_flat, offsets, 8.0
    )
    return graph, layout, ham, teacher


def test_frame_eigenvalues_are_the_bands_orthogonal_keeps() -> None:
    _, _, ham, _ = teacher_case(1)
    kpts = band_kpoints(3, 1)
    h_k, s_k = bloch_matrices(ham, kpts)
    for s_min in (0.0, 1e-2):
        mine = frame_eigenvalues(h_k, overlap_frames(s_k, s_min))
        h_prime, dropped = orthonormal_hamiltonian(h_k, s_k, 1, s_min)
        theirs = np.linalg.eigvalsh(h_prime)
        n = mine.shape[1]
        assert n == ham.n_orbitals - dropped.max()
        np.testing.assert_allclose(mine, theirs[:, :n], atol=1e-8)
    assert (dropped > 0).any()  # the case is near-dependent enough to drop something


@pytest.mark.parametrize("kind", ["nonsoc", "soc"])
@pytest.mark.parametrize(("window", "diagonal"), [(None, False), (6, False), (6, True)])
def test_band_loss_equals_dense_numpy(kind: str, window: int | None, diagonal: bool) -> None:
    graph, layout, ham, _ = teacher_case(2, kind)
    kpts = band_kpoints(3, 2)
    frame = build_band_frame(ham, layout, kpts, 1e-2, window, diagonal)
    student = make_net(kind, seed=1)
    pred = student(Batch.from_data_list([graph]))
    diff = {lp: (p - graph[f"y_{lp[0]}{lp[1]}"]).detach() for lp, p in pred.items()}
    got = float(band_loss(diff, frame, kind))

    # dense: the error as an H(R) through the repo's own block maps and Bloch sum
    blocks = {lp: d.double().numpy() for lp, d in diff.items()}
    if kind == "nonsoc":
        err = ham.with_h(layout.hermitise(spinless_h(layout, blocks)))
    else:
        err = ham.with_h(layout.hermitise(soc_delta_h(layout, blocks)), spin="soc")
    e_k, _ = bloch_matrices(err, kpts)
    h_k, s_k = bloch_matrices(ham, kpts)
    frames = overlap_frames(s_k, 1e-2)
    if window is not None:
        frames = [
            x @ np.linalg.eigh(x.conj().T @ h @ x)[1][:, :window]
            for h, x in zip(h_k, frames, strict=True)
        ]
    if kind == "soc":  # ‖(W⊗1)†ΔH(W⊗1)‖² = 2 Σ_channels, over 2m columns: the same number
        frames = spinor_frames(frames)
    proj = [x.conj().T @ e @ x for e, x in zip(e_k, frames, strict=True)]
    if diagonal and kind == "soc":
        # first-order shifts of a spin pair n: eigenvalues of its 2×2 block B_n, whose squares
        # sum to ‖B_n‖_F² (= 2 Σ_channels |(W†D_c W)_nn|²), per spinless band
        want = np.mean(
            [
                sum(
                    (np.abs(p[2 * n : 2 * n + 2, 2 * n : 2 * n + 2]) ** 2).sum() / 2
                    for n in range(p.shape[0] // 2)
                )
                / (p.shape[0] / 2)
                for p in proj
            ]
        )
    elif diagonal:
        want = np.mean([(np.abs(np.diagonal(p)) ** 2).sum() / p.shape[0] for p in proj])
    else:
        want = np.mean([(np.abs(p) ** 2).sum() / p.shape[0] for p in proj])
    assert got > 0
    assert got == pytest.approx(want, rel=2e-4)


def test_batch_loss_is_the_mean_over_its_graphs() -> None:
    cases = [teacher_case(seed) for seed in (3, 4)]
    frames = [
        build_band_frame(ham, layout, band_kpoints(2, 0), 1e-2, None) for _, layout, ham, _ in cases
    ]
    graphs = [g for g, _, _, _ in cases]
    student = make_net("nonsoc", seed=1)
    batch = Batch.from_data_list(graphs)
    pred = student(batch)
    together = float(batch_band_loss(pred, batch, frames, "nonsoc").detach())
    alone = []
    for g, f in zip(graphs, frames, strict=True):
        one = Batch.from_data_list([g])
        alone.append(float(batch_band_loss(student(one), one, [f], "nonsoc")))
    assert together == pytest.approx(np.mean(alone), rel=1e-4)


def _window_band_error(net, cases, kpts: np.ndarray, n_bands: int) -> float:
    """MAE (eV) of the lowest n_bands filtered bands (s_min 1e-2) of net vs the teacher H."""
    errors = []
    for graph, layout, ham, _ in cases:
        blocks = run_network(net, [graph])[0]
        pred = ham.with_h(layout.hermitise(spinless_h(layout, blocks)))
        p_k, s_k = bloch_matrices(pred, kpts)
        d_k, _ = bloch_matrices(ham, kpts)
        frames = overlap_frames(s_k, 1e-2)
        got, want = frame_eigenvalues(p_k, frames), frame_eigenvalues(d_k, frames)
        errors.append(float(np.abs(got[:, :n_bands] - want[:, :n_bands]).mean()))
    return float(np.mean(errors))


@pytest.mark.slow
def test_band_term_lowers_the_band_error_of_a_fine_tune() -> None:
    """From the same element-trained student, 20 more epochs with the first-order band term
    (occupied + 2 bands, diagonal) end with a lower error of those bands than without it."""
    torch.set_num_threads(1)
    cases = [teacher_case(seed) for seed in (5, 6)]
    graphs = [g for g, _, _, _ in cases]
    kpts = band_kpoints(4, 7)
    frames = [build_band_frame(ham, lay, kpts, 1e-2, 6, diagonal=True) for _, lay, ham, _ in cases]
    student = make_net("nonsoc", seed=5)  # the teacher, perturbed, then fitted to elements
    torch.manual_seed(1)
    with torch.no_grad():
        for p in student.parameters():
            p.mul_(1 + 0.1 * torch.randn_like(p))
    Trainer(student, graphs, [], TrainConfig(epochs=20, lr=3e-3, batch_size=2)).fit()
    errors = {}
    for weight in (0.0, 0.1):
        net = copy.deepcopy(student)
        cfg = TrainConfig(epochs=20, lr=1e-3, batch_size=2, band_weight=weight)
        Trainer(net, graphs, [], cfg, train_frames=frames).fit()
        errors[weight] = _window_band_error(net, cases, kpts, 6)
    assert errors[0.1] < 0.8 * errors[0.0]
