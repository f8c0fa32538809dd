"""The screen's confusion table against DFT, and `verify` with a DFT run on real structures."""

from __future__ import annotations

from sqlalchemy.orm import Session

from hamdb.pipeline.trust import screen_report


def test_report_counts_every_structure_with_both_results(
    session: Session, screened: dict[str, int]
):
    report = screen_report(session)
    # strong/strong: TP; weak/trivial: FP; metal/strong: FN; trivial/trivial: TN.
    assert (report.n, report.tp, report.fp, report.fn, report.tn) == (4, 1, 1, 1, 1)
    assert report.precision == 0.5 and report.recall == 0.5
    assert report.table["metal"] == {"strong": 1}
    assert report.table["strong"] == {"strong": 1}
    assert report.class_agreement == 0.5
    text = report.format()
    assert "precision 50.0%" in text and "recall 50.0%" in text
    assert report.as_dict()["table"]["weak"] == {"trivial": 1}


def test_report_without_any_dft_says_so(session: Session, model_version_id: int):
    report = screen_report(session)
    assert report.n == 0 and report.precision is None
    assert "n/a" in report.format()


def test_verify_runs_dft_on_the_most_promising_and_records_agreement(
    project, session: Session, screened: dict[str, int]
):
    """The DFT code is replaced by the model's test double (GPAW runs in the demo and in the
    dft tests); the selection, the storing, the Z2 of the DFT Hamiltonian and the view are real."""
    from pymatgen.core import Structure
    from stub_model import StubPredictor

    from hamdb.db.models import StructureRow
    from hamdb.io.catalog import save_hamiltonian
    from hamdb.pipeline.trust import verify_top
    from hamdb.store.store import HamiltonianStore

    ran: list[list[int]] = []

    def fake_dft(project_, structure_ids):
        ran.append(list(structure_ids))
        store = HamiltonianStore(project_.store_path)
        from hamdb.db.engine import make_engine, session_scope

        with session_scope(make_engine(project_.database_url)) as s:
            for sid in structure_ids:
                st = Structure.from_dict(s.get(StructureRow, sid).structure_json)
                (ham,) = StubPredictor(0).predict([st])
                save_hamiltonian(s, store, ham, structure_id=sid, kind="dft", method="stub-dft")

    rows = verify_top(project, 1, dft=fake_dft)
    # Unverified candidates: 'parity' (gap 0.5) and 'tiny' (0.02): the larger margin first.
    assert ran == [[screened["parity"]]]
    assert [r["structure_id"] for r in rows] == [screened["parity"]]
    row = rows[0]
    assert row["dft_z2_class"] == "trivial" and row["dft_agrees"] is False
    assert row["dft_gap_ev"] > 0
    again = verify_top(project, 5, dft=fake_dft)  # only 'tiny' is left unverified
    assert [r["structure_id"] for r in again] == [screened["tiny"]]


def test_two_failed_analyses_do_not_count_as_agreement(session: Session, model_version_id: int):
    from conftest import add_screened, add_structures

    from hamdb.pipeline.candidates import candidates_query, fetch

    (sid,) = add_structures(session, 1)
    for mv in (model_version_id, None):  # predicted, then DFT: both not converged
        add_screened(session, sid, model_version_id=mv, z2=None, gap_ev=0.2, converged=False,
                     error="WCC flow not converged")  # fmt: skip
    session.commit()
    (row,) = fetch(session, candidates_query(only_candidates=False))
    assert (row["z2_class"], row["dft_z2_class"], row["dft_agrees"]) == ("unknown", "unknown", None)
    report = screen_report(session)
    assert report.n == 1 and report.class_agreement is None
