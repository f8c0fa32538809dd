"""Keep the store and the database in agreement: `verify` (every referenced file is there and
hashes to its row) and `gc` (remove files no row references).

References are `hamiltonians.uri` and those `model_versions.weights_uri` that are store uris
(weights kept elsewhere, e.g. under models/, are not the store's business).

`gc` never removes a file younger than `grace_s`: a writer puts the file first and inserts its
row second (DESIGN.md §3), so a young unreferenced file may be one whose row is on its way.
`HamiltonianStore.put` refreshes the mtime of a file it finds already stored for the same
reason. Stale temporary files (a writer killed mid-write) follow the same rule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hamdb.db.models import HamiltonianRow, ModelVersionRow
from hamdb.errors import StoreError
from hamdb.store.store import HamiltonianStore, sha256_of_arrays, sha_of_uri

#: Default age (s) below which gc leaves unreferenced files alone.
DEFAULT_GRACE_S = 3600.0


@dataclass(frozen=True)
class Reference:
    """A row that points at a store file, with the hash it recorded."""

    table: str
    row_id: int
    uri: str
    sha256: str


@dataclass(frozen=True)
class Problem:
    """A reference that does not hold: kind is 'missing', 'mismatch', 'unreadable', 'bad-uri'."""

    kind: str
    reference: Reference
    detail: str

    def __str__(self) -> str:
        ref = self.reference
        return f"{ref.table} row {ref.row_id}: {ref.uri}: {self.kind}: {self.detail}"


@dataclass
class VerifyReport:
    files_checked: int = 0
    rows_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files_checked": self.files_checked,
            "rows_checked": self.rows_checked,
            "problems": [
                {
                    "kind": p.kind,
                    "table": p.reference.table,
                    "row_id": p.reference.row_id,
                    "uri": p.reference.uri,
                    "detail": p.detail,
                }
                for p in self.problems
            ],
            "seconds": round(self.seconds, 3),
        }


@dataclass
class GcReport:
    dry_run: bool
    referenced: int = 0
    kept_young: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    temp_removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "referenced": self.referenced,
            "removed": self.removed,
            "temp_removed": self.temp_removed,
            "kept_young": self.kept_young,
            "bytes_freed": self.bytes_freed,
        }


def references(session: Session) -> list[Reference]:
    """Every row that points at a store file (model weights only when in the store)."""
    refs = [
        Reference("hamiltonians", row.id, row.uri, row.sha256)
        for row in session.execute(
            select(HamiltonianRow.id, HamiltonianRow.uri, HamiltonianRow.sha256).order_by(
                HamiltonianRow.id
            )
        )
    ]
    for row in session.execute(
        select(
            ModelVersionRow.id, ModelVersionRow.weights_uri, ModelVersionRow.weights_sha256
        ).order_by(ModelVersionRow.id)
    ):
        if _is_store_uri(row.weights_uri):
            refs.append(Reference("model_versions", row.id, row.weights_uri, row.weights_sha256))
    return refs


def _is_store_uri(uri: str) -> bool:
    try:
        sha_of_uri(uri)
    except StoreError:
        return False
    return True


def verify_store(session: Session, store: HamiltonianStore) -> VerifyReport:
    """Re-hash every file a row references against the row (and against its own name)."""
    start = time.perf_counter()
    report = VerifyReport()
    by_uri: dict[str, list[Reference]] = {}
    for ref in references(session):
        by_uri.setdefault(ref.uri, []).append(ref)
    for uri, refs in by_uri.items():
        report.rows_checked += len(refs)
        if not _is_store_uri(uri):
            report.problems += [Problem("bad-uri", r, "not '<sha[:2]>/<sha256>.h5'") for r in refs]
            continue
        path = store.path(uri)
        if not path.is_file():
            report.problems += [Problem("missing", r, f"{path} does not exist") for r in refs]
            continue
        report.files_checked += 1
        try:
            arrays, _ = store.get(uri)
        except StoreError as exc:
            report.problems += [Problem("unreadable", r, str(exc)) for r in refs]
            continue
        actual = sha256_of_arrays(arrays)
        for ref in refs:
            if actual != ref.sha256 or actual != sha_of_uri(uri):
                report.problems.append(
                    Problem(
                        "mismatch",
                        ref,
                        f"{path} hashes to {actual[:12]}…, row records {ref.sha256[:12]}…",
                    )
                )
    report.seconds = time.perf_counter() - start
    return report


def gc_store(
    session: Session,
    store: HamiltonianStore,
    *,
    dry_run: bool = False,
    grace_s: float = DEFAULT_GRACE_S,
) -> GcReport:
    """Remove store files no row references (and stale temporary files) older than grace_s."""
    report = GcReport(dry_run=dry_run)
    referenced = {ref.uri for ref in references(session)}
    report.referenced = len(referenced)
    for uri in list(store.iter_files()):
        if uri in referenced:
            continue
        path = store.path(uri)
        try:
            if store.age_s(uri) < grace_s:
                report.kept_young.append(uri)
                continue
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        report.removed.append(uri)
        report.bytes_freed += size
        if not dry_run:
            path.unlink(missing_ok=True)
    for temp in list(store.iter_temp_files(older_than_s=grace_s)):
        report.temp_removed.append(str(temp.relative_to(store.root)))
        try:
            report.bytes_freed += temp.stat().st_size
        except FileNotFoundError:
            continue
        if not dry_run:
            temp.unlink(missing_ok=True)
    return report
