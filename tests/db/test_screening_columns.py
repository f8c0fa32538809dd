"""What hamdb.db.models fills on insert for the candidates view (migration 0004): structure
copies and `current_screen` on topology results, `structure_elements` rows; both databases."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hamdb.db.engine import make_engine
from hamdb.db.models import (
    BasisSetRow,
    HamiltonianRow,
    ModelRow,
    ModelVersionRow,
    StructureElementRow,
    StructureRow,
    TopologyResultRow,
)


def _structure(formula: str, sg: int, elements: list[str]) -> StructureRow:
    return StructureRow(
        reduced_formula=formula,
        spacegroup_number=sg,
        n_sites=5,
        elements=elements,
        elements_key="-" + "-".join(elements) + "-",
        structure_json={},
    )


def _hamiltonians(session: Session) -> dict[str, int]:
    """A structure with a predicted and a DFT SOC Hamiltonian, one with a predicted non-SOC."""
    basis = BasisSetRow(name="b", shells={}, valence={}, sha256="0" * 64)
    version = ModelVersionRow(
        model=ModelRow(name="m"), version=1, weights_uri="w", weights_sha256="", config={}
    )
    bise, si = _structure("Bi2Se3", 166, ["Bi", "Se"]), _structure("Si", 227, ["Si"])
    session.add_all([basis, version, bise, si])
    session.flush()

    def ham(structure: StructureRow, kind: str, spin: str) -> int:
        row = HamiltonianRow(
            structure_id=structure.id, basis_set_id=basis.id, kind=kind, spin=spin,
            method=f"{kind}-{spin}", model_version_id=version.id if kind == "predicted" else None,
            uri="x.h5", sha256="", n_orbitals=4, n_edges=2, n_electrons=2.0,
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id

    ids = {
        "predicted": ham(bise, "predicted", "soc"),
        "dft": ham(bise, "dft", "soc"),
        "no_soc": ham(si, "predicted", "none"),
    }
    session.commit()
    return ids


def _result(hamiltonian_id: int, settings: str, method: str = "wcc") -> TopologyResultRow:
    return TopologyResultRow(
        hamiltonian_id=hamiltonian_id, method=method, settings_hash=settings, dimension=3,
        z2=[1, 0, 0, 0], nu0=1, nu1=0, nu2=0, nu3=0, gap_ev=0.3, converged=True,
    )  # fmt: skip


def _current(session: Session) -> list[tuple[int, str, str]]:
    rows = session.execute(
        select(TopologyResultRow.hamiltonian_id, TopologyResultRow.method,
               TopologyResultRow.settings_hash)
        .where(TopologyResultRow.current_screen)
        .order_by(TopologyResultRow.id)
    )  # fmt: skip
    return [tuple(row) for row in rows]


def test_a_result_carries_its_structure_and_the_newest_wcc_is_current(session: Session) -> None:
    ids = _hamiltonians(session)
    first = _result(ids["predicted"], "a")
    session.add(first)
    session.commit()
    assert (first.reduced_formula, first.spacegroup_number, first.n_sites) == ("Bi2Se3", 166, 5)
    assert first.elements_key == "-Bi-Se-" and first.current_screen
    # a parity cross-check, a DFT result, a non-SOC prediction: never the view's row
    session.add_all(
        [
            _result(ids["predicted"], "a", method="parity"),
            _result(ids["dft"], "a"),
            _result(ids["no_soc"], "a"),
        ]
    )
    session.commit()
    assert _current(session) == [(ids["predicted"], "wcc", "a")]
    # screened again with other settings: the new row replaces the old one
    session.add(_result(ids["predicted"], "b"))
    session.commit()
    assert _current(session) == [(ids["predicted"], "wcc", "b")]
    assert session.scalar(select(func.count()).select_from(text("candidates"))) == 1


def test_two_screens_in_one_flush_leave_the_later_current(session: Session) -> None:
    ids = _hamiltonians(session)
    session.add_all([_result(ids["predicted"], "a"), _result(ids["predicted"], "b")])
    session.commit()
    assert _current(session) == [(ids["predicted"], "wcc", "b")]


def test_a_row_written_without_its_copies_is_refused(session: Session) -> None:
    """The database, not only the ORM, insists on the copies (NOT NULL)."""
    ids = _hamiltonians(session)
    with pytest.raises(IntegrityError):
        session.execute(
            text(
                "INSERT INTO topology_results (hamiltonian_id, method, settings_hash, dimension,"
                " converged, is_metal, current_screen, created_at)"
                " VALUES (:h, 'wcc', 'raw', 3, true, false, false, CURRENT_TIMESTAMP)"
            ),
            {"h": ids["predicted"]},
        )
    session.rollback()


def test_structure_elements_follow_the_structure(session: Session) -> None:
    structure = _structure("BiTeI", 156, ["Te", "Bi", "I", "Bi"])
    session.add(structure)
    session.commit()
    elements = session.scalars(
        select(StructureElementRow.element).where(StructureElementRow.structure_id == structure.id)
    )
    assert sorted(elements) == ["Bi", "I", "Te"]
    has = session.scalars(select(StructureRow.id).where(StructureRow.has_element("Te"))).all()
    assert has == [structure.id]
    assert session.scalars(select(StructureRow.id).where(StructureRow.has_element("T"))).all() == []
    session.delete(structure)
    session.commit()
    assert session.scalar(select(func.count()).select_from(StructureElementRow)) == 0


def test_concurrent_screens_of_one_hamiltonian_leave_one_current(project: Any) -> None:
    """PostgreSQL: a second worker's result for the same Hamiltonian waits for the first's
    commit (row lock), then retires it; without the lock both rows would stay current."""
    engine = make_engine(project.database_url)
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    with Session(engine) as setup:
        hid = _hamiltonians(setup)["predicted"]
    _second_waits_for_first(engine, _result(hid, "a"), _result(hid, "b"))
    with Session(engine) as check:
        assert _current(check) == [(hid, "wcc", "b")]


def _second_waits_for_first(
    engine: Any, first_row: TopologyResultRow, second_row: TopologyResultRow
) -> None:
    """Insert `first_row` in an open transaction, then `second_row` in another from a second
    thread: it must wait until the first commits, then commit itself."""
    first, second = Session(engine), Session(engine)
    first.add(first_row)
    first.flush()  # inserted, locked, not committed
    done = threading.Event()

    def other_worker() -> None:
        second.add(second_row)
        second.commit()
        done.set()

    worker = threading.Thread(target=other_worker)
    worker.start()
    time.sleep(0.5)
    assert not done.is_set()  # waiting for the first transaction
    first.commit()
    worker.join(timeout=10)
    assert done.is_set()
    first.close()
    second.close()


# -- the DFT check pointer (migration 0005) ---------------------------------------------------
def _dft_ham(session: Session, structure_id: int, method: str, spin: str = "soc") -> int:
    basis_id = session.scalar(select(BasisSetRow.id))
    row = HamiltonianRow(
        structure_id=structure_id, basis_set_id=basis_id, kind="dft", spin=spin, method=method,
        uri="x.h5", sha256="", n_orbitals=4, n_edges=2, n_electrons=2.0,
    )  # fmt: skip
    session.add(row)
    session.commit()
    return row.id


def _pointers(session: Session) -> list[tuple[int, int | None]]:
    """(id, dft_topology_result_id) of every current_screen row."""
    rows = session.execute(
        select(TopologyResultRow.id, TopologyResultRow.dft_topology_result_id)
        .where(TopologyResultRow.current_screen)
        .order_by(TopologyResultRow.id)
    )
    return [tuple(row) for row in rows]


def _looked_up(session: Session) -> list[tuple[int, int | None]]:
    """What revision 0004's view computed at query time for the same rows."""
    sql = """SELECT tr.id, (SELECT dtr0.id FROM hamiltonians dh
                JOIN topology_results dtr0 ON dtr0.hamiltonian_id = dh.id
                     AND dtr0.method = 'wcc'
                WHERE dh.structure_id = h.structure_id AND dh.kind = 'dft' AND dh.spin = 'soc'
                ORDER BY dh.id DESC, dtr0.id DESC LIMIT 1)
             FROM topology_results tr JOIN hamiltonians h ON h.id = tr.hamiltonian_id
             WHERE tr.current_screen ORDER BY tr.id"""
    return [tuple(row) for row in session.execute(text(sql))]


def _view_check(session: Session) -> list[tuple[int, int | None, int | None]]:
    sql = (
        "SELECT hamiltonian_id, dft_hamiltonian_id, dft_topology_result_id FROM candidates"
        " ORDER BY hamiltonian_id"
    )
    return [tuple(row) for row in session.execute(text(sql))]


def test_the_dft_check_is_found_whichever_result_comes_first(session: Session) -> None:
    ids = _hamiltonians(session)
    structure_id = session.get(HamiltonianRow, ids["predicted"]).structure_id
    # the DFT check first, then the prediction's result: the INSERT finds it
    dft = _result(ids["dft"], "a")
    session.add(dft)
    session.commit()
    first = _result(ids["predicted"], "a")
    session.add(first)
    session.commit()
    assert _pointers(session) == [(first.id, dft.id)] == _looked_up(session)
    assert _view_check(session) == [(ids["predicted"], ids["dft"], dft.id)]
    # screened again: the new row is current and checked, the old one neither
    second = _result(ids["predicted"], "b")
    session.add(second)
    session.commit()
    assert _pointers(session) == [(second.id, dft.id)]
    session.refresh(first)
    assert first.dft_topology_result_id is None and not first.current_screen
    # a newer DFT Hamiltonian: a parity result or a non-SOC one changes nothing, its 'wcc'
    # result becomes the check of the existing prediction
    newer = _dft_ham(session, structure_id, "dft-newer")
    no_soc = _dft_ham(session, structure_id, "dft-none", spin="none")
    session.add_all([_result(newer, "a", method="parity"), _result(no_soc, "a")])
    session.commit()
    assert _pointers(session) == [(second.id, dft.id)]
    newer_check = _result(newer, "a")
    session.add(newer_check)
    session.commit()
    assert _pointers(session) == [(second.id, newer_check.id)] == _looked_up(session)
    # another 'wcc' result of the older DFT Hamiltonian does not take over
    session.add(_result(ids["dft"], "c"))
    session.commit()
    assert _pointers(session) == [(second.id, newer_check.id)] == _looked_up(session)
    assert _view_check(session) == [(ids["predicted"], newer, newer_check.id)]


def test_a_dft_check_written_after_the_prediction_reaches_it(session: Session) -> None:
    ids = _hamiltonians(session)
    prediction = _result(ids["predicted"], "a")
    session.add(prediction)
    session.commit()
    assert _pointers(session) == [(prediction.id, None)]
    unchecked = (
        "SELECT count(*) FROM candidates WHERE is_candidate AND dft_topology_result_id IS NULL"
    )
    assert session.scalar(text(unchecked)) == 1
    dft = _result(ids["dft"], "a")
    session.add(dft)
    session.commit()
    assert _pointers(session) == [(prediction.id, dft.id)] == _looked_up(session)
    assert session.scalar(text(unchecked)) == 0
    # both in one flush, in either order
    again = [_result(ids["predicted"], "b"), _result(ids["dft"], "b")]
    session.add_all(again)
    session.commit()
    assert _pointers(session) == [(again[0].id, again[1].id)] == _looked_up(session)
    again = [_result(ids["dft"], "c"), _result(ids["predicted"], "c")]
    session.add_all(again)
    session.commit()
    assert _pointers(session) == [(again[1].id, again[0].id)] == _looked_up(session)


@pytest.mark.parametrize("dft_first", [True, False])
def test_concurrent_prediction_and_dft_check_see_each_other(project: Any, dft_first: bool) -> None:
    """PostgreSQL: a prediction's result and its structure's DFT check written by two open
    transactions. Without the structure lock each would miss the other (READ COMMITTED) and
    the prediction would stay unchecked; with it the second waits and then sees the first."""
    engine = make_engine(project.database_url)
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    with Session(engine) as setup:
        ids = _hamiltonians(setup)
    order = ["dft", "predicted"] if dft_first else ["predicted", "dft"]
    _second_waits_for_first(engine, _result(ids[order[0]], "a"), _result(ids[order[1]], "a"))
    with Session(engine) as check:
        (pointer,) = _pointers(check)
        assert pointer[1] is not None and [pointer] == _looked_up(check)


def test_two_screening_workers_do_not_wait_for_each_other(project: Any) -> None:
    """PostgreSQL: predictions of one structure by two model versions, screened in two open
    transactions, share the structure lock."""
    engine = make_engine(project.database_url)
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    with Session(engine) as setup:
        ids = _hamiltonians(setup)
        predicted = setup.get(HamiltonianRow, ids["predicted"])
        version = ModelVersionRow(
            model_id=predicted.model_version.model_id, version=2, weights_uri="w",
            weights_sha256="", config={},
        )  # fmt: skip
        setup.add(version)
        setup.flush()
        other = HamiltonianRow(
            structure_id=predicted.structure_id, basis_set_id=predicted.basis_set_id,
            kind="predicted", spin="soc", method="model:m@2", model_version_id=version.id,
            uri="y.h5", sha256="", n_orbitals=4, n_edges=2, n_electrons=2.0,
        )  # fmt: skip
        setup.add(other)
        setup.commit()
        other_id = other.id
    first, second = Session(engine), Session(engine)
    try:
        first.add(_result(ids["predicted"], "a"))
        first.flush()
        second.execute(text("SET LOCAL lock_timeout = '2s'"))
        second.add(_result(other_id, "a"))
        second.commit()  # no wait: a shared lock
        first.commit()
    finally:
        first.close()
        second.close()
