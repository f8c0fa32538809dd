"""Schema migrations: alembic, driven from Python so an installed hamdb migrates its database.

The migration scripts live in the repo's top-level `alembic/` folder, installed as
`hamdb.migrations` (pyproject's package-dir mapping); `migrations.ini` at the repo root points
developers' `alembic -c migrations.ini ...` at the same folder. The alembic `Config` here is
built in code and hands env.py an open connection, so a URL containing `%` (PostgreSQL
options) never passes through configparser interpolation.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

import hamdb
from hamdb.db.engine import build_engine
from hamdb.errors import DatabaseError


def migrations_dir() -> Path:
    """The folder holding env.py and versions/: installed package first, then the source tree."""
    package = Path(hamdb.__file__).resolve().parent
    for candidate in (package / "migrations", package.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise DatabaseError(f"{package}: hamdb's migrations are missing (broken installation)")


def _config(script_location: Path | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location or migrations_dir()))
    return config


def head() -> str:
    """The newest revision the installed hamdb knows (there is always exactly one head)."""
    heads = ScriptDirectory.from_config(_config()).get_heads()
    if len(heads) != 1:
        raise DatabaseError(f"hamdb's migrations have {len(heads)} heads {heads}; expected one")
    return heads[0]


def _run(url: str, action: str, revision: str, scripts: Path | None = None) -> str | None:
    config = _config(scripts)
    # A migration-only engine: SQLite foreign keys off while tables are rebuilt (env.py
    # checks them afterwards), and nothing of it stays in the process-wide cache.
    engine = build_engine(url, sqlite_foreign_keys=False)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            getattr(command, action)(config, revision)
            connection.commit()
        return _current(engine)
    except CommandError as exc:  # an unknown revision, a downgrade past base
        where = engine.url.render_as_string()
        raise DatabaseError(f"{where}: {action} {revision}: {exc}") from None
    except DBAPIError as exc:
        raise DatabaseError(
            f"{engine.url.render_as_string()}: {action} failed: {exc.orig}"
        ) from None
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> str:
    """Migrate the database at `url` up to `revision`; returns the revision it is now at."""
    reached = _run(url, "upgrade", revision)
    assert reached is not None
    return reached


def downgrade(url: str, revision: str) -> str | None:
    """Migrate down to `revision` ('base' removes every table); returns the new revision."""
    return _run(url, "downgrade", revision)


def current(url: str) -> str | None:
    """The revision the database is at, None for a database never migrated (or a SQLite file
    that does not exist yet, which this does not create)."""
    if _is_missing_sqlite_file(url):
        return None
    engine = build_engine(url)
    try:
        return _current(engine)
    finally:
        engine.dispose()


def _is_missing_sqlite_file(url: str) -> bool:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False  # build_engine reports it
    database = parsed.database or ""
    return (
        parsed.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
        and not Path(database).exists()
    )


def _current(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        raise DatabaseError(
            f"{engine.url.render_as_string()}: cannot read the schema version: {exc.orig}"
        ) from None
