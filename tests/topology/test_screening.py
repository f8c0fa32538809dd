"""screen_pending on a real database and store: rows per method, resumable, committed once,
a bad Hamiltonian recorded with its error instead of stopping the screen."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hamdb.db.models import (
    BasisSetRow,
    HamiltonianRow,
    ModelRow,
    ModelVersionRow,
    StructureRow,
    TopologyResultRow,
)
from hamdb.io.hamdb_format import to_arrays
from hamdb.physics.models import bhz, fu_kane_mele, kane_mele
from hamdb.store.store import HamiltonianStore
from hamdb.topology import TopologySettings
from hamdb.topology.screening import pending_ids, screen_pending


def _add(
    session: Any, store: HamiltonianStore, ham: Any, name: str, kind: str = "predicted"
) -> int:
    s = ham.structure
    structure = StructureRow(
        reduced_formula=s.composition.reduced_formula, spacegroup_number=1, n_sites=len(s),
        elements=sorted(ham.basis.elements), elements_key=",".join(sorted(ham.basis.elements)),
        structure_json=s.as_dict(),
    )  # fmt: skip
    basis = BasisSetRow(
        name=f"{ham.basis.name}:{name}", shells={k: list(v) for k, v in ham.basis.shells.items()},
        valence=dict(ham.basis.valence_electrons), sha256=ham.basis.sha256(),
    )  # fmt: skip
    session.add_all([structure, basis])
    session.flush()
    uri, sha = store.put(*to_arrays(ham))
    version_id = None
    if kind == "predicted":
        model = ModelRow(name=f"stub-{name}")
        session.add(model)
        session.flush()
        version = ModelVersionRow(
            model_id=model.id, version=1, weights_uri="none", weights_sha256="0" * 64, config={}
        )
        session.add(version)
        session.flush()
        version_id = version.id
    row = HamiltonianRow(
        model_version_id=version_id,
        structure_id=structure.id, basis_set_id=basis.id, kind=kind, spin=ham.spin,
        method=f"model:{name}", uri=uri, sha256=sha, n_orbitals=ham.n_orbitals,
        n_edges=ham.n_edges, n_electrons=ham.n_electrons,
    )  # fmt: skip
    session.add(row)
    session.commit()
    return row.id


def test_screen_pending_stores_once_and_resumes(project: Any, session: Any) -> None:
    store = HamiltonianStore(project.store_path)
    strong = _add(session, store, fu_kane_mele(delta_t1=0.4), "fkm")
    qsh = _add(session, store, kane_mele(), "km")
    metal = _add(session, store, fu_kane_mele(delta_t1=0.0), "fkm-metal")
    bad = _add(session, store, bhz().with_h(bhz().h, n_electrons=3.0), "bhz-odd")
    dft = _add(session, store, bhz(M=2.0), "bhz", kind="dft")

    counts = screen_pending(session, store, kind="predicted")
    assert counts == {"pending": 4, "screened": 2, "metal": 1, "failed": 1, "skipped": 0}
    rows = {(r.hamiltonian_id, r.method): r for r in session.scalars(select(TopologyResultRow))}
    assert rows[(strong, "wcc")].z2 == [1, 1, 1, 1] and rows[(strong, "parity")].z2 == [1, 1, 1, 1]
    assert rows[(strong, "wcc")].nu0 == 1 and rows[(strong, "wcc")].dimension == 3
    assert rows[(qsh, "wcc")].z2 == [1] and rows[(qsh, "wcc")].dimension == 2
    assert rows[(metal, "wcc")].is_metal and rows[(metal, "wcc")].z2 is None
    assert "odd occupied count" in rows[(bad, "wcc")].error
    assert all(hid != dft for hid, _ in rows)

    # resumable: nothing left for these settings, a second run stores nothing new
    assert screen_pending(session, store, kind="predicted")["pending"] == 0
    # other settings are another screen
    other = TopologySettings(pos_tol=0.005)
    assert len(pending_ids(session, "predicted", other.sha256())) == 4
    assert screen_pending(session, store, kind="dft") == {
        "pending": 1,
        "screened": 1,
        "metal": 0,
        "failed": 0,
        "skipped": 0,
    }


def test_two_workers_store_each_result_once(project: Any, session: Any) -> None:
    store = HamiltonianStore(project.store_path)
    ids = [_add(session, store, bhz(M=m), f"bhz{m}") for m in (-1.0, 1.0, 3.0, 5.0, 9.0)]
    counts = screen_pending(session, store, kind="predicted", workers=2)
    assert counts["pending"] == 5 and counts["screened"] == 5
    rows = list(session.scalars(select(TopologyResultRow).where(TopologyResultRow.method == "wcc")))
    assert sorted(r.hamiltonian_id for r in rows) == sorted(ids)
    assert {r.hamiltonian_id: r.nu0 for r in rows} == dict(zip(ids, [0, 1, 1, 1, 0], strict=True))


def test_predictions_are_screened_with_the_prediction_filter_by_default(
    project: Any, session: Any
) -> None:
    """Without s_min, predictions get PREDICTED_S_MIN (as models are evaluated) and DFT
    Hamiltonians the exact solve; a given s_min (0 included) is kept."""
    from hamdb.physics.orthogonal import PREDICTED_S_MIN

    store = HamiltonianStore(project.store_path)
    _add(session, store, kane_mele(), "km")
    _add(session, store, bhz(M=2.0), "bhz", kind="dft")
    screen_pending(session, store, kind="predicted")
    screen_pending(session, store, kind="dft")
    screen_pending(session, store, kind="predicted", settings={"s_min": 0.0})
    hashes = {
        (r.hamiltonian.kind, r.settings_hash) for r in session.scalars(select(TopologyResultRow))
    }
    assert hashes == {
        ("predicted", TopologySettings(s_min=PREDICTED_S_MIN).sha256()),
        ("dft", TopologySettings().sha256()),
        ("predicted", TopologySettings(s_min=0.0).sha256()),
    }
