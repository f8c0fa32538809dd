"""Registry round trip and the Predictor API: load by spec, predict, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from hamdb.errors import ModelError
from hamdb.ml.bundle import ModelBundle
from hamdb.ml.inference import Predictor
from hamdb.ml.registry import register_version, resolve_version, set_alias
from hamdb.physics.basis import BasisSet

from .test_model import BASIS, make_net, random_structure

CUTOFFS = {"Bi-Bi": 4.5, "Bi-O": 4.5, "Bi-Si": 4.5, "O-O": 4.5, "O-Si": 4.5, "Si-Si": 4.5}


def toy_bundle() -> ModelBundle:
    nets = {
        "nonsoc": make_net("nonsoc"),
        "soc": make_net("soc", 1),
        "overlap": make_net("nonsoc", 2),
    }
    for net in nets.values():
        net.cfg.pair_cutoff_ang = dict(CUTOFFS)
    return ModelBundle(BASIS, nets, {"name": "toy"})


def test_registry_specs_and_prediction(session, project) -> None:
    bundle = toy_bundle()
    v1 = register_version(session, project.store_path, "toy", bundle, training_data={"x": 1})
    v2 = register_version(session, project.store_path, "toy", bundle, metrics={"gap_mae_ev": 0.05})
    set_alias(session, "toy", 1, "production")
    session.commit()
    assert (v1.version, v2.version) == (1, 2)
    assert resolve_version(session, "toy").id == v2.id
    assert resolve_version(session, "toy@1").id == v1.id
    assert resolve_version(session, "production").id == v1.id
    assert resolve_version(session, "toy@production").id == v1.id
    set_alias(session, "toy", 2, "production")  # moving an alias
    assert resolve_version(session, "production").id == v2.id
    for bad in ("nope", "toy@7", "toy@staging"):
        with pytest.raises(ModelError):
            resolve_version(session, bad)

    predictor = Predictor.load(session, project, "production")
    assert predictor.model_version_id == v2.id
    structures = [random_structure(20), random_structure(21, ("O", "Si"))]
    hams = predictor.predict(structures)
    assert [h.spin for h in hams] == ["soc", "soc"]
    for h, s in zip(hams, structures, strict=True):
        assert h.structure is s and h.s is not None
        assert h.n_electrons == BASIS.n_valence([x.specie.symbol for x in s])
        for (i, j, R), block in h.blocks():
            back = h.h_block(h.edge_index[(j, i, tuple(-r for r in R))])
            assert np.array_equal(block, back.conj().T)
        assert h.uncertainty_ev == 0.05
    # batched and one-by-one predictions agree
    alone = predictor.predict(structures[1:])[0]
    np.testing.assert_allclose(alone.h, hams[1].h, atol=1e-5)


def test_tampered_weights_are_refused(session, project) -> None:
    row = register_version(session, project.store_path, "toy", toy_bundle())
    session.commit()
    path = project.store_path / row.weights_uri
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ModelError, match="sha256"):
        Predictor.load(session, project, "toy@1")


def test_unseen_element_and_basis_mismatch_are_clear_errors(tmp_path) -> None:
    predictor = Predictor(toy_bundle(), spec="toy@1")
    with pytest.raises(ModelError, match="never saw element Fe"):
        predictor.predict(
            [Structure(Lattice.cubic(3.0), ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])]
        )
    other = BasisSet("toy", {"Si": (0, 1), "O": (0, 1), "Bi": (0, 0, 1, 2)}, {})
    with pytest.raises(ModelError, match="basis mismatch for Si"):
        predictor.predict([random_structure(3)], basis=other)
    renamed = BasisSet("gpaw-dzp", dict(BASIS.shells), {})
    with pytest.raises(ModelError, match="basis mismatch"):
        predictor.predict([random_structure(3)], basis=renamed)
    path = tmp_path / "m.pt"
    toy_bundle().save(path)
    assert Predictor.from_path(path).predict([random_structure(5)])[0].spin == "soc"
    path.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a hamdb model"):
        Predictor.from_path(path)


def test_shipped_model_predicts_with_the_exact_overlap() -> None:
    """A GPAW-basis model: S is GPAW's exact overlap on GPAW's edges, H exactly Hermitian
    (assembled from the SOC model's Pauli parts), and a structure GPAW refuses fails the
    prediction with a ModelError naming the problem (a permanent failure for the workers)."""
    pytest.importorskip("gpaw")
    from hamdb.dft.gpaw_lcao import compute_overlap
    from hamdb.ml.inference import SHIPPED_MODEL, SHIPPED_MODELS_DIR
    from hamdb.physics.checks import hermiticity_error

    if not (SHIPPED_MODELS_DIR / SHIPPED_MODEL / "model.pt").is_file():
        pytest.skip("no shipped model in this checkout")
    predictor = Predictor.shipped()
    lattice = Lattice.from_parameters(3.1, 3.3, 4.2, 101.0, 94.0, 97.0)
    structure = Structure(lattice, ["Pb", "Te"], [[0.03, 0.86, 0.04], [0.54, 0.93, 0.82]])
    predictor.edge_set = "dft"
    (ham,) = predictor.predict([structure])
    exact = compute_overlap(structure)
    assert np.array_equal(ham.edges, exact.edges) and np.array_equal(ham.s, exact.s)
    assert ham.spin == "soc" and hermiticity_error(ham) < 1e-12
    assert ham.origin["edge_set"] == "dft"
    # without the edges that exist only through PAW projector spheres: a subset of GPAW's
    # edges (the others' |S| < 1e-6), the same S and H on them
    predictor.edge_set = "direct"
    (direct,) = predictor.predict([structure])
    assert direct.origin["edge_set"] == "direct" and direct.n_edges < ham.n_edges / 1.5
    full = ham.edge_index
    kept = [full[(i, j, tuple(r))] for i, j, *r in direct.edges.tolist()]
    for e, k in enumerate(kept):
        assert np.array_equal(direct.s_block(e), ham.s_block(k))
        np.testing.assert_allclose(direct.h_block(e), ham.h_block(k), rtol=0, atol=1e-6)
    dropped = np.setdiff1d(np.arange(ham.n_edges), kept)
    assert max(np.abs(ham.s_block(int(k))).max() for k in dropped) < 1e-6
    crowded = Structure(lattice, ["Pb", "Te"], [[0.0, 0.0, 0.0], [0.01, 0.0, 0.0]])
    with pytest.raises(ModelError, match="atoms overlap"):
        predictor.predict([crowded])


def test_networks_run_only_on_edges_they_predict_and_the_rest_is_zero(monkeypatch) -> None:
    """Edges beyond every network's reach (zero_beyond_ang, mp_cutoff_ang) are left out of
    the graph and filled with zeros: the same H and S as running the networks on all edges."""
    bundle = toy_bundle()
    for net in bundle.nets.values():
        net.cfg.zero_beyond_ang = 3.0
    predictor = Predictor(bundle, spec="toy@1")
    structures = [random_structure(30), random_structure(31, ("O", "Si"))]
    edges = predictor.edges_for(structures[0])
    assert 0 < len(predictor.network_edges(structures[0], edges)) < len(edges)
    fast = predictor.predict(structures)
    monkeypatch.setattr(Predictor, "network_edges", lambda self, s, e, n=None: np.arange(len(e)))
    slow = predictor.predict(structures)
    for a, b in zip(fast, slow, strict=True):
        assert np.array_equal(a.edges, b.edges)
        assert np.array_equal(a.h, b.h) and np.array_equal(a.s, b.s)
