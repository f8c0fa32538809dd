"""Training learns (overfit), resumes after a kill to the same weights, and splits by group."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hamdb.ml.data import attach_targets, make_graph
from hamdb.ml.graph import periodic_neighbours
from hamdb.ml.network_io import run_network
from hamdb.ml.train import TrainConfig, Trainer, init_from_data, split_by_group

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
