"""Prediction jobs: who computes what, so that every structure is predicted exactly once.

A job is a (structure, model version) row of `prediction_jobs` (DESIGN.md §4-5) moving through
`pending -> claimed -> done` (or `failed`). Workers on any number of hosts share one PostgreSQL
database and claim batches with `SELECT ... FOR UPDATE SKIP LOCKED`: two workers never receive
the same row while both hold valid leases. A claim carries a lease (`lease_expires_at`) that a
heartbeat thread renews; a worker that dies or hangs stops renewing it, and once it has expired
any worker may take the job over. Each claim counts one attempt, so a structure that kills its
worker every time ends `failed` after `max_attempts` instead of looping forever.

"Exactly once" rests on two guards: finishing a job is an UPDATE conditioned on the finishing
worker still holding the claim, and the predicted Hamiltonian row is unique per
(structure, kind, spin, method). A worker whose lease was taken over drops that result (its
savepoint is rolled back, the rest of its batch commits); the HDF5 file it may already have
written is content-addressed (the other worker writes the same name) or an orphan that
`hamdb store gc` removes.

SQLite allows one writer at a time: `writer_lock` turns a second concurrent `hamdb predict`
(or `hamdb verify`, `hamdb jobs retry`) into a clear one-line error instead of "database is
locked" tracebacks, and the holder takes over a dead run's claims at once (`expire_orphans`).
Times come from the database server's clock on PostgreSQL (hosts' clocks may disagree) and
from this process's clock on SQLite (one host by construction); all are UTC.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, case, exists, func, literal, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hamdb.db.models import HamiltonianRow, PredictionJobRow, StructureRow, UTCDateTime
from hamdb.errors import DatabaseError

PENDING, CLAIMED, DONE, FAILED = "pending", "claimed", "done", "failed"
DEFAULT_LEASE_S = 120.0
DEFAULT_MAX_ATTEMPTS = 3
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Claim:
    """One claimed job: the row id, its structure and how many times it has been claimed."""

    job_id: int
    structure_id: int
    attempts: int


@dataclass(frozen=True)
class JobStatus:
    """What `hamdb jobs status` prints: counts by state, throughput and the oldest lease."""

    counts: dict[str, int]
    done_last_10_min: int
    throughput_per_s: float
    oldest_lease_expires_at: datetime | None
    expired_leases: int
    workers: list[str] = field(default_factory=list)
    last_errors: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "done_last_10_min": self.done_last_10_min,
            "throughput_per_s": round(self.throughput_per_s, 3),
            "oldest_lease_expires_at": (
                self.oldest_lease_expires_at.isoformat() if self.oldest_lease_expires_at else None
            ),
            "expired_leases": self.expired_leases,
            "workers": self.workers,
            "failed_examples": [
                {"structure_id": sid, "error": err} for sid, err in self.last_errors
            ],
        }


def worker_name() -> str:
    """A worker id unique across hosts: host name and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def is_sqlite(session_or_engine: Session | Engine) -> bool:
    bind = (
        session_or_engine.get_bind()
        if isinstance(session_or_engine, Session)
        else session_or_engine
    )
    return bind.dialect.name == "sqlite"


def db_now(session: Session) -> datetime:
    """The current UTC time as the database sees it (server clock on PostgreSQL).

    clock_timestamp(), not now(): now() is frozen at the start of the transaction.
    """
    if is_sqlite(session):
        return datetime.now(UTC)
    return session.execute(text("SELECT clock_timestamp()")).scalar_one().astimezone(UTC)


def _jobs() -> Any:
    return PredictionJobRow.__table__


# -- job creation ----------------------------------------------------------------------------
def enqueue(
    session: Session, model_version_id: int, structure_ids: Sequence[int] | None = None
) -> int:
    """Create a pending job for each structure that has neither a job nor a predicted
    Hamiltonian for this model version; returns how many were created.

    Safe to run concurrently from many workers: the unique (structure, model version) pair
    lets PostgreSQL skip rows another worker inserted first (ON CONFLICT DO NOTHING).
    """
    jobs = _jobs()
    ham = HamiltonianRow.__table__
    st = StructureRow.__table__
    now = db_now(session)
    query = select(
        st.c.id,
        literal(model_version_id),
        literal(PENDING),
        literal(0),
        literal(now, type_=UTCDateTime()),
        literal(now, type_=UTCDateTime()),
    ).where(
        ~exists().where(
            and_(jobs.c.structure_id == st.c.id, jobs.c.model_version_id == model_version_id)
        ),
        ~exists().where(
            and_(
                ham.c.structure_id == st.c.id,
                ham.c.kind == "predicted",
                ham.c.model_version_id == model_version_id,
            )
        ),
    )
    if structure_ids is not None:
        query = query.where(st.c.id.in_(list(structure_ids)))
    # One insertion order for every worker: two enqueues waiting on each other's uncommitted
    # rows then queue up instead of deadlocking.
    query = query.order_by(st.c.id)
    columns = ["structure_id", "model_version_id", "status", "attempts", "created_at", "updated_at"]
    if is_sqlite(session):
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    stmt = dialect_insert(jobs).from_select(columns, query).on_conflict_do_nothing()
    # Count with RETURNING: psycopg reports no rowcount for INSERT ... ON CONFLICT here.
    return len(session.execute(stmt.returning(jobs.c.id)).all())


# -- claiming --------------------------------------------------------------------------------
def claim(
    session: Session,
    model_version_id: int,
    worker_id: str,
    batch: int,
    lease_s: float = DEFAULT_LEASE_S,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> list[Claim]:
    """Claim up to `batch` jobs: pending ones, or claimed ones whose lease has expired.

    On PostgreSQL rows locked by another worker's claim transaction are skipped, never waited
    for. An expired job that has already used `max_attempts` claims is marked failed instead
    (its worker died each time: likely the structure itself kills workers). The caller
    commits.
    """
    jobs = _jobs()
    now = db_now(session)
    sqlite = is_sqlite(session)
    takeover = and_(jobs.c.status == CLAIMED, jobs.c.lease_expires_at < now)
    query = (
        select(jobs.c.id, jobs.c.structure_id, jobs.c.attempts)
        .where(jobs.c.model_version_id == model_version_id)
        .where(or_(jobs.c.status == PENDING, takeover))
        .order_by(jobs.c.id)
        .limit(batch)
    )
    if not sqlite:
        query = query.with_for_update(skip_locked=True)
    rows = session.execute(query).all()
    exhausted = [r.id for r in rows if r.attempts >= max_attempts]
    if exhausted:
        session.execute(
            update(jobs)
            .where(jobs.c.id.in_(exhausted))
            .values(
                status=FAILED,
                worker_id=None,
                lease_expires_at=None,
                last_error=f"lease expired after {max_attempts} attempts "
                "(its worker died or hung each time)",
            )
        )
    claims = [
        Claim(r.id, r.structure_id, r.attempts + 1) for r in rows if r.attempts < max_attempts
    ]
    if claims:
        session.execute(
            update(jobs)
            .where(jobs.c.id.in_([c.job_id for c in claims]))
            .values(
                status=CLAIMED,
                worker_id=worker_id,
                lease_expires_at=now + timedelta(seconds=lease_s),
                heartbeat_at=now,
                attempts=jobs.c.attempts + 1,
            )
        )
    return claims


def expire_orphans(session: Session) -> int:
    """SQLite, under `writer_lock`: every claimed job belongs to a run that died; expire its
    lease now so it is taken over at once (a PostgreSQL worker waits for the lease instead)."""
    jobs = _jobs()
    result = session.execute(
        update(jobs).where(jobs.c.status == CLAIMED).values(lease_expires_at=db_now(session))
    )
    return int(result.rowcount or 0)


def renew(session: Session, worker_id: str, job_ids: Sequence[int], lease_s: float) -> int:
    """Extend the lease of jobs this worker still holds; returns how many it still holds."""
    if not job_ids:
        return 0
    jobs = _jobs()
    now = db_now(session)
    result = session.execute(
        update(jobs)
        .where(
            jobs.c.id.in_(list(job_ids)), jobs.c.worker_id == worker_id, jobs.c.status == CLAIMED
        )
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_s))
    )
    return int(result.rowcount or 0)


def finish(session: Session, worker_id: str, job_id: int, hamiltonian_id: int) -> bool:
    """Mark a job done with its Hamiltonian, if this worker still holds the claim.

    False means the lease was lost (another worker took the job over): the caller must roll
    back its transaction so the result is not committed twice.
    """
    jobs = _jobs()
    result = session.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.worker_id == worker_id, jobs.c.status == CLAIMED)
        .values(
            status=DONE,
            hamiltonian_id=hamiltonian_id,
            heartbeat_at=db_now(session),
            lease_expires_at=None,
            last_error=None,
        )
    )
    return int(result.rowcount or 0) == 1


def finish_many(session: Session, worker_id: str, done: Mapping[int, int]) -> set[int]:
    """Mark jobs done with their Hamiltonian ids ({job id: hamiltonian id}), those this
    worker still holds, in one statement; returns the ids it finished.

    A job missing from the result was taken over (lease lost): the caller must not commit
    its Hamiltonian row.
    """
    if not done:
        return set()
    jobs = _jobs()
    stmt = (
        update(jobs)
        .where(jobs.c.id.in_(list(done)), jobs.c.worker_id == worker_id, jobs.c.status == CLAIMED)
        .values(
            status=DONE,
            hamiltonian_id=case(dict(done), value=jobs.c.id),
            heartbeat_at=db_now(session),
            lease_expires_at=None,
            last_error=None,
        )
        .returning(jobs.c.id)
    )
    return {int(job_id) for (job_id,) in session.execute(stmt)}


def fail(
    session: Session,
    worker_id: str,
    claim_: Claim,
    error: str,
    permanent: bool,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> str:
    """Record a failed attempt: `failed` if permanent or out of attempts, else `pending` again.

    Returns the new status. A permanent error is one that another try cannot change (the model
    does not cover an element); a transient one (I/O, a crash in a library) is retried.
    """
    jobs = _jobs()
    status = FAILED if permanent or claim_.attempts >= max_attempts else PENDING
    session.execute(
        update(jobs)
        .where(jobs.c.id == claim_.job_id, jobs.c.worker_id == worker_id, jobs.c.status == CLAIMED)
        .values(
            status=status,
            worker_id=None if status == PENDING else worker_id,
            lease_expires_at=None,
            last_error=error[:MAX_ERROR_CHARS],
        )
    )
    return status


def release(session: Session, worker_id: str, job_ids: Sequence[int]) -> int:
    """Give claimed jobs back (an interrupted worker): pending again, the attempt not counted."""
    if not job_ids:
        return 0
    jobs = _jobs()
    result = session.execute(
        update(jobs)
        .where(
            jobs.c.id.in_(list(job_ids)), jobs.c.worker_id == worker_id, jobs.c.status == CLAIMED
        )
        .values(
            status=PENDING,
            worker_id=None,
            lease_expires_at=None,
            attempts=func.greatest(jobs.c.attempts - 1, 0)
            if not is_sqlite(session)
            else func.max(jobs.c.attempts - 1, 0),
        )
    )
    return int(result.rowcount or 0)


def retry_failed(session: Session, model_version_id: int | None = None) -> int:
    """Put failed jobs back to pending with a fresh attempt count; returns how many."""
    jobs = _jobs()
    stmt = update(jobs).where(jobs.c.status == FAILED)
    if model_version_id is not None:
        stmt = stmt.where(jobs.c.model_version_id == model_version_id)
    result = session.execute(
        stmt.values(status=PENDING, attempts=0, worker_id=None, lease_expires_at=None)
    )
    return int(result.rowcount or 0)


def job_status(session: Session, model_version_id: int | None = None) -> JobStatus:
    """Counts by state, jobs finished in the last 10 minutes, the oldest live lease."""
    jobs = _jobs()
    where = [] if model_version_id is None else [jobs.c.model_version_id == model_version_id]
    counts = {s: 0 for s in (PENDING, CLAIMED, DONE, FAILED)}
    for status, n in session.execute(
        select(jobs.c.status, func.count()).where(*where).group_by(jobs.c.status)
    ):
        counts[status] = int(n)
    now = db_now(session)
    window = timedelta(minutes=10)
    recent = session.execute(
        select(func.count(), func.min(jobs.c.heartbeat_at)).where(
            *where, jobs.c.status == DONE, jobs.c.heartbeat_at >= now - window
        )
    ).one()
    done_recent = int(recent[0])
    throughput = 0.0
    if done_recent and recent[1] is not None:
        throughput = done_recent / max((now - recent[1]).total_seconds(), 1.0)
    oldest, expired = session.execute(
        select(
            func.min(jobs.c.lease_expires_at),
            func.count().filter(jobs.c.lease_expires_at < now),
        ).where(*where, jobs.c.status == CLAIMED)
    ).one()
    workers = sorted(
        w
        for (w,) in session.execute(
            select(jobs.c.worker_id).where(*where, jobs.c.status == CLAIMED).distinct()
        )
        if w
    )
    errors = [
        (int(sid), str(err))
        for sid, err in session.execute(
            select(jobs.c.structure_id, jobs.c.last_error)
            .where(*where, jobs.c.status == FAILED)
            .order_by(jobs.c.id)
            .limit(5)
        )
    ]
    return JobStatus(counts, done_recent, throughput, oldest, int(expired or 0), workers, errors)


# -- the heartbeat ---------------------------------------------------------------------------
class Heartbeat:
    """A daemon thread renewing this worker's leases every `lease_s / 3` seconds.

    It uses its own connection so a long model step in the main thread never delays it. Jobs
    whose claim was taken over are reported in `lost` (the finishing UPDATE checks again).
    """

    def __init__(self, engine: Engine, worker_id: str, lease_s: float) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.lease_s = lease_s
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hamdb-heartbeat", daemon=True)
        self.lost = 0

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.lease_s)

    def hold(self, job_ids: Sequence[int]) -> None:
        with self._lock:
            self._ids = set(job_ids)

    def _run(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            with self._lock:
                ids = sorted(self._ids)
            if not ids:
                continue
            try:
                with Session(self.engine) as session, session.begin():
                    held = renew(session, self.worker_id, ids, self.lease_s)
                self.lost += len(ids) - held
            except Exception:
                continue


# -- the SQLite single-writer lock -----------------------------------------------------------
def sqlite_path(database_url: str) -> Path | None:
    """The file of a sqlite:/// URL, or None for other databases and in-memory SQLite."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or ":memory:" in database_url:
        return None
    return Path(database_url[len(prefix) :].split("?", 1)[0])


@contextmanager
def writer_lock(database_url: str, what: str = "hamdb predict") -> Iterator[None]:
    """Hold the one-writer lock of a SQLite database (a no-op for PostgreSQL).

    An OS file lock (flock) beside the database file: released by the kernel if the process is
    killed, so a crashed run never blocks the next one. A second writer fails at once with a
    one-line DatabaseError naming the holder.
    """
    path = sqlite_path(database_url)
    if path is None:
        yield
        return
    lock_path = path.with_name(path.name + ".writer.lock")
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise DatabaseError(
                f"{path}: database is used by another hamdb writer ({holder}); "
                "SQLite allows one writer: wait for it, or use PostgreSQL for many workers"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{what} pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
