"""The candidates view and its queries/exports, on real SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from sqlalchemy.orm import Session

from hamdb.errors import InputError
from hamdb.pipeline.candidates import candidates_query, export, fetch, view


def test_view_classifies_and_joins_dft(session: Session, screened: dict[str, int]):
    rows = {r["structure_id"]: r for r in fetch(session, candidates_query(only_candidates=False))}
    assert len(rows) == 6  # one row per predicted Hamiltonian
    assert rows[screened["strong"]]["z2_class"] == "strong"
    assert rows[screened["weak"]]["z2_class"] == "weak"
    assert rows[screened["trivial"]]["z2_class"] == "trivial"
    assert rows[screened["metal"]]["z2_class"] == "metal"
    assert rows[screened["parity"]]["topology_method"] == "wcc"
    assert rows[screened["parity"]]["nu3"] == 0  # the newest of two wcc results
    assert rows[screened["strong"]]["dft_agrees"] is True
    assert rows[screened["weak"]]["dft_agrees"] is False
    assert rows[screened["weak"]]["dft_z2_class"] == "trivial"
    assert rows[screened["tiny"]]["dft_agrees"] is None
    flagged = {sid for sid, r in rows.items() if r["is_candidate"]}
    assert flagged == {screened[k] for k in ("strong", "weak", "tiny", "parity")}


def test_filters(session: Session, screened: dict[str, int]):
    def ids(**kw: Any) -> list[int]:
        return [r["structure_id"] for r in fetch(session, candidates_query(**kw))]

    assert ids() == [screened[k] for k in ("parity", "strong", "weak", "tiny")]  # by gap
    assert ids(min_gap_ev=0.05, z2="strong") == [screened["parity"], screened["strong"]]
    assert ids(z2="weak") == [screened["weak"]]
    assert ids(unverified=True) == [screened["parity"], screened["tiny"]]
    assert ids(elements=["bi", "Se"]) == ids()
    assert ids(elements=["Te"]) == []
    # promise = gap - 2 * uncertainty: the weak one (0.08 - 0.10) falls behind the tiny one.
    assert ids(order="promise")[-1] == screened["weak"]
    with pytest.raises(InputError, match="element symbol"):
        candidates_query(elements=["Bi'; DROP TABLE structures; --"])


@pytest.mark.parametrize(
    ("kw", "where"),
    [
        ({"min_gap_ev": 0.05}, lambda c: [c.gap_ev >= 0.05]),
        ({"z2": "strong"}, lambda c: [c.dimension == 3, c.nu0 == 1]),
        ({"z2": "weak", "elements": ["Se"]}, lambda c: [c.dimension == 3, c.nu0 == 0,
                                                         c.elements_key.like("%-Se-%")]),
        ({"min_gap_ev": 0.1, "unverified": True},
         lambda c: [c.gap_ev >= 0.1, c.dft_topology_result_id.is_(None)]),
        ({"unverified": True}, lambda c: [c.dft_topology_result_id.is_(None)]),
    ],
)  # fmt: skip
def test_filters_found_through_topology_results_are_the_views_rows(
    session: Session, screened: dict[str, int], kw: dict[str, Any], where: Any
):
    """candidates_query finds filtered candidates in topology_results first: the same rows,
    in the same order, as the filters applied to the view itself."""
    from sqlalchemy import select

    direct = select(view).where(view.c.is_candidate, *where(view.c))
    direct = direct.order_by(view.c.gap_ev.desc(), view.c.structure_id)
    assert fetch(session, direct)  # each case keeps some rows
    assert fetch(session, candidates_query(**kw)) == fetch(session, direct)


def test_exports(session: Session, screened: dict[str, int], tmp_path: Any):
    rows = fetch(session, candidates_query())
    text = export(session, rows, "csv", None)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["structure_id"]) for r in parsed] == [r["structure_id"] for r in rows]
    assert json.loads(export(session, rows, "json", None))[0]["formula"] == "BiSe"
    lines = export(session, rows, "optimade", None).splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 4 and first["type"] == "structures"
    attrs = first["attributes"]
    assert attrs["elements"] == ["Bi", "Se"] and attrs["nsites"] == 2
    assert attrs["_hamdb_z2"] == [1, 0, 0, 0] and attrs["_hamdb_gap_ev"] == pytest.approx(0.5)
    assert "formula" in export(session, rows, "table", None)
    with pytest.raises(InputError, match="--output"):
        export(session, rows, "parquet", None)


def test_parquet_export_round_trips(session: Session, screened: dict[str, int], tmp_path: Any):
    pq = pytest.importorskip("pyarrow.parquet")
    rows = fetch(session, candidates_query())
    path = tmp_path / "c.parquet"
    export(session, rows, "parquet", path)
    table = pq.read_table(path).to_pylist()
    assert [r["structure_id"] for r in table] == [r["structure_id"] for r in rows]
    assert table[0]["z2_class"] == rows[0]["z2_class"]


def test_cli_candidates_and_export(project: Any, screened: dict[str, int], tmp_path: Any):
    from click.testing import CliRunner

    from hamdb.cli.main import cli

    runner = CliRunner()
    base = ["--project", str(project.root)]
    out = runner.invoke(cli, [*base, "candidates", "--z2", "strong", "--format", "csv"])
    assert out.exit_code == 0, out.output
    ids = [int(line.split(",")[0]) for line in out.output.splitlines()[1:]]
    assert ids == [screened["parity"], screened["strong"], screened["tiny"]]
    comma = runner.invoke(cli, [*base, "candidates", "--elements", "Bi,Se", "--json"])
    repeated = runner.invoke(
        cli, [*base, "candidates", "--elements", "Bi", "--elements", " se", "--json"]
    )
    assert comma.exit_code == 0 and repeated.exit_code == 0, comma.output + repeated.output
    assert len(json.loads(comma.output)) == 4 and comma.output == repeated.output
    none = runner.invoke(cli, [*base, "candidates", "--elements", "Te", "--format", "csv"])
    assert none.exit_code == 0 and len(none.output.splitlines()) == 1  # the header only
    target = tmp_path / "c.jsonl"
    out = runner.invoke(cli, [*base, "export", "candidates", "-o", str(target)])
    assert out.exit_code == 0, out.output
    assert len(target.read_text().splitlines()) == 4
    out = runner.invoke(cli, [*base, "report", "--json"])
    assert out.exit_code == 0 and json.loads(out.output)["tp"] == 1
