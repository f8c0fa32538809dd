"""Can the screen be believed? DFT checks of top candidates and the screen's confusion table.

`verify_top` takes the N most promising unverified candidates (largest gap beyond twice the
prediction's uncertainty), computes their reference DFT SOC Hamiltonian (hamdb.dft, GPAW),
their Z2 from it (the same analysis and settings as the screen), and so fills the view's
`dft_*` columns: `dft_agrees` records whether the DFT Z2 class matches the predicted one.

`screen_report` compares, for every structure with both a predicted and a DFT topology result,
the screen's verdict (candidate or not) with the DFT verdict: precision = TP / (TP + FP) (how
many flagged candidates are real), recall = TP / (TP + FN) (how many real ones are flagged),
plus the full predicted-class × DFT-class table. Note the selection bias it inherits: DFT
checks are run on promising candidates first, so until a random sample of non-candidates is
checked too, recall is measured on few negatives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hamdb.pipeline.candidates import candidates_query, fetch, view
from hamdb.pipeline.uncertainty import Calibration, calibration

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hamdb.config import Project

CLASSES = ("strong", "weak", "2d", "trivial", "metal", "unknown")
NONTRIVIAL = ("strong", "weak", "2d")


@dataclass(frozen=True)
class ScreenReport:
    """Confusion of the screen against DFT over structures having both results."""

    n: int
    tp: int
    fp: int
    fn: int
    tn: int
    table: dict[str, dict[str, int]]  # predicted class -> DFT class -> count
    class_agreement: float | None
    gap_mae_ev: float | None
    calibration: Calibration | None = None
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": self.precision,
            "recall": self.recall,
            "class_agreement": self.class_agreement,
            "gap_mae_ev": self.gap_mae_ev,
            "table": self.table,
            "uncertainty_calibration": self.calibration.as_dict() if self.calibration else None,
        }

    def format(self) -> str:
        """The confusion tables as text (what `hamdb report` prints)."""

        def pct(x: float | None) -> str:
            return "n/a" if x is None else f"{100 * x:.1f}%"

        lines = [
            f"structures with both a predicted and a DFT topology result: {self.n}",
            "",
            "screen verdict vs DFT    DFT candidate   DFT not",
            f"  flagged candidate      {self.tp:>13}   {self.fp:>7}",
            f"  not flagged            {self.fn:>13}   {self.tn:>7}",
            "",
            f"precision {pct(self.precision)}   recall {pct(self.recall)}   "
            f"Z2 class agreement {pct(self.class_agreement)}   "
            f"gap MAE {'n/a' if self.gap_mae_ev is None else f'{self.gap_mae_ev:.3f} eV'}",
        ]
        used = [c for c in CLASSES if any(self.table.get(p, {}).get(c) for p in CLASSES)
                or any(self.table.get(c, {}).values())]  # fmt: skip
        if used:
            lines += ["", "predicted \\ DFT " + "".join(f"{c:>9}" for c in used)]
            for p in used:
                counts = "".join(f"{self.table.get(p, {}).get(c, 0):>9}" for c in used)
                lines.append(f"{p:<16}{counts}")
        if self.calibration is not None:
            lines += ["", self.calibration.format()]
        return "\n".join(lines)


def _is_positive(z2_class: str | None, gap_ev: float | None) -> bool:
    return z2_class in NONTRIVIAL and gap_ev is not None and gap_ev > 0


#: The view's columns the report reads: the structure's own columns and the model's are not
#: joined for it (each DFT-checked row would cost a structure lookup).
REPORT_COLUMNS = (
    "structure_id", "z2_class", "is_candidate", "gap_ev", "uncertainty_ev", "dft_z2_class",
    "dft_gap_ev",
)  # fmt: skip


def report_query(model_version_id: int | None = None) -> Any:
    """Every screened prediction with a DFT check (the pointer's partial index finds them),
    largest gap first, with REPORT_COLUMNS."""
    query = candidates_query(only_candidates=False, model_version_id=model_version_id)
    query = query.where(view.c.dft_topology_result_id.is_not(None))
    return query.with_only_columns(*(view.c[name] for name in REPORT_COLUMNS))


def screen_report(session: Session, model_version_id: int | None = None) -> ScreenReport:
    """Precision/recall of the screen over every structure with predicted and DFT results."""
    rows = fetch(session, report_query(model_version_id))
    counts: Counter[str] = Counter()
    table: dict[str, dict[str, int]] = {}
    agree = known = 0
    gap_errors = []
    for r in rows:
        predicted = bool(r["is_candidate"])
        actual = _is_positive(r["dft_z2_class"], r["dft_gap_ev"])
        counts[("t" if predicted == actual else "f") + ("p" if predicted else "n")] += 1
        row = table.setdefault(r["z2_class"], {})
        row[r["dft_z2_class"]] = row.get(r["dft_z2_class"], 0) + 1
        if "unknown" not in (r["z2_class"], r["dft_z2_class"]):  # two failures agree on nothing
            known += 1
            agree += r["z2_class"] == r["dft_z2_class"]
        if r["gap_ev"] is not None and r["dft_gap_ev"] is not None:
            gap_errors.append(abs(r["gap_ev"] - r["dft_gap_ev"]))
    return ScreenReport(
        n=len(rows),
        tp=counts["tp"],
        fp=counts["fp"],
        fn=counts["fn"],
        tn=counts["tn"],
        table=table,
        class_agreement=agree / known if known else None,
        gap_mae_ev=sum(gap_errors) / len(gap_errors) if gap_errors else None,
        calibration=calibration(rows),
        rows=rows,
    )


# -- verify ----------------------------------------------------------------------------------
#: (project, structure ids) -> outcomes (objects with structure_id, status, error) or None;
#: it stores the DFT Hamiltonians (kind 'dft', spin 'soc' among them).
DftRunner = Callable[["Project", Sequence[int]], Any]


def dft_soc_hamiltonians(session: Session, structure_ids: Sequence[int]) -> dict[int, int]:
    """structure id -> id of its newest DFT SOC Hamiltonian (for those that have one)."""
    from hamdb.db.models import HamiltonianRow

    found: dict[int, int] = {}
    for sid, hid in session.execute(
        select(HamiltonianRow.structure_id, HamiltonianRow.id)
        .where(
            HamiltonianRow.structure_id.in_(list(structure_ids)),
            HamiltonianRow.kind == "dft",
            HamiltonianRow.spin == "soc",
        )
        .order_by(HamiltonianRow.id)
    ):
        found[sid] = hid
    return found


def run_reference_dft(project: Project, structure_ids: Sequence[int]) -> Any:
    """The reference-data generator (GPAW LCAO + SOC) on these structures, stored as kind 'dft'."""
    from hamdb.dft.gpaw_lcao import LcaoSettings
    from hamdb.dft.runner import run_many

    return run_many(project, list(structure_ids), LcaoSettings())


def verify_top(
    project: Project,
    top: int,
    *,
    model_version_id: int | None = None,
    dft: DftRunner = run_reference_dft,
    settings: Any = None,
) -> list[dict[str, Any]]:
    """DFT-check the `top` most promising unverified candidates; returns their view rows after.

    Steps: pick (view, order 'promise'), reference DFT for those without a DFT SOC Hamiltonian,
    Z2 of each DFT Hamiltonian with the screen's own analysis (hamdb.topology.screening), then
    read the rows again: `dft_z2_class`, `dft_gap_ev` and `dft_agrees` are filled, and
    `dft_error` says why the DFT failed where it did.
    """
    from hamdb.db.engine import make_engine, session_scope
    from hamdb.store.store import HamiltonianStore
    from hamdb.topology.analysis import TopologySettings
    from hamdb.topology.screening import screen_one

    engine = make_engine(project.database_url)
    with session_scope(engine) as session:
        picked = fetch(
            session,
            candidates_query(
                unverified=True, order="promise", limit=top, model_version_id=model_version_id
            ),
        )
        ids = [r["structure_id"] for r in picked]
        have = dft_soc_hamiltonians(session, ids)
    if not ids:
        return []
    missing = [sid for sid in ids if sid not in have]
    errors: dict[int, str] = {}
    if missing:
        for outcome in dft(project, missing) or ():
            if getattr(outcome, "status", "done") != "done":
                errors[outcome.structure_id] = str(outcome.error)
    s = settings if isinstance(settings, TopologySettings) else TopologySettings.from_dict(settings)
    store = HamiltonianStore(project.store_path)
    from sqlalchemy.orm import Session

    with Session(engine, expire_on_commit=False) as session:
        have = dft_soc_hamiltonians(session, ids)
        session.rollback()
        for hid in have.values():
            screen_one(session, store, hid, s)
    with session_scope(engine) as session:
        after = fetch(
            session,
            candidates_query(only_candidates=False, model_version_id=model_version_id).where(
                view.c.structure_id.in_(ids)
            ),
        )
    order = {sid: i for i, sid in enumerate(ids)}
    for row in after:
        row["dft_error"] = errors.get(row["structure_id"])
    return sorted(after, key=lambda r: order[r["structure_id"]])
