"""`run_readonly`: queries run, and no statement can change the database, on both databases."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hamdb.db.models import ModelRow
from hamdb.db.readonly import first_keyword, run_readonly
from hamdb.errors import InputError


@pytest.fixture
def url_with_a_row(project, session: Session) -> str:
    session.add(ModelRow(name="keep-me", description="50% done"))
    session.commit()
    return project.database_url


def _still_one_row(session: Session) -> None:
    session.rollback()
    assert session.scalar(select(func.count()).select_from(ModelRow)) == 1


def test_select_returns_columns_and_rows(url_with_a_row: str) -> None:
    result = run_readonly(
        url_with_a_row,
        "SELECT name, description FROM models WHERE description LIKE '%done' AND name <> ':x'",
    )
    assert result.columns == ["name", "description"]
    assert result.rows == [("keep-me", "50% done")]


def test_a_query_without_rows_keeps_its_columns(url_with_a_row: str) -> None:
    result = run_readonly(url_with_a_row, "/* none */ SELECT id FROM models WHERE 1 = 0")
    assert result.columns == ["id"]
    assert result.rows == []


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM models",
        "UPDATE models SET name = 'x'",
        "DROP TABLE models",
        "CREATE TABLE evil (a INTEGER)",
        "  -- a comment\n INSERT INTO models (name, created_at) VALUES ('x', '2020-01-01')",
        "COMMIT",
        "ATTACH DATABASE 'other.sqlite' AS other",
    ],
)
def test_statements_that_are_not_queries_are_refused(
    url_with_a_row: str, session: Session, sql: str
) -> None:
    with pytest.raises(InputError, match="read-only queries only"):
        run_readonly(url_with_a_row, sql)
    _still_one_row(session)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DELETE FROM models",
        "SELECT 1; COMMIT; DELETE FROM models",
    ],
)
def test_a_second_statement_never_runs(url_with_a_row: str, session: Session, sql: str) -> None:
    with pytest.raises(InputError):
        run_readonly(url_with_a_row, sql)
    _still_one_row(session)


def test_a_write_hidden_in_a_query_is_refused_by_the_connection(
    url_with_a_row: str, session: Session, project
) -> None:
    """Past the keyword check (the statement starts with WITH / EXPLAIN), the read-only
    connection itself refuses the write."""
    if project.is_sqlite:
        sql = "WITH x AS (SELECT 1) INSERT INTO models (name, created_at) SELECT 'y', '2020'"
    else:
        sql = "WITH gone AS (DELETE FROM models RETURNING id) SELECT count(*) FROM gone"
    with pytest.raises(InputError):
        run_readonly(url_with_a_row, sql)
    if not project.is_sqlite:
        with pytest.raises(InputError, match="read-only transaction"):
            run_readonly(url_with_a_row, "EXPLAIN ANALYZE DELETE FROM models")
    _still_one_row(session)


def test_sqlite_pragmas_that_set_values_are_refused(sqlite_project) -> None:
    url = sqlite_project.database_url
    assert run_readonly(url, "PRAGMA foreign_key_list(hamiltonians)").rows
    with pytest.raises(InputError, match="not authorized"):
        run_readonly(url, "PRAGMA query_only = 0")


def test_timeout_stops_a_long_query(project) -> None:
    if project.is_sqlite:
        endless = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n"
        )
    else:
        endless = "SELECT pg_sleep(30)"
    started = time.monotonic()
    with pytest.raises(InputError, match=r"interrupted|statement timeout"):
        run_readonly(project.database_url, endless, timeout_s=0.2)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("sql", "keyword"),
    [
        ("select 1", "select"),
        ("  (SELECT 1)", "select"),
        ("-- note\nWITH a AS (SELECT 1) SELECT * FROM a", "with"),
        ("/* multi\nline */ explain select 1", "explain"),
        ("/* unclosed comment DELETE", ""),
        ("", ""),
    ],
)
def test_first_keyword_skips_comments_and_parentheses(sql: str, keyword: str) -> None:
    assert first_keyword(sql) == keyword
