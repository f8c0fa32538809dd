"""`hamdb structures list`: filters, table and JSON output on both databases."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hamdb.cli.main import cli
from hamdb.db.models import StructureRow, StructureSourceRow, elements_key


@pytest.fixture
def three(project, session):
    for formula, sg, n_sites, elements in [
        ("Bi2Se3", 166, 5, ["Bi", "Se"]),
        ("Bi2Te3", 166, 5, ["Bi", "Te"]),
        ("Si", 227, 2, ["Si"]),
    ]:
        row = StructureRow(
            reduced_formula=formula,
            spacegroup_number=sg,
            n_sites=n_sites,
            elements=elements,
            elements_key=elements_key(elements),
            structure_json={},
        )
        row.sources.append(StructureSourceRow(source=f"{formula}.cif", source_id="0"))
        session.add(row)
    session.commit()
    return project


def _list(project, *args: str):
    return CliRunner().invoke(cli, ["--project", str(project.root), "structures", "list", *args])


def test_json_lists_matching_structures(three) -> None:
    result = _list(three, "--elements", "Bi", "--spacegroup", "166", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["total"] == 2
    assert [s["reduced_formula"] for s in payload["structures"]] == ["Bi2Se3", "Bi2Te3"]
    assert payload["structures"][0]["source"] == "Bi2Se3.cif"


def test_elements_comma_list_and_repeated_option_agree(three) -> None:
    comma = json.loads(_list(three, "--elements", "Bi,Te", "--json").stdout)
    repeated = json.loads(_list(three, "--elements", "Bi", "--elements", "Te", "--json").stdout)
    assert comma == repeated
    assert [s["reduced_formula"] for s in comma["structures"]] == ["Bi2Te3"]


def test_table_shows_rows_and_a_count(three) -> None:
    result = _list(three, "--max-sites", "4", "--formula", "Si")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "formula", "spacegroup", "n_sites", "material", "source"]
    assert lines[2].split()[1:4] == ["Si", "227", "2"]
    assert len(lines) == 3
    assert "(1 of 1 matching)" in result.stderr


def test_limit_cuts_the_list_but_not_the_count(three) -> None:
    result = _list(three, "--limit", "1")
    assert len(result.stdout.splitlines()) == 3
    assert "(1 of 3 matching)" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--elements", "Xx1"], "not an element symbol"),
        (["--spacegroup", "231"], "231"),
        (["--formula", "NotAFormula!"], "not a chemical formula"),
    ],
)
def test_bad_filters_are_user_errors(three, args, message) -> None:
    result = _list(three, *args)
    assert result.exit_code != 0
    assert message in result.output
