"""Run one user-written SQL query without any way to change the database (`hamdb sql`).

The user's text is the query itself, so it is passed to the driver untouched (never formatted,
never given bind parameters it did not ask for). Writes are refused in three independent ways:

1. The statement must start with a query keyword (SELECT, WITH, VALUES, TABLE, EXPLAIN, SHOW;
   PRAGMA on SQLite), after leading comments and parentheses.
2. Exactly one statement runs: on PostgreSQL the query goes through the extended protocol as a
   prepared statement (which cannot hold several commands); sqlite3 refuses several itself.
3. The connection cannot write: on PostgreSQL a `READ ONLY` transaction (on a connection that
   is then discarded), on SQLite a `file:...?mode=ro` connection plus an authorizer that only
   allows reading (mode=ro alone would still let ATTACH create and write another file).

A PostgreSQL superuser can still call functions with side effects outside the database; give
untrusted users a role with SELECT privileges only.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import make_url
from sqlalchemy.engine import URL

from hamdb.errors import DatabaseError, InputError

QUERY_KEYWORDS = frozenset({"select", "with", "values", "table", "explain", "show"})
SQLITE_QUERY_KEYWORDS = QUERY_KEYWORDS - {"show"} | {"pragma"}

_LEADING_NOISE = re.compile(r"(\s+|--[^\n]*(\n|$)|/\*.*?\*/|\()", re.DOTALL)

_SQLITE_READ_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_FUNCTION,
        sqlite3.SQLITE_RECURSIVE,
        sqlite3.SQLITE_PRAGMA,
    }
)

#: PRAGMAs whose argument names what to describe (a table, an index) instead of a new value.
_SQLITE_DESCRIBING_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
    }
)


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of a query, values as the driver returns them."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def first_keyword(sql: str) -> str:
    """The first word of `sql` in lower case, skipping whitespace, comments and '('."""
    position = 0
    while match := _LEADING_NOISE.match(sql, position):
        position = match.end()
    word = re.match(r"[A-Za-z]+", sql[position:])
    return word.group(0).lower() if word else ""


def run_readonly(url: str, sql: str, *, timeout_s: float = 300.0) -> QueryResult:
    """Run the single query `sql` on the database at `url` in a connection that cannot write.

    timeout_s: the server stops the query after this many seconds (PostgreSQL), SQLite
    interrupts it.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    allowed = SQLITE_QUERY_KEYWORDS if backend == "sqlite" else QUERY_KEYWORDS
    keyword = first_keyword(sql)
    if keyword not in allowed:
        raise InputError(
            f"hamdb sql runs read-only queries only: the statement starts with {keyword!r}, "
            f"expected one of {', '.join(sorted(k.upper() for k in allowed))}"
        )
    if backend == "sqlite":
        return _run_sqlite(parsed, sql, timeout_s)
    if backend == "postgresql":
        return _run_postgresql(parsed, sql, timeout_s)
    raise DatabaseError(f"{parsed.render_as_string()}: hamdb supports SQLite and PostgreSQL only")


def _sqlite_authorizer(action: int, arg1: Any, arg2: Any, _db: Any, _trigger: Any) -> int:
    # A PRAGMA with an argument sets something (query_only = 0), except those that only
    # describe the schema.
    if action == sqlite3.SQLITE_PRAGMA and arg2 is not None:
        described = str(arg1).lower() in _SQLITE_DESCRIBING_PRAGMAS
        return sqlite3.SQLITE_OK if described else sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK if action in _SQLITE_READ_ACTIONS else sqlite3.SQLITE_DENY


def _run_sqlite(url: URL, sql: str, timeout_s: float) -> QueryResult:
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise DatabaseError(f"{url}: hamdb sql needs a SQLite file path")
    path = Path(database)
    if not path.is_file():
        raise DatabaseError(f"{path}: no such SQLite database")
    try:
        connection = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DatabaseError(f"{path}: cannot open read-only: {exc}") from None
    try:
        connection.execute("PRAGMA query_only = 1")
        connection.set_authorizer(_sqlite_authorizer)
        _interrupt_after(connection, timeout_s)
        cursor = connection.execute(sql)
        columns = [d[0] for d in cursor.description or ()]
        return QueryResult(columns, cursor.fetchall())
    except sqlite3.Error as exc:  # also "You can only execute one statement at a time."
        raise InputError(f"hamdb sql: {exc}") from None
    finally:
        connection.close()


def _interrupt_after(connection: sqlite3.Connection, timeout_s: float) -> None:
    import time

    deadline = time.monotonic() + timeout_s

    def check() -> int:
        return 1 if time.monotonic() > deadline else 0

    connection.set_progress_handler(check, 10_000)


def _run_postgresql(url: URL, sql: str, timeout_s: float) -> QueryResult:
    import psycopg

    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        connection = psycopg.connect(conninfo, autocommit=False)
    except psycopg.Error as exc:
        raise DatabaseError(f"{url.render_as_string()}: cannot connect: {exc}") from None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION READ ONLY")
            cursor.execute(
                "SELECT set_config('statement_timeout', %s, true)", (f"{int(timeout_s * 1000)}",)
            )
            cursor.execute(sql, prepare=True)  # type: ignore[arg-type]
            columns = [d.name for d in cursor.description or ()]
            rows = cursor.fetchall() if cursor.description else []
            return QueryResult(columns, [tuple(r) for r in rows])
    except psycopg.Error as exc:
        message = str(exc).strip().splitlines()[0]
        raise InputError(f"hamdb sql: {message}") from None
    finally:
        connection.rollback()
        connection.close()
