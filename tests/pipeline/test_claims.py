"""Job claims on real SQLite and PostgreSQL: creation, leases, takeover, failures, the lock."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from conftest import add_structures
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hamdb.db.engine import make_engine
from hamdb.db.models import PredictionJobRow
from hamdb.errors import DatabaseError
from hamdb.pipeline import claims


def _statuses(session: Session) -> dict[int, str]:
    session.expire_all()
    return dict(session.execute(select(PredictionJobRow.id, PredictionJobRow.status)).all())


def test_enqueue_creates_one_job_per_structure_once(session: Session, model_version_id: int):
    ids = add_structures(session, 7)
    assert claims.enqueue(session, model_version_id) == 7
    session.commit()
    assert claims.enqueue(session, model_version_id) == 0
    session.commit()
    rows = session.execute(select(PredictionJobRow.structure_id, PredictionJobRow.status)).all()
    assert sorted(r.structure_id for r in rows) == ids
    assert {r.status for r in rows} == {"pending"}


def test_claim_hands_each_job_to_one_worker(session: Session, model_version_id: int):
    add_structures(session, 10)
    claims.enqueue(session, model_version_id)
    session.commit()
    first = claims.claim(session, model_version_id, "w1", 4)
    session.commit()
    second = claims.claim(session, model_version_id, "w2", 100)
    session.commit()
    assert len(first) == 4 and len(second) == 6
    assert not {c.job_id for c in first} & {c.job_id for c in second}
    assert all(c.attempts == 1 for c in first + second)
    assert claims.claim(session, model_version_id, "w3", 100) == []


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_claims_skip_locked_rows(project: Any, session: Session, model_version_id: int):
    """Two transactions claiming at the same time never get the same row and never wait."""
    add_structures(session, 20)
    claims.enqueue(session, model_version_id)
    session.commit()
    engine = make_engine(project.database_url)
    holder = Session(engine)
    held = claims.claim(holder, model_version_id, "slow", 5)  # transaction left open: rows locked
    start = time.perf_counter()
    with Session(engine) as other, other.begin():
        got = claims.claim(other, model_version_id, "fast", 100)
    assert time.perf_counter() - start < 2.0, "the second claim waited for the first one's lock"
    holder.commit()
    holder.close()
    assert len(held) == 5 and len(got) == 15
    assert not {c.job_id for c in held} & {c.job_id for c in got}


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_expired_lease_is_taken_over_and_counted(session: Session, model_version_id: int):
    add_structures(session, 3)
    claims.enqueue(session, model_version_id)
    session.commit()
    dead = claims.claim(session, model_version_id, "dead", 3, lease_s=0.2)
    session.commit()
    assert claims.claim(session, model_version_id, "alive", 3) == []  # leases still valid
    session.commit()
    time.sleep(0.4)
    taken = claims.claim(session, model_version_id, "alive", 3, max_attempts=3)
    session.commit()
    assert sorted(c.job_id for c in taken) == sorted(c.job_id for c in dead)
    assert {c.attempts for c in taken} == {2}
    # The dead worker cannot finish what it lost.
    assert not claims.finish(session, "dead", dead[0].job_id, hamiltonian_id=None)  # type: ignore[arg-type]
    session.rollback()


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_job_whose_worker_always_dies_ends_failed(session: Session, model_version_id: int):
    add_structures(session, 1)
    claims.enqueue(session, model_version_id)
    session.commit()
    for _ in range(2):
        assert (
            len(claims.claim(session, model_version_id, "w", 1, lease_s=0.05, max_attempts=2)) == 1
        )
        session.commit()
        time.sleep(0.1)
    assert claims.claim(session, model_version_id, "w", 1, max_attempts=2) == []
    session.commit()
    job = session.execute(select(PredictionJobRow)).scalar_one()
    assert job.status == "failed" and "lease expired after 2 attempts" in job.last_error


def test_heartbeat_keeps_the_lease_alive(project: Any, session: Session, model_version_id: int):
    add_structures(session, 2)
    claims.enqueue(session, model_version_id)
    session.commit()
    mine = claims.claim(session, model_version_id, "w", 2, lease_s=0.6)
    session.commit()
    engine = make_engine(project.database_url)
    with claims.Heartbeat(engine, "w", lease_s=0.6) as beat:
        beat.hold([c.job_id for c in mine])
        time.sleep(1.5)  # well past the original lease
        session.expire_all()
        now = claims.db_now(session)
        leases = session.execute(select(PredictionJobRow.lease_expires_at)).scalars().all()
        assert all(lease > now for lease in leases)
    assert beat.lost == 0


def test_failures_permanent_or_retried_then_retry_failed(session: Session, model_version_id: int):
    add_structures(session, 2)
    claims.enqueue(session, model_version_id)
    session.commit()
    a, b = claims.claim(session, model_version_id, "w", 2, max_attempts=3)
    assert claims.fail(session, "w", a, "ModelError: unknown element", permanent=True) == "failed"
    assert claims.fail(session, "w", b, "OSError: disk hiccup", permanent=False) == "pending"
    session.commit()
    assert sorted(_statuses(session).values()) == ["failed", "pending"]
    status = claims.job_status(session, model_version_id)
    assert status.counts["failed"] == 1 and status.counts["pending"] == 1
    assert "unknown element" in status.last_errors[0][1]
    assert claims.retry_failed(session) == 1
    session.commit()
    assert set(_statuses(session).values()) == {"pending"}


def test_job_status_counts_throughput_and_oldest_lease(session: Session, model_version_id: int):
    add_structures(session, 4)
    claims.enqueue(session, model_version_id)
    session.commit()
    got = claims.claim(session, model_version_id, "w", 2, lease_s=60)
    session.execute(
        update(PredictionJobRow)
        .where(PredictionJobRow.id == got[0].job_id)
        .values(status="done", heartbeat_at=claims.db_now(session) - timedelta(seconds=30))
    )
    session.commit()
    status = claims.job_status(session)
    assert status.counts == {"pending": 2, "claimed": 1, "done": 1, "failed": 0}
    assert status.done_last_10_min == 1 and status.throughput_per_s > 0
    assert status.oldest_lease_expires_at is not None and status.workers == ["w"]
    assert status.as_dict()["counts"]["done"] == 1


def test_sqlite_second_writer_gets_a_clear_error(sqlite_project: Any):
    inside, release = threading.Event(), threading.Event()

    def first() -> None:
        with claims.writer_lock(sqlite_project.database_url, "first"):
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inside.wait(5)
        # flock is per open file description, so a second open in this process conflicts too.
        lock = claims.writer_lock(sqlite_project.database_url, "second")
        with pytest.raises(DatabaseError, match=r"another hamdb writer.*use PostgreSQL"), lock:
            pass
    finally:
        release.set()
        thread.join()
    with claims.writer_lock(sqlite_project.database_url, "third"):
        pass


def test_writer_lock_is_a_no_op_for_postgresql():
    with (
        claims.writer_lock("postgresql+psycopg://x@127.0.0.1/y"),
        claims.writer_lock("postgresql+psycopg://x@127.0.0.1/y"),
    ):
        pass


def test_release_gives_jobs_back_without_counting_the_attempt(
    session: Session, model_version_id: int
):
    add_structures(session, 2)
    claims.enqueue(session, model_version_id)
    session.commit()
    got = claims.claim(session, model_version_id, "w", 2)
    assert claims.release(session, "other", [c.job_id for c in got]) == 0  # not its jobs
    assert claims.release(session, "w", [c.job_id for c in got]) == 2
    session.commit()
    session.expire_all()
    jobs = session.execute(select(PredictionJobRow)).scalars().all()
    assert {(j.status, j.attempts, j.worker_id) for j in jobs} == {("pending", 0, None)}
