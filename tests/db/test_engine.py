"""Engines: cached per URL, sessions commit or roll back, SQLite writers queue."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from hamdb.db.engine import is_sqlite, make_engine, session_factory, session_scope
from hamdb.db.models import ModelRow
from hamdb.errors import ConfigError


def _count(engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(ModelRow))


def test_engines_are_shared_per_url(db_url: str) -> None:
    assert make_engine(db_url) is make_engine(db_url)
    assert is_sqlite(make_engine(db_url)) == db_url.startswith("sqlite")
    assert session_factory(db_url).kw["bind"] is make_engine(db_url)


def test_session_scope_commits_or_rolls_back(db_url: str) -> None:
    engine = make_engine(db_url)
    with session_scope(engine) as session:
        session.add(ModelRow(name="kept"))
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        session.add(ModelRow(name="dropped"))
        session.flush()
        raise RuntimeError("bad input")
    assert _count(engine) == 1


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        make_engine(url)


def test_sqlite_immediate_writers_queue_instead_of_failing(sqlite_project) -> None:
    """Two read-then-write transactions: the second waits for the first's lock."""
    engine = make_engine(sqlite_project.database_url)
    first_holds_lock = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with session_scope(engine, immediate=True) as session:
                session.scalar(select(func.count()).select_from(ModelRow))
                first_holds_lock.set()
                time.sleep(0.3)
                session.add(ModelRow(name="first"))
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert first_holds_lock.wait(5)
    with session_scope(engine, immediate=True) as session:
        n = session.scalar(select(func.count()).select_from(ModelRow))
        session.add(ModelRow(name=f"second-saw-{n}"))
    thread.join()
    assert not errors
    with session_scope(engine) as session:
        assert sorted(session.scalars(select(ModelRow.name))) == ["first", "second-saw-1"]


def _child_query(url: str, parent_engine_id: int, answers) -> None:
    engine = make_engine(url)
    answers.put((id(engine) != parent_engine_id, _count(engine)))


def test_a_forked_child_gets_its_own_engine(db_url: str) -> None:
    import multiprocessing

    engine = make_engine(db_url)
    with session_scope(engine) as session:
        session.add(ModelRow(name="before-fork"))
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    child = context.Process(target=_child_query, args=(db_url, id(engine), answers))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert answers.get(timeout=5) == (True, 1)
    assert _count(engine) == 1  # the parent's pooled connection still works
