"""`hamdb db ...`: the database schema (alembic migrations shipped with hamdb)."""

from __future__ import annotations

import click

from hamdb.cli.main import LazyGroup


def _db() -> None:
    """Migrate the project's database and show its schema version.

    \b
    Examples:
      hamdb db current
      hamdb db upgrade
      hamdb --db postgresql+psycopg://postgres@127.0.0.1:5432/hamdb db upgrade
    """


command = click.group("db", cls=LazyGroup, prefix="db_")(_db)
