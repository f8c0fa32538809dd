"""Training learns (overfit), resumes after a kill to the same weights, splits by group, and the
zero-point-free loss ignores ΔE·S."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hamdb.errors import ModelError
from hamdb.ml.data import attach_targets, make_graph
from hamdb.ml.graph import periodic_neighbours
from hamdb.ml.network_io import run_network
from hamdb.ml.train import (
    TrainConfig,
    Trainer,
    element_loss,
    init_from_data,
    split_by_group,
    zero_point_shifts,
)

from .test_model import BASIS, make_net, random_structure


def teacher_graphs(kind: str, n: int) -> list:
    """Graphs whose targets come from a random teacher network: equivariant by construction."""
    teacher = make_net(kind, seed=5)
    graphs = []
    for k in range(n):
        s = random_structure(10 + k)
        edges, _ = periodic_neighbours(s.lattice.matrix, s.frac_coords, np.full((4, 4), 4.5))
        g, _ = make_graph(s, BASIS, edges, teacher.cfg.l_pairs)
        graphs.append(attach_targets(g, run_network(teacher, [g])[0], teacher.cfg.l_pairs, kind))
    return graphs


def fresh_student(kind: str, graphs: list) -> torch.nn.Module:
    net = make_net(kind, seed=0)
    with torch.no_grad():
        net.onsite_shift.weight.zero_()
    init_from_data(net, graphs)
    return net


@pytest.mark.slow
def test_overfit_a_few_structures() -> None:
    torch.set_num_threads(1)
    graphs = teacher_graphs("nonsoc", 2)
    trainer = Trainer(
        fresh_student("nonsoc", graphs),
        graphs,
        [],
        TrainConfig(epochs=50, lr=1e-2, batch_size=2, loss="mse"),
    )
    before = trainer.evaluate(graphs)["h"]
    trainer.fit()
    after = trainer.evaluate(graphs)["h"]
    assert after < 0.15 * before


def test_soc_training_lowers_both_parts() -> None:
    torch.set_num_threads(1)
    graphs = teacher_graphs("soc", 1)
    trainer = Trainer(
        fresh_student("soc", graphs), graphs, [], TrainConfig(epochs=15, lr=1e-2, batch_size=1)
    )
    before = trainer.evaluate(graphs)
    trainer.fit()
    after = trainer.evaluate(graphs)
    assert after["h"] < 0.8 * before["h"] and after["k"] < 0.8 * before["k"]


def test_resume_after_kill_gives_the_same_weights(tmp_path) -> None:
    torch.set_num_threads(1)
    graphs = teacher_graphs("nonsoc", 2)
    cfg = TrainConfig(epochs=4, lr=1e-2, batch_size=1, seed=3)
    straight = Trainer(fresh_student("nonsoc", graphs), graphs, graphs[:1], cfg, tmp_path / "a")
    straight.fit()

    class KilledError(Exception):
        pass

    def kill_after_two(epoch: int, row: dict) -> None:
        if epoch == 1:
            raise KilledError

    first = Trainer(fresh_student("nonsoc", graphs), graphs, graphs[:1], cfg, tmp_path / "b")
    with pytest.raises(KilledError):
        first.fit(kill_after_two)
    # The kill came before epoch 1's checkpoint: the resumed run redoes epoch 1.
    resumed = Trainer(fresh_student("nonsoc", graphs), graphs, graphs[:1], cfg, tmp_path / "b")
    assert resumed.try_resume() and resumed.start_epoch == 1
    resumed.fit()
    for key, value in straight.net.state_dict().items():
        assert torch.equal(value, resumed.net.state_dict()[key]), key
    assert straight.history.epochs[-1]["val_h"] == resumed.history.epochs[-1]["val_h"]


def test_split_keeps_material_groups_together() -> None:
    groups = [1, 1, 2, 3, 3, 3, 4, 5, 6, 7, 7, 8, 9, 10]
    train, val, test = split_by_group(groups, 0.2, 0.2, seed=0)
    assert sorted(train + val + test) == list(range(len(groups)))
    parts = [{groups[k] for k in part} for part in (train, val, test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert test and val and train
    assert split_by_group(groups, 0.2, 0.2, seed=0) == (train, val, test)


def with_overlap(graphs: list, seed: int = 7) -> list:
    """The graphs with a stand-in overlap `s_<l1><l2>` (random, the shape of each target): the
    shift-invariance identities hold for any S."""
    gen = torch.Generator().manual_seed(seed)
    for g in graphs:
        for key in [k for k in g.to_dict() if k.startswith("y_")]:
            g["s_" + key[2:]] = torch.randn(g[key].shape, generator=gen)
    return graphs


def batch_and_prediction(n: int = 3) -> tuple:
    from torch_geometric.data import Batch

    graphs = with_overlap(teacher_graphs("nonsoc", n))
    batch = Batch.from_data_list(graphs)
    net = fresh_student("nonsoc", graphs)
    pred = {lp: p.detach().double() for lp, p in net(batch).items()}
    for l1, l2 in pred:
        for name in ("y", "s"):
            batch[f"{name}_{l1}{l2}"] = batch[f"{name}_{l1}{l2}"].double()
    return batch, pred


@pytest.mark.parametrize("loss", ["mae", "mse"])
def test_shift_invariant_loss_ignores_a_zero_point_shift_per_structure(loss: str) -> None:
    torch.set_num_threads(1)
    batch, pred = batch_and_prediction()
    c = torch.tensor([3.0, -4.0, 2.5], dtype=torch.float64)  # eV, one per structure
    shifted = {}
    for (l1, l2), p in pred.items():
        g = batch.batch[batch.edge_index[0][batch[f"blk_{l1}{l2}_edge"]]]
        s = batch[f"s_{l1}{l2}"]
        shifted[(l1, l2)] = p + c[g].view((-1,) + (1,) * (s.dim() - 1)) * s
    plain = element_loss(pred, batch, "nonsoc", loss, 1.0)[0]
    moved = element_loss(shifted, batch, "nonsoc", loss, 1.0)[0]
    invariant = element_loss(pred, batch, "nonsoc", loss, 1.0, shift_invariant=True)[0]
    invariant_moved = element_loss(shifted, batch, "nonsoc", loss, 1.0, shift_invariant=True)[0]
    assert float(moved) > 1.1 * float(plain)  # the plain loss sees the shift
    assert float(invariant_moved) == pytest.approx(float(invariant), rel=1e-9)
    assert float(invariant) <= float(plain) * (1 + 1e-12) or loss == "mae"


@pytest.mark.parametrize("loss", ["mae", "mse"])
def test_shift_invariant_loss_is_the_plain_loss_when_the_best_shift_is_zero(loss: str) -> None:
    torch.set_num_threads(1)
    batch, pred = batch_and_prediction()
    # Make each structure's residual orthogonal to its S: the least-squares ΔE is then 0.
    delta = zero_point_shifts(pred, batch)
    pred = {lp: p + delta[lp] for lp, p in pred.items()}
    assert all(float(d.abs().max()) < 1e-9 for d in zero_point_shifts(pred, batch).values())
    plain, maes = element_loss(pred, batch, "nonsoc", loss, 1.0)
    invariant, maes_inv = element_loss(pred, batch, "nonsoc", loss, 1.0, shift_invariant=True)
    assert float(invariant) == pytest.approx(float(plain), rel=1e-9)
    assert maes_inv["h"] == pytest.approx(maes["h"], rel=1e-9)


def test_shift_invariant_gradient_has_no_component_along_the_overlap() -> None:
    """ΔE is not detached: the MAE gradient is the true one of a loss blind to c·S, so it is
    orthogonal to S per structure (a detached ΔE would push the prediction along S)."""
    torch.set_num_threads(1)
    batch, pred = batch_and_prediction()
    leaves = {lp: p.requires_grad_(True) for lp, p in pred.items()}
    loss, _ = element_loss(leaves, batch, "nonsoc", "mae", 1.0, shift_invariant=True)
    loss.backward()
    along = torch.zeros(batch.num_graphs, dtype=torch.float64)
    scale = torch.zeros(batch.num_graphs, dtype=torch.float64)
    for (l1, l2), p in leaves.items():
        edge = batch[f"blk_{l1}{l2}_edge"]
        g = batch.batch[batch.edge_index[0][edge]]
        s = batch[f"s_{l1}{l2}"].double()
        dims = tuple(range(1, s.dim()))
        along.index_add_(0, g, (p.grad * s).sum(dim=dims))
        scale.index_add_(0, g, (p.grad.abs() * s.abs()).sum(dim=dims))
    assert float((along.abs() / scale).max()) < 1e-9


def test_shift_invariant_training_needs_the_overlap_and_then_learns() -> None:
    torch.set_num_threads(1)
    graphs = teacher_graphs("nonsoc", 2)
    cfg = TrainConfig(epochs=8, lr=1e-2, batch_size=2, shift_invariant=True)
    with pytest.raises(ModelError, match="overlap"):
        Trainer(fresh_student("nonsoc", graphs), graphs, [], cfg).evaluate(graphs)
    graphs = with_overlap(graphs)
    trainer = Trainer(fresh_student("nonsoc", graphs), graphs, [], cfg)
    before = trainer.evaluate(graphs)["h"]
    trainer.fit()
    assert trainer.evaluate(graphs)["h"] < 0.8 * before
