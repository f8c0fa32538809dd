"""`predict --pending` workers: real processes, real SQLite/PostgreSQL, real HDF5 store.

Only the model is a test double (stub_model.StubPredictor, fast and deterministic); claims,
leases, files and rows are the production code paths.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import add_structures
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stub_model import UNKNOWN_ELEMENT, factory

from hamdb.db.engine import make_engine
from hamdb.db.models import HamiltonianRow, PredictionJobRow, TopologyResultRow
from hamdb.pipeline import claims
from hamdb.pipeline.workers import WorkerOptions, run, run_worker

WORKER = Path(__file__).resolve().parent / "worker_proc.py"
postgres_only = [
    pytest.mark.postgres,
    pytest.mark.parametrize("db_url", ["postgresql"], indirect=True),
]


def _spawn(project: Any, mv: int, **options: Any) -> subprocess.Popen[str]:
    args = [f"{k}={v}" for k, v in options.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            project.database_url,
            str(project.store_path),
            str(mv),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _check_consistent(session: Session, project: Any, mv: int, n: int, all_done: bool) -> None:
    """Each job done once or not yet; each done job has exactly one row; each row a file."""
    from hamdb.store.store import HamiltonianStore

    session.rollback()  # a fresh snapshot (and fresh objects)
    jobs = session.execute(select(PredictionJobRow).where(PredictionJobRow.model_version_id == mv))
    jobs = jobs.scalars().all()
    assert len(jobs) == n
    rows = (
        session.execute(select(HamiltonianRow).where(HamiltonianRow.model_version_id == mv))
        .scalars()
        .all()
    )
    by_structure = {r.structure_id: r for r in rows}
    assert len(by_structure) == len(rows), "a structure got two predicted Hamiltonians"
    now = claims.db_now(session)
    for job in jobs:
        if job.status == "done":
            assert by_structure[job.structure_id].id == job.hamiltonian_id
        else:
            assert not all_done or job.status == "failed", f"job {job.id} is {job.status}"
            assert job.status in ("pending", "claimed", "failed")
            assert job.structure_id not in by_structure, "a row without its job marked done"
            if job.status == "claimed":  # a killed worker's claim: expired, so pending again
                assert job.lease_expires_at <= now
    store = HamiltonianStore(project.store_path)
    for row in rows:
        arrays, _ = store.get(row.uri, verify=True)  # a row always has its (intact) file
        assert arrays["h"].size > 0


def test_worker_predicts_everything_once_and_fails_a_bad_structure_alone(
    project: Any, session: Session, model_version_id: int
):
    add_structures(session, 20)
    (bad,) = add_structures(session, 1, species=["Bi", UNKNOWN_ELEMENT])
    add_structures(session, 5)
    options = WorkerOptions(model=str(model_version_id), batch=8)
    with claims.writer_lock(project.database_url):
        stats = run_worker(project, options, factory)
    assert (stats.done, stats.failed) == (25, 1)
    job = session.execute(
        select(PredictionJobRow).where(PredictionJobRow.structure_id == bad)
    ).scalar_one()
    assert job.status == "failed" and "never seen element Og" in job.last_error
    _check_consistent(session, project, model_version_id, 26, all_done=False)
    with claims.writer_lock(project.database_url):
        again = run_worker(project, options, factory)
    assert (again.done, again.failed, again.created_jobs) == (0, 0, 0)
    assert set(stats.seconds) >= {"claim", "model", "store", "db"}


def test_run_with_limit_and_sqlite_compute_processes(sqlite_project: Any):
    from conftest import register_model

    with Session(make_engine(sqlite_project.database_url)) as session:
        mv = register_model(session)
        add_structures(session, 12)
        options = WorkerOptions(model=str(mv), batch=4, limit=6)
        first = run(sqlite_project, options, workers=2, factory=factory)
        assert first.done == 6
        rest = run(
            sqlite_project, WorkerOptions(model=str(mv), batch=4), workers=1, factory=factory
        )
        assert rest.done == 6
        _check_consistent(session, sqlite_project, mv, 12, all_done=True)


def test_sqlite_second_predict_is_refused_cleanly(sqlite_project: Any):
    from conftest import register_model

    with Session(make_engine(sqlite_project.database_url)) as session:
        mv = register_model(session)
        add_structures(session, 40)
    first = _spawn(sqlite_project, mv, delay_s=0.5, batch=4)
    lock = Path(sqlite_project.database_url[len("sqlite:///") :] + ".writer.lock")
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not (lock.exists() and lock.read_text()):
            time.sleep(0.1)  # until the first one holds the writer lock
        second = _spawn(sqlite_project, mv)
        _, err = second.communicate(timeout=60)
        assert second.returncode != 0
        assert "database is used by another hamdb writer" in err
        assert "database is locked" not in err
    finally:
        first.kill()
        first.wait()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.postgres
@pytest.mark.slow
def test_four_processes_share_two_thousand_jobs(
    project: Any, session: Session, model_version_id: int
):
    n = 2000
    add_structures(session, n)
    workers = [_spawn(project, model_version_id, batch=25) for _ in range(4)]
    outputs = [w.communicate(timeout=170) for w in workers]
    for w, (_, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err[-2000:]
    stats = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(s["done"] for s in stats) == n
    assert sum(1 for s in stats if s["done"] > 0) >= 2, "the work was not shared"
    _check_consistent(session, project, model_version_id, n, all_done=True)
    assert session.execute(select(func.count()).select_from(HamiltonianRow)).scalar_one() == n


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.postgres
@pytest.mark.slow
def test_kill_minus_nine_at_random_moments(project: Any, session: Session, model_version_id: int):
    n = 400
    add_structures(session, n)
    rng = random.Random(8)
    lease = 2.0
    opts = {"batch": 10, "lease_s": lease, "delay_s": 0.004, "max_attempts": 50}
    for _round in range(3):
        workers = [_spawn(project, model_version_id, **opts) for _ in range(4)]
        for w in workers:
            time.sleep(rng.uniform(1.5, 4.0))  # start-up takes ~2 s: kill mid-work
            w.send_signal(signal.SIGKILL)
        for w in workers:
            w.wait()
        time.sleep(lease + 0.5)  # the dead workers' leases expire
        _check_consistent(session, project, model_version_id, n, all_done=False)
        assert not session.execute(
            select(func.count()).where(PredictionJobRow.status == "failed")
        ).scalar_one()
    final = _spawn(project, model_version_id, batch=50)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err[-2000:]
    _check_consistent(session, project, model_version_id, n, all_done=True)
    from hamdb.store.store import HamiltonianStore

    store = HamiltonianStore(project.store_path)
    referenced = {r for (r,) in session.execute(select(HamiltonianRow.uri))}
    assert referenced <= set(store.iter_files())  # no row without a file (orphans are gc's)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.postgres
def test_stopped_worker_loses_its_lease_within_the_lease_time(
    project: Any, session: Session, model_version_id: int
):
    add_structures(session, 6)
    lease = 3.0
    # Each structure takes 1 s in the stand-in model, so the worker holds its claim for ~6 s.
    stuck = _spawn(project, model_version_id, batch=6, lease_s=lease, delay_s=1.0)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            session.expire_all()
            held = session.execute(
                select(func.count()).where(PredictionJobRow.status == "claimed")
            ).scalar_one()
            if held == 6:
                break
            time.sleep(0.1)
        assert held == 6
        time.sleep(lease)  # heartbeats have renewed the lease past its first expiry
        session.expire_all()
        assert (
            session.execute(
                select(func.count()).where(PredictionJobRow.status == "claimed")
            ).scalar_one()
            == 6
        )
        stuck.send_signal(signal.SIGSTOP)  # alive but silent: no heartbeat any more
        stopped = time.time()
        taken: list[claims.Claim] = []
        while not taken and time.time() - stopped < 2 * lease:
            taken = claims.claim(session, model_version_id, "rescuer", 6, lease_s=60)
            session.commit()
            time.sleep(0.05)
        took = time.time() - stopped
        assert len(taken) == 6 and took <= lease + 0.3, f"lease lost after {took:.2f} s"
        stuck.send_signal(signal.SIGCONT)  # it wakes up: it must not commit what it lost
        stuck.communicate(timeout=60)
        session.expire_all()
        assert session.execute(select(func.count()).select_from(HamiltonianRow)).scalar_one() == 0
        assert {w for (w,) in session.execute(select(PredictionJobRow.worker_id))} == {"rescuer"}
    finally:
        stuck.kill()
        stuck.wait()


def test_screen_after_each_batch_fills_the_candidates_view(
    project: Any, session: Session, model_version_id: int
):
    from hamdb.pipeline.candidates import candidates_query, fetch

    ids = add_structures(session, 5)
    options = WorkerOptions(model=str(model_version_id), batch=2, screen=True)
    with claims.writer_lock(project.database_url):
        stats = run_worker(project, options, factory)
    assert (stats.done, stats.screened) == (5, 5)
    session.rollback()
    rows = fetch(session, candidates_query(only_candidates=False))
    assert sorted(r["structure_id"] for r in rows) == ids
    # The stand-in model's bands are atomic levels: an insulator, Z2 trivial, every row.
    assert {r["z2_class"] for r in rows} == {"trivial"}
    assert all(r["gap_ev"] > 0.5 and r["uncertainty_ev"] == 0.01 for r in rows)


def test_the_screen_after_prediction_uses_the_given_overlap_filter(
    project: Any, session: Session, model_version_id: int
):
    from hamdb.topology.analysis import TopologySettings

    add_structures(session, 2)
    options = WorkerOptions(model=str(model_version_id), batch=2, screen=True, screen_s_min=1e-3)
    with claims.writer_lock(project.database_url):
        assert run_worker(project, options, factory).screened == 2
    session.rollback()
    hashes = set(session.execute(select(TopologyResultRow.settings_hash)).scalars())
    assert hashes == {TopologySettings(s_min=1e-3).sha256()} != {TopologySettings().sha256()}


def test_sqlite_writer_of_another_kind_gives_a_clear_error(
    sqlite_project: Any, monkeypatch: pytest.MonkeyPatch
):
    import sqlite3

    from conftest import register_model

    import hamdb.db.engine as engine_module
    from hamdb.errors import DatabaseError

    with Session(make_engine(sqlite_project.database_url)) as session:
        mv = register_model(session)
        add_structures(session, 3)
    engine_module.dispose_all()
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 300)
    other = sqlite3.connect(sqlite_project.database_url[len("sqlite:///") :], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # e.g. an ingest in the middle of a long transaction
    try:
        with pytest.raises(DatabaseError, match="another process is writing this SQLite"):
            run(sqlite_project, WorkerOptions(model=str(mv)), factory=factory)
    finally:
        other.rollback()
        other.close()
    assert run(sqlite_project, WorkerOptions(model=str(mv)), factory=factory).done == 3


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.postgres
def test_run_starts_independent_claimers_on_postgresql(
    project: Any, session: Session, model_version_id: int
):
    add_structures(session, 40)
    options = WorkerOptions(model=str(model_version_id), batch=5)
    stats = run(project, options, workers=2, factory=factory)
    assert stats.done == 40 and stats.worker_id == "2 processes"
    _check_consistent(session, project, model_version_id, 40, all_done=True)


def test_a_structure_predicted_meanwhile_is_dropped_alone(
    project: Any, session: Session, model_version_id: int
):
    """A row for a claimed structure appears between claim and commit (e.g. `hamdb predict 7`
    by hand): the bulk insert of the batch collides, and the batch falls back to one savepoint
    per job, so only that job loses its result and every other one is committed."""
    from stub_model import StubPredictor

    from hamdb.db.models import StructureRow
    from hamdb.io.catalog import save_hamiltonian
    from hamdb.pipeline.workers import model_method, structure_of
    from hamdb.store.store import HamiltonianStore

    ids = add_structures(session, 6)
    session.commit()

    class ByHand(StubPredictor):
        """Predicts the batch, and meanwhile someone stores structure ids[2] by hand."""

        def predict(self, structures):
            out = super().predict(structures)
            if len(structures) > 1:
                with Session(make_engine(project.database_url)) as other, other.begin():
                    row = other.get(StructureRow, ids[2])
                    (ham,) = StubPredictor(model_version_id).predict(
                        [structure_of(row.structure_json)]
                    )
                    save_hamiltonian(
                        other, HamiltonianStore(project.store_path), ham,
                        structure_id=ids[2], kind="predicted",
                        method=model_method(other, model_version_id),
                        model_version_id=model_version_id,
                    )  # fmt: skip
            return out

    options = WorkerOptions(model=str(model_version_id), batch=6, lease_s=5.0)
    with claims.writer_lock(project.database_url):
        stats = run_worker(project, options, lambda p, spec: ByHand(int(spec)))
    assert (stats.done, stats.lost_leases, stats.failed) == (5, 1, 0)
    session.rollback()
    rows = session.execute(select(HamiltonianRow.structure_id)).scalars().all()
    assert sorted(rows) == sorted(ids)  # five by the worker, one by hand, none twice
