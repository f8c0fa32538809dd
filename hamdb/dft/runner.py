"""`hamdb dft run`: reference DFT Hamiltonians for structures in the database, in worker processes.

Each structure is one unit of work in its own process and its own transactions:

1. a `dft_runs` row (structure, method) is set to 'running' and committed;
2. GPAW runs (`gpaw_lcao.compute`), optionally checked against GPAW's own eigenvalues;
3. both Hamiltonians (spin 'none' and 'soc') are written to the store (files first) and their
   rows inserted together with the run row set to 'done', in ONE transaction.

Any failure (bad structure, missing setups, non-converged SCF, a crash of the worker process)
sets the run row to 'failed' with a one-line reason and the loop moves on. A kill -9 at any
point loses nothing already committed: at worst a finished file without a row (removed by
`hamdb store gc`) and a row left 'running', which the next `--pending` run takes again.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from hamdb.dft.gpaw_lcao import LcaoSettings
from hamdb.errors import DFTError, HamdbError, InputError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hamdb.config import Project
    from hamdb.db.queries import StructureFilter

#: Check tolerance (eV) of `--check`: a larger deviation marks the run failed.
CHECK_TOLERANCE_EV = 1e-4


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one structure (printed by the CLI, returned as JSON)."""

    structure_id: int
    status: str  # "done" | "failed" | "skipped" (done before)
    error: str | None = None
    seconds: float = 0.0
    n_atoms: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    check: dict[str, float] | None = None
    hamiltonian_ids: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- selection -------------------------------------------------------------------------------
def select_structures(
    project: Project,
    ids: Sequence[int] = (),
    *,
    pending: bool = False,
    where: StructureFilter | None = None,
    method: str = "gpaw-lcao-pbe-dzp",
    retry_failed: bool = False,
) -> list[int]:
    """Structure ids to run: the given ids, or all matching `where`; with `pending` only those
    without a finished run of `method` (failed ones only with `retry_failed`)."""
    from sqlalchemy import select

    from hamdb.db.engine import make_engine
    from hamdb.db.models import DftRunRow, StructureRow
    from hamdb.db.queries import normalise_formula

    query = select(StructureRow.id).order_by(StructureRow.id)
    if ids:
        query = query.where(StructureRow.id.in_(list(ids)))
    if where is not None:
        for el in where.elements:
            query = query.where(StructureRow.has_element(el))
        if where.formula is not None:
            query = query.where(StructureRow.reduced_formula == normalise_formula(where.formula))
        if where.spacegroup is not None:
            query = query.where(StructureRow.spacegroup_number == where.spacegroup)
        if where.max_sites is not None:
            query = query.where(StructureRow.n_sites <= where.max_sites)
    if pending:
        finished = ("done",) if retry_failed else ("done", "failed")
        query = query.where(
            ~select(DftRunRow.id)
            .where(DftRunRow.structure_id == StructureRow.id, DftRunRow.method == method)
            .where(DftRunRow.status.in_(finished))
            .exists()
        )
    with make_engine(project.database_url).connect() as connection:
        found = [int(x) for x in connection.execute(query).scalars()]
    missing = sorted(set(ids) - set(found)) if ids and not pending else []
    if missing:
        raise InputError(f"{project.database_url}: no structure with id {missing[0]}")
    return found


# -- one structure ---------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, HamdbError) else f"{type(exc).__name__}: {text}"


def _run_status(session: Session, structure_id: int, method: str) -> str | None:
    from sqlalchemy import select

    from hamdb.db.models import DftRunRow

    return session.scalars(
        select(DftRunRow.status).where(
            DftRunRow.structure_id == structure_id, DftRunRow.method == method
        )
    ).one_or_none()


def _set_run(session: Session, structure_id: int, method: str, status: str, **values: Any) -> Any:
    from sqlalchemy import select

    from hamdb.db.models import DftRunRow

    row = session.scalars(
        select(DftRunRow).where(DftRunRow.structure_id == structure_id, DftRunRow.method == method)
    ).one_or_none()
    if row is None:
        row = DftRunRow(structure_id=structure_id, method=method)
        session.add(row)
    row.status = status
    for key, value in values.items():
        setattr(row, key, value)
    return row


def mark_failed(project: Project, structure_id: int, method: str, error: str) -> None:
    """Record a failed run (own transaction)."""
    from hamdb.db.engine import make_engine, session_scope

    with session_scope(make_engine(project.database_url), immediate=True) as session:
        _set_run(session, structure_id, method, "failed", error=error[:2000])


def run_one(
    project: Project, structure_id: int, settings: LcaoSettings, check: bool = False
) -> RunOutcome:
    """Compute, check and store the DFT Hamiltonians of one structure; never raises for it."""
    from pymatgen.core import Structure

    from hamdb.db.engine import make_engine, session_scope
    from hamdb.db.models import StructureRow
    from hamdb.dft.gpaw_lcao import check_eigenvalues, compute
    from hamdb.io.catalog import save_hamiltonian
    from hamdb.store.store import HamiltonianStore

    method = settings.method
    engine = make_engine(project.database_url)
    t0 = time.perf_counter()
    n_atoms = 0
    try:
        with session_scope(engine, immediate=True) as session:
            row = session.get(StructureRow, structure_id)
            if row is None:
                raise InputError(f"no structure with id {structure_id}")
            structure = Structure.from_dict(row.structure_json)
            if _run_status(session, structure_id, method) == "done":
                # never recompute over stored Hamiltonians (the rows are unique anyway)
                return RunOutcome(structure_id, "skipped", "already done", 0.0, len(structure))
            _set_run(
                session, structure_id, method, "running", error=None, settings=settings.as_dict()
            )
        n_atoms = len(structure)
        result = compute(structure, settings)
        checked = None
        if check:
            checked = check_eigenvalues(result)
            worst = max(checked.values())
            if worst > CHECK_TOLERANCE_EV:
                raise DFTError(
                    f"check failed: eigenvalues differ from GPAW's by {worst:.2e} eV "
                    f"(> {CHECK_TOLERANCE_EV:g} eV)"
                )
        t1 = time.perf_counter()
        store = HamiltonianStore(project.store_path)
        row_settings = {**result.h_none.origin["settings"], "check": checked}
        with session_scope(engine, immediate=True) as session:
            ids = []
            for ham in (result.h_none, result.h_soc):
                saved = save_hamiltonian(
                    session,
                    store,
                    ham,
                    structure_id=structure_id,
                    kind="dft",
                    method=method,
                    settings=row_settings,
                )
                ids.append(saved)
            timings = {**result.timings.as_dict(), "store_s": round(time.perf_counter() - t1, 3)}
            _set_run(
                session, structure_id, method, "done", error=None, timings=timings, check=checked
            )
            session.flush()
            ham_ids = tuple(int(r.id) for r in ids)
        return RunOutcome(
            structure_id, "done", None, time.perf_counter() - t0, n_atoms, timings, checked, ham_ids
        )
    except Exception as exc:  # every failure of one structure is recorded, never fatal
        reason = _one_line(exc)
        if not isinstance(exc, HamdbError) and os.environ.get("HAMDB_DEBUG"):
            traceback.print_exc()
        try:
            mark_failed(project, structure_id, method, reason)
        except Exception as exc2:  # the database itself is gone: report, do not hide
            reason = f"{reason}; and recording the failure failed: {_one_line(exc2)}"
        return RunOutcome(structure_id, "failed", reason, time.perf_counter() - t0, n_atoms)


# -- many structures, in worker processes ----------------------------------------------------
def _child(
    project: Project, structure_id: int, settings: LcaoSettings, check: bool, queue: Any
) -> None:
    from hamdb.db.engine import dispose_all

    dispose_all()  # connections inherited through fork must not be shared
    outcome = run_one(project, structure_id, settings, check)
    queue.put(outcome)


def run_many(
    project: Project,
    structure_ids: Iterable[int],
    settings: LcaoSettings,
    *,
    check: bool = False,
    workers: int = 1,
    on_outcome: Callable[[RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Run every structure in its own forked process, at most `workers` at a time.

    A process that dies without reporting (segfault, out of memory, kill) has its structure
    marked failed with the exit code; the others go on.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import gpaw  # noqa: F401  (imported once here so the forked children start warm)

    from hamdb.db.engine import dispose_all

    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    pending = list(structure_ids)
    running: dict[int, Any] = {}
    outcomes: list[RunOutcome] = []
    reported: set[int] = set()

    def collect(block: bool) -> None:
        while True:
            try:
                outcome = queue.get(timeout=0.5 if block else 0.01)
            except Exception:
                return
            reported.add(outcome.structure_id)
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
            block = False

    while pending or running:
        while pending and len(running) < workers:
            sid = pending.pop(0)
            dispose_all()
            proc = ctx.Process(
                target=_child, args=(project, sid, settings, check, queue), daemon=True
            )
            proc.start()
            running[sid] = proc
        collect(block=True)
        for sid, proc in list(running.items()):
            if proc.is_alive():
                continue
            proc.join()
            if sid not in reported:
                collect(block=False)
            if sid not in reported:
                reason = f"worker process died (exit code {proc.exitcode})"
                mark_failed(project, sid, settings.method, reason)
                outcome = RunOutcome(sid, "failed", reason)
                reported.add(sid)
                outcomes.append(outcome)
                if on_outcome:
                    on_outcome(outcome)
            del running[sid]
    return outcomes
