"""`hamdb predict --pending`: workers that claim jobs, predict, store files, then rows.

One worker loop (`run_worker`) per process. Per batch (DESIGN.md §3 order):

1. claim up to `batch` jobs (claims.py; commit), a heartbeat thread keeps their leases;
2. build the structures and run the model on the whole batch (graphs batched inside the
   predictor); a structure the model rejects is retried alone so it fails only itself;
3. check every predicted Hamiltonian and write all their HDF5 files (each fsync'ed, then
   renamed, then their folders fsync'ed: `HamiltonianStore.put_many`) ...
4. ... then, in one transaction, insert the Hamiltonian rows (one bulk INSERT) and mark the
   jobs done (one UPDATE that only touches jobs this worker still holds); the row of a job
   whose lease was taken over meanwhile is deleted again before the commit;
5. with `screen=True`, compute gap and Z2 of the batch's Hamiltonians and store them.

`run` starts `workers` such loops as separate processes. On PostgreSQL each is an independent
claimer, exactly as processes on other hosts would be. On SQLite (one writer) the parent holds
the writer lock and is the only claimer and writer; extra processes only run the model.

The model is whatever `PredictorFactory` returns: by default `hamdb.ml.inference.Predictor`
loaded from the registry; tests pass a fast stand-in for the model (never for the database).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from hamdb.errors import DatabaseError, HamdbError, InputError, ModelError
from hamdb.physics.orthogonal import PREDICTED_S_MIN
from hamdb.pipeline import claims

if TYPE_CHECKING:
    from pymatgen.core import Structure
    from sqlalchemy.orm import Session

    from hamdb.config import Project
    from hamdb.physics.hamiltonian import Hamiltonian
    from hamdb.store.store import HamiltonianStore

#: Errors another attempt cannot fix: the job fails at once with the reason.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (ModelError, InputError)


class PredictorLike(Protocol):
    """What a worker needs of a model: its registry version and a batched predict."""

    model_version_id: int

    def predict(self, structures: Sequence[Structure]) -> list[Hamiltonian]: ...


#: (project, model spec) -> a loaded predictor. Must be picklable (a module-level function).
PredictorFactory = Callable[["Project", str], PredictorLike]


def load_registry_predictor(project: Project, spec: str) -> PredictorLike:
    """The registry model `spec` (NAME@VERSION, NAME, or an alias such as 'production').

    "PRIMARY+OTHER+OTHER" (e.g. "hamdb@3+hamdb@4+hamdb@5", versions trained with other
    seeds) stores PRIMARY's predictions with the ensemble's gap spread as their uncertainty
    (hamdb.pipeline.uncertainty).
    """
    from hamdb.db.engine import make_engine, session_scope
    from hamdb.ml.inference import Predictor
    from hamdb.store.store import HamiltonianStore

    store = HamiltonianStore(project.store_path)
    specs = [s for s in spec.split("+") if s] or [spec]
    with session_scope(make_engine(project.database_url)) as session:
        loaded = [Predictor.load(session, store, spec=s) for s in specs]
    if len(loaded) == 1:
        return loaded[0]
    from hamdb.pipeline.uncertainty import EnsemblePredictor

    return EnsemblePredictor(loaded[0], loaded[1:])


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs. lease_s: seconds a claim lives without a heartbeat."""

    model: str = "production"
    batch: int = 16
    limit: int | None = None
    screen: bool = False
    #: overlap filter of the screen (TopologySettings.s_min): predictions in a near-dependent
    #: basis need one (the default, as `hamdb predict --screen`); an ensemble's gap votes use it too
    screen_s_min: float = PREDICTED_S_MIN
    lease_s: float = claims.DEFAULT_LEASE_S
    max_attempts: int = claims.DEFAULT_MAX_ATTEMPTS
    compute_processes: int = 1


@dataclass
class WorkerStats:
    """What one worker did and where its time went (seconds per stage)."""

    worker_id: str = ""
    done: int = 0
    failed: int = 0
    retried: int = 0
    lost_leases: int = 0
    screened: int = 0
    created_jobs: int = 0
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(
            ("load", "claim", "model", "check", "store", "db", "screen"), 0.0
        )
    )
    wall_s: float = 0.0

    def add(self, other: WorkerStats) -> None:
        for name in ("done", "failed", "retried", "lost_leases", "screened", "created_jobs"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for stage, secs in other.seconds.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + secs
        self.wall_s = max(self.wall_s, other.wall_s)

    def as_dict(self) -> dict[str, Any]:
        total = sum(self.seconds.values()) or 1.0
        return {
            "worker": self.worker_id,
            "done": self.done,
            "failed": self.failed,
            "retried": self.retried,
            "lost_leases": self.lost_leases,
            "screened": self.screened,
            "created_jobs": self.created_jobs,
            "wall_s": round(self.wall_s, 3),
            "structures_per_s": round(self.done / self.wall_s, 3) if self.wall_s else 0.0,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "fraction": {k: round(v / total, 4) for k, v in self.seconds.items()},
        }


class _Timer:
    def __init__(self, stats: WorkerStats, stage: str) -> None:
        self.stats, self.stage = stats, stage

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.stats.seconds[self.stage] += time.perf_counter() - self.start


def structure_of(row_json: dict[str, Any]) -> Structure:
    from pymatgen.core import Structure

    return Structure.from_dict(row_json)


def model_method(session: Session, model_version_id: int) -> str:
    """The `hamiltonians.method` of a model version's predictions: 'model:<name>@<version>'."""
    from hamdb.db.models import ModelRow, ModelVersionRow

    version = session.get(ModelVersionRow, model_version_id)
    if version is None:
        raise ModelError(f"model version id {model_version_id} is not in the registry")
    model = session.get(ModelRow, version.model_id)
    assert model is not None
    return f"model:{model.name}@{version.version}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _RemoteError):  # already described by the process that raised it
        return str(exc)
    if isinstance(exc, HamdbError):
        return f"{type(exc).__name__}: {exc}"
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def predict_each(
    predictor: PredictorLike, structures: Sequence[Structure]
) -> list[Hamiltonian | BaseException]:
    """Predict a batch; if the batch fails, predict one by one so a bad structure fails alone."""
    try:
        result: list[Hamiltonian | BaseException] = list(predictor.predict(list(structures)))
        if len(result) == len(structures):
            return result
    except Exception:  # the batch failed somewhere: find which structure(s)
        pass
    out: list[Hamiltonian | BaseException] = []
    for structure in structures:
        try:
            out.append(predictor.predict([structure])[0])
        except Exception as exc:
            out.append(exc)
    return out


# -- compute-only processes (SQLite: many model processes, one writer) ----------------------
_pool_predictor: PredictorLike | None = None


def _pool_init(factory: PredictorFactory, project: Project, spec: str, s_min: float) -> None:
    global _pool_predictor
    _one_thread()
    _pool_predictor = factory(project, spec)
    if hasattr(_pool_predictor, "precision"):  # as run_worker's: half the bytes to send back
        _pool_predictor.precision = "single"
    _screen_consistent(_pool_predictor, s_min)


def _screen_consistent(predictor: PredictorLike, s_min: float) -> None:
    """An ensemble's gap votes (hamdb.pipeline.uncertainty) use the chained screen's filter."""
    if hasattr(predictor, "gap_s_min"):
        predictor.gap_s_min = s_min


def _pool_predict(structure_dicts: list[dict[str, Any]]) -> list[Any]:
    assert _pool_predictor is not None
    out = predict_each(_pool_predictor, [structure_of(d) for d in structure_dicts])
    # Exceptions cross the process boundary as messages (tracebacks don't pickle).
    return [r if not isinstance(r, BaseException) else (type(r).__name__, _describe(r),
            isinstance(r, PERMANENT_ERRORS)) for r in out]  # fmt: skip


class _RemoteError(Exception):
    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


# -- the worker loop -------------------------------------------------------------------------
def run_worker(
    project: Project,
    options: WorkerOptions,
    factory: PredictorFactory = load_registry_predictor,
    worker_id: str | None = None,
    on_batch: Callable[[WorkerStats], None] | None = None,
) -> WorkerStats:
    """Claim and compute batches until no job is left (or `options.limit` are processed)."""
    from hamdb.db.engine import SQLITE_BEGIN_OPTION, make_engine
    from hamdb.store.store import HamiltonianStore

    stats = WorkerStats(worker_id=worker_id or claims.worker_name())
    start = time.perf_counter()
    engine = make_engine(project.database_url)
    store = HamiltonianStore(project.store_path)
    _one_thread()
    with _Timer(stats, "load"):  # reading and building the model: once per worker
        predictor = factory(project, options.model)
    if hasattr(predictor, "batch_size"):  # the claimed batch goes through the network at once
        predictor.batch_size = options.batch
    if hasattr(predictor, "precision"):  # the store keeps predictions in single precision
        predictor.precision = "single"
    _screen_consistent(predictor, options.screen_s_min)
    mv_id = int(predictor.model_version_id)
    sqlite = claims.is_sqlite(engine)
    pool = None
    if options.compute_processes > 1:
        pool = ProcessPoolExecutor(
            options.compute_processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_pool_init,
            initargs=(factory, project, options.model, options.screen_s_min),
        )
    from sqlalchemy.orm import Session

    # SQLite: take the write lock at BEGIN, so a transaction never has to upgrade a read lock
    # (which fails at once, without waiting, when another process wrote meanwhile).
    bind = engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"}) if sqlite else engine
    with Session(bind, expire_on_commit=False) as session:
        with session.begin():
            if sqlite:  # the caller holds the writer lock: claimed jobs are a dead run's
                claims.expire_orphans(session)
            stats.created_jobs = claims.enqueue(session, mv_id)
            method = model_method(session, mv_id)
        heartbeat = claims.Heartbeat(engine, stats.worker_id, options.lease_s)
        try:
            with heartbeat if not sqlite else contextlib.nullcontext():
                while options.limit is None or stats.done + stats.failed < options.limit:
                    want = options.batch
                    if options.limit is not None:
                        want = min(want, options.limit - stats.done - stats.failed)
                    with _Timer(stats, "claim"), session.begin():
                        batch = claims.claim(
                            session, mv_id, stats.worker_id, want,
                            options.lease_s, options.max_attempts,
                        )  # fmt: skip
                    if not batch:
                        break
                    heartbeat.hold([c.job_id for c in batch])
                    try:
                        _process_batch(
                            session, store, predictor, pool, batch, mv_id, method, options, stats
                        )
                    except KeyboardInterrupt:  # Ctrl-C: give the batch back, uncounted
                        session.rollback()
                        with session.begin():
                            claims.release(session, stats.worker_id, [c.job_id for c in batch])
                        raise
                    heartbeat.hold([])
                    if on_batch is not None:
                        on_batch(stats)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            stats.lost_leases += heartbeat.lost
    stats.wall_s = time.perf_counter() - start
    return stats


def _process_batch(
    session: Session,
    store: HamiltonianStore,
    predictor: PredictorLike,
    pool: ProcessPoolExecutor | None,
    batch: list[claims.Claim],
    mv_id: int,
    method: str,
    options: WorkerOptions,
    stats: WorkerStats,
) -> None:
    from hamdb.db.models import StructureRow
    from hamdb.io.catalog import stored_form
    from hamdb.physics.checks import check_hamiltonian

    with _Timer(stats, "db"), session.begin():
        rows = {
            r.id: r.structure_json
            for r in session.query(StructureRow.id, StructureRow.structure_json).filter(
                StructureRow.id.in_([c.structure_id for c in batch])
            )
        }
    with _Timer(stats, "model"):
        results = _predict(predictor, pool, [rows[c.structure_id] for c in batch])

    outcome: list[Any] = []  # per claim: a _Result, or the exception that failed it
    for result in results:
        if isinstance(result, BaseException):
            outcome.append(result)
            continue
        try:
            with _Timer(stats, "check"):
                check_hamiltonian(result)
            with _Timer(stats, "store"):
                outcome.append(_Result(result, stored_form(result, "predicted", check=False)))
        except Exception as exc:
            outcome.append(exc)
    good = [r for r in outcome if isinstance(r, _Result)]
    try:
        with _Timer(stats, "store"):
            for r, (uri, _) in zip(good, _put_many(store, [r.form for r in good]), strict=True):
                r.uri = uri
    except Exception as exc:  # e.g. a full disk: every result of the batch fails, transiently
        outcome = [exc if isinstance(r, _Result) else r for r in outcome]

    with _Timer(stats, "db"), session.begin():
        saved = _commit_rows(session, batch, outcome, method, mv_id, options, stats)
    if options.screen and saved:
        from hamdb.pipeline.screening import screen_hamiltonians

        with _Timer(stats, "screen"):
            settings = {"s_min": options.screen_s_min}
            stats.screened += screen_hamiltonians(session, saved, settings)


@dataclass
class _Result:
    """A checked prediction, its store form, and (once written) its file's uri."""

    ham: Hamiltonian
    form: Any
    uri: str = ""


def _put_many(store: Any, forms: Sequence[Any]) -> list[tuple[str, str]]:
    """All files of a batch at once (one compression per call: predictions share one)."""
    if not forms:
        return []
    items = [(f.arrays, f.attrs, f.sha256) for f in forms]
    return list(store.put_many(items, compression=forms[0].compression))


def _commit_rows(
    session: Session,
    batch: Sequence[claims.Claim],
    outcome: Sequence[Any],
    method: str,
    mv_id: int,
    options: WorkerOptions,
    stats: WorkerStats,
) -> list[tuple[int, Hamiltonian]]:
    """Rows of the batch's stored results and their jobs done, failures recorded; returns
    (row id, Hamiltonian) of what this worker committed.

    Fast path: one bulk INSERT of the rows and one UPDATE of the jobs (rows of jobs whose
    lease was lost meanwhile are deleted again). If a row collides with an existing one
    (another writer predicted the structure), the batch falls back to one savepoint per job.
    """
    from sqlalchemy.exc import IntegrityError

    from hamdb.io.catalog import ensure_basis_set, hamiltonian_row

    basis_ids: dict[str, Any] = {}
    for r in outcome:
        if isinstance(r, _Result) and r.ham.basis.name not in basis_ids:
            basis_ids[r.ham.basis.name] = _basis_set_id(session, ensure_basis_set, r.ham.basis)
    outcome = [
        basis_ids[r.ham.basis.name]
        if isinstance(r, _Result) and isinstance(basis_ids[r.ham.basis.name], BaseException)
        else r
        for r in outcome
    ]
    ok = [(c, r) for c, r in zip(batch, outcome, strict=True) if isinstance(r, _Result)]
    saved: list[tuple[int, Hamiltonian]] = []
    if ok:
        try:
            with session.begin_nested():
                rows = [
                    _row(hamiltonian_row, r, c, basis_ids[r.ham.basis.name], method, mv_id)
                    for c, r in ok
                ]
                session.add_all(rows)
                session.flush()
                done = {c.job_id: row.id for (c, _), row in zip(ok, rows, strict=True)}
                finished = claims.finish_many(session, stats.worker_id, done)
                lost = [
                    row for (c, _), row in zip(ok, rows, strict=True) if c.job_id not in finished
                ]
                for row in lost:
                    session.delete(row)
                session.flush()
            stats.lost_leases += len(lost)
            saved = [(int(row.id), r.ham) for (c, r), row in zip(ok, rows, strict=True)
                     if c.job_id in finished]  # fmt: skip
        except IntegrityError:
            saved = []
            for c, r in ok:
                row_id = _finish_one(
                    session, r, c, basis_ids[r.ham.basis.name], method, mv_id, stats
                )
                if row_id is not None:
                    saved.append((row_id, r.ham))
        stats.done += len(saved)
    for claim_, error in zip(batch, outcome, strict=True):
        if isinstance(error, _Result):
            continue
        permanent = isinstance(error, PERMANENT_ERRORS) or getattr(error, "permanent", False)
        status = claims.fail(
            session, stats.worker_id, claim_, _describe(error), permanent, options.max_attempts
        )
        stats.failed += status == claims.FAILED
        stats.retried += status == claims.PENDING
    return saved


def _basis_set_id(session: Session, ensure: Any, basis: Any) -> int | BaseException:
    """The basis set row id (created if new), or the error that fails this basis' results.

    Retried once: a concurrent worker may have just created the same row (unique name).
    """
    from sqlalchemy.exc import IntegrityError

    for attempt in range(2):
        try:
            with session.begin_nested():
                return int(ensure(session, basis).id)
        except IntegrityError:
            if attempt:
                raise
        except HamdbError as exc:  # e.g. the name already defines other shells
            return exc
    raise AssertionError("unreachable")


def _row(
    make: Any, r: _Result, claim_: claims.Claim, basis_set_id: int, method: str, mv_id: int
) -> Any:
    return make(
        r.ham, r.uri, r.form.sha256, basis_set_id, structure_id=claim_.structure_id,
        kind="predicted", method=method, model_version_id=mv_id,
        uncertainty_ev=getattr(r.ham, "uncertainty_ev", None),
    )  # fmt: skip


def _finish_one(
    session: Session,
    r: _Result,
    claim_: claims.Claim,
    basis_set_id: int,
    method: str,
    mv_id: int,
    stats: WorkerStats,
) -> int | None:
    """Row and job 'done' in one savepoint; the row id, or None if the result is dropped.

    An IntegrityError means the Hamiltonian row exists: the job was taken over and finished
    by another worker (or the structure predicted by `hamdb predict` meanwhile).
    """
    from sqlalchemy.exc import IntegrityError

    from hamdb.io.catalog import hamiltonian_row

    try:
        with session.begin_nested():
            row = _row(hamiltonian_row, r, claim_, basis_set_id, method, mv_id)
            session.add(row)
            session.flush()
            if not claims.finish(session, stats.worker_id, claim_.job_id, row.id):
                raise _LeaseLostError
        return int(row.id)
    except (IntegrityError, _LeaseLostError):
        stats.lost_leases += 1
        return None


class _LeaseLostError(Exception):
    """Another worker took this job over after our lease expired: drop our result."""


def _predict(
    predictor: PredictorLike,
    pool: ProcessPoolExecutor | None,
    structure_dicts: list[dict[str, Any]],
) -> list[Any]:
    if pool is None:
        return predict_each(predictor, [structure_of(d) for d in structure_dicts])
    n = pool._max_workers
    chunks = [structure_dicts[i::n] for i in range(n)]
    parts = list(pool.map(_pool_predict, chunks))
    out: list[Any] = [None] * len(structure_dicts)
    for i, part in enumerate(parts):
        for j, r in enumerate(part):
            if isinstance(r, tuple):
                r = _RemoteError(r[1], r[2])
            out[i + j * n] = r
    return out


# -- many processes --------------------------------------------------------------------------
def _one_thread() -> None:
    """One compute thread per worker process (workers are the parallelism): torch's and the
    BLAS pools otherwise take every core each and thrash."""
    import torch

    torch.set_num_threads(1)


def _run_worker_process(
    project: Project, options: WorkerOptions, factory: PredictorFactory
) -> WorkerStats:
    return run_worker(project, options, factory)


def run(
    project: Project,
    options: WorkerOptions,
    workers: int = 1,
    factory: PredictorFactory = load_registry_predictor,
    on_batch: Callable[[WorkerStats], None] | None = None,
) -> WorkerStats:
    """`hamdb predict --pending`: `workers` processes until no pending job is left.

    SQLite: this process holds the writer lock (a second writer gets a one-line error) and
    the extra processes only run the model. PostgreSQL: `workers` independent claimers.
    """
    if project.is_sqlite or workers == 1:
        from sqlalchemy.exc import OperationalError

        with claims.writer_lock(project.database_url, "hamdb predict --pending"):
            opts = options
            if workers > 1:
                opts = WorkerOptions(**{**options.__dict__, "compute_processes": workers})
            try:
                stats = run_worker(project, opts, factory, on_batch=on_batch)
            except OperationalError as exc:
                if not project.is_sqlite or "locked" not in str(exc.orig):
                    raise
                # Another kind of writer (ingest, dft run) held SQLite's lock too long.
                raise DatabaseError(
                    f"{claims.sqlite_path(project.database_url)}: another process is writing "
                    "this SQLite database; run one writer at a time, or use PostgreSQL for "
                    "concurrent writers (finished batches are kept; run again to go on)"
                ) from None
        return stats
    per_worker_limit = None
    if options.limit is not None:
        per_worker_limit = -(-options.limit // workers)
    opts = WorkerOptions(**{**options.__dict__, "limit": per_worker_limit})
    total = WorkerStats(worker_id=f"{workers} processes")
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_worker_process, project, opts, factory) for _ in range(workers)]
        for future in futures:
            total.add(future.result())
    total.wall_s = time.perf_counter() - start
    return total
