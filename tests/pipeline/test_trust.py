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
