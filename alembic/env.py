"""alembic environment for hamdb (used by `hamdb db upgrade` and by `alembic -c migrations.ini`).

hamdb.db.migrate passes an open connection in `config.attributes["connection"]`. Run by hand,
the database URL comes from `-x url=...`, else $HAMDB_DATABASE_URL, else the hamdb project
found from $HAMDB_PROJECT or the current folder.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from hamdb.db.models import Base
from hamdb.errors import DatabaseError

target_metadata = Base.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    import os

    if os.environ.get("HAMDB_DATABASE_URL"):
        return os.environ["HAMDB_DATABASE_URL"]
    from hamdb.config import load_project

    return load_project().database_url


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # hamdb.db.engine makes pysqlite emit BEGIN, so DDL is transactional on SQLite too.
        transactional_ddl=True,
        # SQLite alters tables by copying them: autogenerate writes batch operations (plain
        # ALTERs on PostgreSQL), so a revision generated on either database runs on both.
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            # Migrations run with foreign keys off (see hamdb.db.engine.build_engine): check
            # them before the transaction commits.
            broken = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
            if broken:
                raise DatabaseError(f"migration left rows with broken foreign keys: {broken[:5]}")


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    from hamdb.db.engine import build_engine

    engine = build_engine(_url(), sqlite_foreign_keys=False)
    try:
        with engine.connect() as connection:
            _migrate(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.config.config_file_name is not None:
    from logging.config import fileConfig

    fileConfig(context.config.config_file_name, disable_existing_loggers=False)
if context.is_offline_mode():
    raise SystemExit("hamdb migrations run online only (offline SQL differs between databases)")
run_migrations_online()
