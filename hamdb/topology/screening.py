"""Screen stored SOC Hamiltonians: one `topology_results` row per (Hamiltonian, method, settings).

Resumable by construction: a Hamiltonian is pending while it has no 'wcc' row for the current
settings hash; its rows ('wcc', and 'parity' where parity ran) are committed together in one
transaction, and the unique constraint (hamiltonian_id, method, settings_hash) turns a second
worker's duplicate into a skip, never a second row. A Hamiltonian that cannot be analysed (bad
input) gets a row with `error` set, so it is not retried for the same settings.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any

from hamdb.errors import HamdbError
from hamdb.physics.orthogonal import PREDICTED_S_MIN
from hamdb.topology.analysis import TopologyReport, TopologySettings, analyse

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from sqlalchemy.orm import Session

    from hamdb.store.store import HamiltonianStore


def pending_ids(session: Session, kind: str, settings_hash: str) -> list[int]:
    """Ids of SOC Hamiltonians of `kind` with no 'wcc' result for these settings, ascending."""
    from sqlalchemy import exists, select

    from hamdb.db.models import HamiltonianRow, TopologyResultRow

    done = exists().where(
        TopologyResultRow.hamiltonian_id == HamiltonianRow.id,
        TopologyResultRow.method == "wcc",
        TopologyResultRow.settings_hash == settings_hash,
    )
    query = (
        select(HamiltonianRow.id)
        .where(HamiltonianRow.kind == kind, HamiltonianRow.spin == "soc", ~done)
        .order_by(HamiltonianRow.id)
    )
    return list(session.scalars(query))


def result_rows(
    hamiltonian_id: int,
    report: TopologyReport | None,
    settings: TopologySettings,
    error: str | None,
) -> list[Any]:
    """The TopologyResultRow objects for one analysis (or one failure)."""
    from hamdb.db.models import TopologyResultRow

    common = {
        "hamiltonian_id": hamiltonian_id,
        "settings_hash": settings.sha256(),
        "settings": settings.as_dict(),
    }
    if report is None:
        return [
            TopologyResultRow(method="wcc", dimension=3, converged=False, error=error, **common)
        ]

    def row(method: str, z2: list[int] | None, converged: bool, err: str | None) -> Any:
        nus = (list(z2) + [None] * 4)[:4] if z2 is not None else [None] * 4
        return TopologyResultRow(
            method=method,
            dimension=report.dim,
            z2=z2,
            nu0=nus[0],
            nu1=nus[1],
            nu2=nus[2],
            nu3=nus[3],
            gap_ev=report.gap_ev,
            direct_gap_ev=report.direct_gap_ev,
            n_occupied=report.n_occupied,
            converged=converged,
            is_metal=report.is_metal,
            error=err,
            **common,
        )

    rows = [row("wcc", report.z2, report.converged, report.error)]
    if report.parity is not None:
        parity_error = None if report.parity.applicable else report.parity.reason
        if report.agreement is False:
            parity_error = report.error
        rows.append(row("parity", report.parity_z2, report.parity.applicable, parity_error))
    return rows


def screen_one(
    session: Session, store: HamiltonianStore, hamiltonian_id: int, settings: TopologySettings
) -> str:
    """Analyse and store one Hamiltonian; returns 'screened', 'failed', 'metal' or 'skipped'."""
    from sqlalchemy.exc import IntegrityError

    from hamdb.io.catalog import load_hamiltonian

    report: TopologyReport | None = None
    error = None
    try:
        ham = load_hamiltonian(session, store, hamiltonian_id)
        report = analyse(ham, settings=settings)
    except HamdbError as exc:
        error = f"hamiltonian {hamiltonian_id}: {exc}"
    session.rollback()  # nothing pending from the load; the rows go in their own transaction
    try:
        session.add_all(result_rows(hamiltonian_id, report, settings, error))
        session.commit()
    except IntegrityError:
        session.rollback()
        return "skipped"
    if report is None or (report.error and not report.is_metal):
        return "failed"
    return "metal" if report.is_metal else "screened"


def _worker(url: str, store_root: str, ids: list[int], settings: dict[str, Any]) -> Counter[str]:
    from sqlalchemy.orm import Session

    from hamdb.db.engine import make_engine
    from hamdb.store.store import HamiltonianStore

    store = HamiltonianStore(store_root)
    s = TopologySettings.from_dict({k: v for k, v in settings.items() if k != "engine_version"})
    counts: Counter[str] = Counter()
    with Session(make_engine(url), expire_on_commit=False) as session:
        for hid in ids:
            counts[screen_one(session, store, hid, s)] += 1
    return counts


def screen_pending(
    session: Session,
    store: HamiltonianStore,
    *,
    kind: str = "predicted",
    workers: int = 1,
    settings: TopologySettings | Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Compute and store results for every pending Hamiltonian of `kind`.

    Returns counts {"pending", "screened", "metal", "failed", "skipped"}. With workers > 1 the
    ids are dealt round-robin to processes, each with its own database connection. The
    session's transaction is committed first (rows are committed one Hamiltonian at a time).
    progress(done, total) is called after each Hamiltonian (each worker's batch with workers > 1).
    Predicted Hamiltonians are screened with the overlap filter models are evaluated with
    (PREDICTED_S_MIN) unless `settings` gives s_min; a TopologySettings is taken as it is.
    """
    if isinstance(settings, TopologySettings):
        s = settings
    else:
        defaults = {"s_min": PREDICTED_S_MIN} if kind == "predicted" else {}
        s = TopologySettings.from_dict({**defaults, **(settings or {})})
    ids = pending_ids(session, kind, s.sha256())
    # End the read transaction: workers commit on their own connections, and an open snapshot
    # here would neither see their rows nor let SQLite checkpoint meanwhile.
    session.commit()
    counts: Counter[str] = Counter()
    if workers <= 1 or len(ids) <= 1:
        for done, hid in enumerate(ids, 1):
            counts[screen_one(session, store, hid, s)] += 1
            if progress is not None:
                progress(done, len(ids))
    else:
        url = session.get_bind().url.render_as_string(hide_password=False)
        chunks = [ids[w::workers] for w in range(workers)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(_worker, url, str(store.root), chunk, s.as_dict())
                for chunk in chunks
                if chunk
            ]
            for f in as_completed(futures):
                counts.update(f.result())
                if progress is not None:
                    progress(sum(counts.values()), len(ids))
    return {
        "pending": len(ids),
        **{k: counts.get(k, 0) for k in ("screened", "metal", "failed", "skipped")},
    }
