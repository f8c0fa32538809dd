"""`hamdb db upgrade|current|downgrade` and `hamdb info` on a real project, both databases."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hamdb.cli.main import cli
from hamdb.db.migrate import head


def _run(project, *args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["--project", str(project.root), *args], input=input)


def test_info_names_database_store_schema_and_counts(project) -> None:
    result = _run(project, "info", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["schema"] == head() and info["up_to_date"]
    assert info["store"] == str(project.store_path)
    assert info["backend"] == ("sqlite" if project.is_sqlite else "postgresql")
    assert info["rows"]["structures"] == 0 and "topology_results" in info["rows"]
    text = _run(project, "info")
    assert text.exit_code == 0
    assert f"schema    {head()} (up to date)" in text.output


def test_info_hides_the_database_password(sqlite_project, monkeypatch) -> None:
    """--db overrides hamdb.toml; the password in it never reaches the output."""
    url = "postgresql+psycopg://hamdb:s3cret@127.0.0.1:1/nowhere"
    result = CliRunner().invoke(
        cli, ["--project", str(sqlite_project.root), "--db", url, "info", "--json"]
    )
    assert "s3cret" not in result.output
    assert result.exit_code == 1
    assert result.output.startswith("hamdb: error: postgresql+psycopg://hamdb:***@127.0.0.1:1")


def test_downgrade_upgrade_and_current(project) -> None:
    refused = _run(project, "db", "downgrade", "base", input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    down = _run(project, "db", "downgrade", "base", "--yes", "--json")
    assert down.exit_code == 0, down.output
    assert json.loads(down.output)["to"] is None
    behind = _run(project, "db", "current")
    assert behind.exit_code == 1 and "run hamdb db upgrade" in behind.output
    info = json.loads(_run(project, "info", "--json").output)
    assert info["schema"] is None and info["rows"] == {}
    up = _run(project, "db", "upgrade")
    assert up.exit_code == 0 and f"schema empty -> {head()}" in up.output
    again = _run(project, "db", "upgrade")
    assert f"already at schema {head()}" in again.output
    current = _run(project, "db", "current", "--json")
    assert current.exit_code == 0
    assert json.loads(current.output)["up_to_date"] is True


def test_init_then_info_from_a_fresh_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("HAMDB_DATABASE_URL", raising=False)
    monkeypatch.delenv("HAMDB_PROJECT", raising=False)
    root = tmp_path / "fresh"
    assert CliRunner().invoke(cli, ["init", str(root)]).exit_code == 0
    result = CliRunner().invoke(cli, ["--project", str(root), "info", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["database"] == f"sqlite:///{root / 'hamdb.sqlite'}"


@pytest.mark.parametrize("command", [["info"], ["db", "current"], ["sql", "SELECT 1"]])
def test_commands_outside_a_project_say_how_to_make_one(tmp_path, monkeypatch, command) -> None:
    monkeypatch.delenv("HAMDB_PROJECT", raising=False)
    result = CliRunner().invoke(cli, ["--project", str(tmp_path), *command])
    assert result.exit_code == 1
    assert "hamdb init" in result.output
