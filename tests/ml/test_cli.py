"""End to end through the CLI: DFT rows in a project -> hamdb train nonsoc/overlap/soc ->
models list/alias/show -> evaluate -> predict (stored as a predicted Hamiltonian)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from hamdb.cli.main import cli
from hamdb.ml.inference import Predictor
from hamdb.physics.hamiltonian import Hamiltonian

from .test_inference import toy_bundle
from .test_model import random_structure


def store_teacher_data(session, project) -> list[int]:
    """Three structures with 'DFT' (teacher network) spinless and SOC Hamiltonians."""
    from hamdb.io.catalog import save_hamiltonian
    from hamdb.store.store import HamiltonianStore

    store = HamiltonianStore(project.store_path)
    teacher = Predictor(toy_bundle(), spec="teacher")
    ids = []
    for seed, species in ((30, ("Si", "O")), (31, ("O", "Si", "O")), (32, ("Si", "Si"))):
        s = random_structure(seed, species)
        (soc,) = teacher.predict([s])
        n = soc.n_orbitals
        # A well-conditioned overlap: identity on site, small symmetric values elsewhere.
        s_flat = np.zeros_like(soc.s)
        for e in range(soc.n_edges):
            i, j, R = soc.edge_key(e)
            rows, cols = soc.block_shape(e, spin=False)
            block = np.eye(rows) if (i == j and R == (0, 0, 0)) else np.zeros((rows, cols))
            s_flat[soc.s_offsets[e] : soc.s_offsets[e + 1]] = block.ravel()
        h0 = np.concatenate([soc.h_block(e)[::2, ::2].real.ravel() for e in range(soc.n_edges)])
        none = Hamiltonian(
            s,
            soc.basis,
            "none",
            soc.edges,
            soc.s_offsets,
            h0,
            s_flat,
            soc.s_offsets,
            n_electrons=soc.n_electrons,
        )
        soc = Hamiltonian(
            s,
            soc.basis,
            "soc",
            soc.edges,
            soc.offsets,
            soc.h,
            s_flat,
            soc.s_offsets,
            n_electrons=soc.n_electrons,
        )
        row = save_hamiltonian(session, store, none, kind="dft", method="toy")
        save_hamiltonian(
            session, store, soc, structure_id=row.structure_id, kind="dft", method="toy"
        )
        ids.append(row.structure_id)
        assert n > 0
    session.commit()
    return ids


def run(project, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["--project", str(project.root), *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.slow
def test_train_evaluate_alias_predict(session, project) -> None:
    ids = store_teacher_data(session, project)
    config = project.root / "train.toml"
    config.write_text(
        "[train]\nval_fraction = 0.0\ntest_fraction = 0.3\nbatch_size = 2\n"
        '[model]\nhidden = "8x0e+4x1o+4x2e"\nedge_mul = 4\n'
    )
    out = run(project, "train", "nonsoc", "--epochs", "2", "--name", "t", "--config", str(config))
    assert out["version"] == 1 and out["epochs_run"] == 2
    assert (
        run(project, "train", "overlap", "--epochs", "1", "--name", "t", "--config", str(config))[
            "version"
        ]
        == 2
    )
    assert (
        run(project, "train", "soc", "--epochs", "1", "--name", "t", "--config", str(config))[
            "version"
        ]
        == 3
    )
    listed = run(project, "models", "list")
    assert [r["version"] for r in listed] == [1, 2, 3]
    assert listed[-1]["parts"] == ["nonsoc", "overlap", "soc"]
    run(project, "models", "alias", "t", "3", "production")
    shown = run(project, "models", "show", "production")
    assert shown["version"] == 3 and shown["aliases"] == ["production"]
    evaluated = run(project, "evaluate", "t@3", "--data", f"ids={ids[0]},{ids[2]}")
    assert evaluated["metrics"]["n_structures"] == 2
    assert evaluated["metrics"]["h_mae_ev"] > 0
    predicted = run(project, "predict", str(ids[1]))
    assert predicted["spin"] == "soc" and predicted["model_version_id"] == shown["id"]
    from hamdb.io.catalog import load_hamiltonian
    from hamdb.store.store import HamiltonianStore

    ham = load_hamiltonian(
        session, HamiltonianStore(project.store_path), predicted["hamiltonian_id"]
    )
    assert ham.spin == "soc" and ham.n_edges == predicted["n_edges"]
    bad = CliRunner().invoke(cli, ["--project", str(project.root), "predict", "9999"])
    assert bad.exit_code == 1 and "no such" in bad.output
    # fine-tuning starts from the version's weights and records where it started
    tuned = project.root / "tune.toml"
    tuned.write_text(config.read_text().replace("[train]\n", '[train]\ninit_from = "t@3"\n'))
    out = run(project, "train", "nonsoc", "--epochs", "1", "--name", "u", "--config", str(tuned))
    shown = run(project, "models", "show", "u@1")
    assert out["version"] == 1
    assert shown["training_data"]["nonsoc"]["train_config"]["init_from"] == "t@3"
