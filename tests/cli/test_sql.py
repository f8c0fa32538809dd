"""`hamdb sql`: table, CSV and JSON output; writes refused; on both databases."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from hamdb.cli.main import cli
from hamdb.db.models import ModelRow

QUERY = "SELECT name, description FROM models ORDER BY name"


@pytest.fixture
def two_models(project, session):
    session.add_all([ModelRow(name="alpha", description="a, with comma"), ModelRow(name="beta")])
    session.commit()
    return project


def _sql(project, *args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["--project", str(project.root), "sql", *args], input=input)


def test_table_output(two_models) -> None:
    result = _sql(two_models, QUERY)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "description"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].startswith("alpha") and lines[2].endswith("a, with comma")
    assert lines[3].rstrip() == "beta"
    assert "(2 rows)" in result.stderr


def test_csv_output_round_trips(two_models) -> None:
    result = _sql(two_models, "--format", "csv", QUERY)
    assert result.exit_code == 0
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows == [["name", "description"], ["alpha", "a, with comma"], ["beta", ""]]


def test_json_output_and_query_from_stdin(two_models) -> None:
    result = _sql(two_models, "--json", "-", input=QUERY)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        {"name": "alpha", "description": "a, with comma"},
        {"name": "beta", "description": None},
    ]


@pytest.mark.parametrize(
    "query",
    ["DELETE FROM models", "SELECT 1; DELETE FROM models", "UPDATE models SET name = 'x'"],
)
def test_writes_are_refused_and_change_nothing(two_models, session, query) -> None:
    result = _sql(two_models, query)
    assert result.exit_code == 1
    assert result.output.startswith("hamdb: error: hamdb sql")
    session.rollback()
    assert session.scalar(select(func.count()).select_from(ModelRow)) == 2


def test_a_bad_query_is_a_one_line_error(two_models) -> None:
    result = _sql(two_models, "SELECT no_such_column FROM models")
    assert result.exit_code == 1
    assert "no_such_column" in result.output and len(result.output.splitlines()) == 1


def test_timestamps_and_json_columns_print_as_json(project, session) -> None:
    from hamdb.db.models import StructureRow, elements_key

    session.add(
        StructureRow(
            reduced_formula="Bi2Se3",
            spacegroup_number=166,
            n_sites=5,
            elements=["Bi", "Se"],
            elements_key=elements_key(["Bi", "Se"]),
            structure_json={"lattice": [[1, 0, 0]]},
        )
    )
    session.commit()
    query = "SELECT elements, structure_json, created_at FROM structures"
    for fmt in ("json", "csv", "table"):
        result = _sql(project, "--format", fmt, query)
        assert result.exit_code == 0, result.output
        assert (
            "Bi" in result.stdout
            and str(session.scalar(select(StructureRow.created_at)).year) in result.stdout
        )
    (row,) = json.loads(_sql(project, "--json", query).stdout)
    # PostgreSQL hands back JSONB as objects, SQLite as the JSON text it stores.
    elements = row["elements"] if isinstance(row["elements"], list) else json.loads(row["elements"])
    assert elements == ["Bi", "Se"]
