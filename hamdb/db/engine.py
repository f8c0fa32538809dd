"""Engines and sessions for SQLite and PostgreSQL, set up the way hamdb needs them.

SQLite: foreign keys on (off by default in SQLite), WAL journal so readers never block the
writer, a busy timeout so a second process waits instead of failing at once, and real
transactions: the pysqlite driver by default neither begins a transaction before DDL nor
before SELECT, so hamdb emits BEGIN itself (the recipe of SQLAlchemy's SQLite documentation).
PostgreSQL: `pool_pre_ping` so a worker survives a server restart between batches.

Engines are cached per URL inside a process: every command and worker asks `make_engine(url)`
and shares one pool. A forked child (multiprocessing workers) starts with an empty cache and
never touches the parent's pooled connections: two processes on one socket corrupt both.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from hamdb.errors import ConfigError

#: How long (ms) a SQLite connection waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: Execution option naming the SQLite BEGIN mode ("IMMEDIATE" takes the write lock at once).
SQLITE_BEGIN_OPTION = "hamdb_sqlite_begin"

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def _forget_engines_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    for engine in _engines.values():
        engine.dispose(close=False)  # drop the parent's connections without closing them
    _engines.clear()


os.register_at_fork(after_in_child=_forget_engines_in_child)


def is_sqlite(engine: Engine) -> bool:
    """True for a SQLite engine (one writer at a time, no SKIP LOCKED)."""
    return engine.dialect.name == "sqlite"


def make_engine(url: str) -> Engine:
    """The process-wide engine for `url`, created on first use (see the module docstring)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = build_engine(url)
            _engines[url] = engine
        return engine


def build_engine(url: str, *, sqlite_foreign_keys: bool = True, **kwargs: Any) -> Engine:
    """A new, uncached engine for `url`; `make_engine` is what commands use.

    `sqlite_foreign_keys=False` is for migrations only: SQLite rebuilds a table to alter it,
    and with foreign keys on, dropping the old table would cascade into its children.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"{url!r} is not a database URL (e.g. sqlite:///hamdb.sqlite)") from None
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine, foreign_keys=sqlite_foreign_keys)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True, **kwargs)
    raise ConfigError(f"{parsed.render_as_string()}: hamdb supports SQLite and PostgreSQL only")


def _configure_sqlite(engine: Engine, *, foreign_keys: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite (see the module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            # Safe with WAL: a power cut can lose the last commits, never corrupt the file.
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())


def session_factory(url: str) -> sessionmaker[Session]:
    """A sessionmaker bound to the shared engine for `url`.

    `expire_on_commit=False` so rows read in a finished transaction stay usable by the CLI
    that prints them.
    """
    return sessionmaker(bind=make_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine, *, immediate: bool = False) -> Iterator[Session]:
    """One transaction: commit if the block finishes, roll back if it raises.

    immediate: on SQLite, take the write lock at BEGIN (BEGIN IMMEDIATE). A transaction that
    reads and then writes should ask for it: two such writers then queue on the busy timeout,
    where with a plain BEGIN the second fails at once with "database is locked" when it tries
    to upgrade its read lock. No effect on PostgreSQL.
    """
    bind = engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"}) if immediate else engine
    with Session(bind, expire_on_commit=False) as session, session.begin():
        yield session


def dispose_all() -> None:
    """Close every cached engine's connections (tests drop schemas and files after this)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
