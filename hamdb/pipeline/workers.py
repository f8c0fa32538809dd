"""`hamdb predict --pending`: workers that claim jobs, predict, store files, then rows.

One worker loop (`run_worker`) per process. Per batch (DESIGN.md §3 order):

1. claim up to `batch` jobs (claims.py; commit), a heartbeat thread keeps their leases;
2. build the structures and run the model on the whole batch (graphs batched inside the
   predictor); a structure the model rejects is retried alone so it fails only itself;
3. write every predicted Hamiltonian's HDF5 file (fsync + rename) ...
4. ... then, in one transaction, insert the Hamiltonian rows and mark the jobs done, each in a
   savepoint so a job whose lease was taken over is dropped without touching the others;
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
        default_factory=lambda: {"claim": 0.0, "model": 0.0, "store": 0.0, "db": 0.0, "screen": 0.0}
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


def _pool_init(factory: PredictorFactory, project: Project, spec: str) -> None:
    global _pool_predictor
    import torch

    torch.set_num_threads(1)
    _pool_predictor = factory(project, spec)


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
    predictor = factory(project, options.model)
    mv_id = int(predictor.model_version_id)
    sqlite = claims.is_sqlite(engine)
    pool = None
    if options.compute_processes > 1:
        pool = ProcessPoolExecutor(
            options.compute_processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_pool_init,
            initargs=(factory, project, options.model),
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

    with _Timer(stats, "db"), session.begin():
        rows = {
            r.id: r.structure_json
            for r in session.query(StructureRow.id, StructureRow.structure_json).filter(
                StructureRow.id.in_([c.structure_id for c in batch])
            )
        }
    with _Timer(stats, "model"):
        results = _predict(predictor, pool, [rows[c.structure_id] for c in batch])

    timed = _TimedStore(store, stats)
    saved: list[tuple[int, Hamiltonian]] = []
    store_before, commit_start = stats.seconds["store"], time.perf_counter()
    with session.begin():
        for claim_, result in zip(batch, results, strict=True):
            error: BaseException | None = result if isinstance(result, BaseException) else None
            if error is None:
                try:
                    row_id = _save_and_finish(session, timed, result, claim_, method, mv_id, stats)
                    saved.append((row_id, result))
                    stats.done += 1
                    continue
                except _LeaseLostError:
                    stats.lost_leases += 1
                    continue
                except Exception as exc:
                    error = exc
            permanent = isinstance(error, PERMANENT_ERRORS) or getattr(error, "permanent", False)
            status = claims.fail(
                session, stats.worker_id, claim_, _describe(error), permanent, options.max_attempts
            )
            stats.failed += status == claims.FAILED
            stats.retried += status == claims.PENDING
    stats.seconds["db"] += (
        time.perf_counter() - commit_start - (stats.seconds["store"] - store_before)
    )
    if options.screen and saved:
        from hamdb.pipeline.screening import screen_hamiltonians

        with _Timer(stats, "screen"):
            stats.screened += screen_hamiltonians(session, saved)


class _LeaseLostError(Exception):
    """Another worker took this job over after our lease expired: drop our result."""


def _save_and_finish(
    session: Session,
    store: Any,
    ham: Hamiltonian,
    claim_: claims.Claim,
    method: str,
    mv_id: int,
    stats: WorkerStats,
) -> int:
    """File, row and job 'done' in one savepoint; returns the Hamiltonian row id.

    An IntegrityError is retried once: a concurrent worker may have just created the shared
    basis-set row. A second one means the Hamiltonian row itself exists: the job was taken
    over and finished by another worker, so this result is dropped.
    """
    from sqlalchemy.exc import IntegrityError

    from hamdb.io.catalog import save_hamiltonian

    for attempt in range(2):
        try:
            with session.begin_nested():
                row = save_hamiltonian(
                    session, store, ham, structure_id=claim_.structure_id, kind="predicted",
                    method=method, model_version_id=mv_id,
                    uncertainty_ev=getattr(ham, "uncertainty_ev", None),
                )  # fmt: skip
                if not claims.finish(session, stats.worker_id, claim_.job_id, row.id):
                    raise _LeaseLostError
            return int(row.id)
        except IntegrityError:
            if attempt:
                raise _LeaseLostError from None
    raise AssertionError("unreachable")


class _TimedStore:
    """The store with `put` timed into the worker's 'store' stage (everything else passes)."""

    def __init__(self, store: HamiltonianStore, stats: WorkerStats) -> None:
        self._store, self._stats = store, stats

    def put(self, arrays: Any, attrs: Any) -> tuple[str, str]:
        with _Timer(self._stats, "store"):
            return self._store.put(arrays, attrs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


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
def _run_worker_process(
    project: Project, options: WorkerOptions, factory: PredictorFactory
) -> WorkerStats:
    import torch

    torch.set_num_threads(1)
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
