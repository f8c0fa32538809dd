"""Migrations on both databases: empty -> head -> base, one step at a time, and the migrated
schema agreeing with the ORM (alembic's compare)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from hamdb.db import migrate
from hamdb.db.engine import build_engine
from hamdb.db.models import TABLES, Base
from hamdb.errors import DatabaseError

ORM_TABLES = {model.__tablename__ for model in TABLES}


def _tables(url: str) -> set[str]:
    engine = build_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _schema_diff(url: str, metadata: sa.MetaData) -> list:
    engine = build_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def _revisions_oldest_first() -> list[str]:
    script = ScriptDirectory.from_config(migrate._config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_there_is_exactly_one_head() -> None:
    assert migrate.head() == _revisions_oldest_first()[-1]
    assert (migrate.migrations_dir() / "env.py").is_file()


def test_upgrade_from_empty_to_head_and_back_to_base(empty_db_url: str) -> None:
    assert migrate.current(empty_db_url) is None
    assert migrate.upgrade(empty_db_url) == migrate.head()
    assert migrate.current(empty_db_url) == migrate.head()
    assert _tables(empty_db_url) == ORM_TABLES
    assert migrate.downgrade(empty_db_url, "base") is None
    assert _tables(empty_db_url) == set()
    assert migrate.current(empty_db_url) is None


def test_every_revision_upgrades_and_downgrades_one_step(empty_db_url: str) -> None:
    revisions = _revisions_oldest_first()
    for revision in revisions:
        assert migrate.upgrade(empty_db_url, revision) == revision
    for previous in reversed([None, *revisions[:-1]]):
        assert migrate.downgrade(empty_db_url, "-1") == previous
    assert _tables(empty_db_url) == set()


def test_upgrade_twice_changes_nothing(db_url: str) -> None:
    assert migrate.upgrade(db_url) == migrate.head()
    assert _tables(db_url) == ORM_TABLES


def test_migrated_schema_matches_the_orm(db_url: str) -> None:
    assert _schema_diff(db_url, Base.metadata) == []


def test_compare_sees_a_column_the_migrations_lack(db_url: str) -> None:
    """The check above can fail: an ORM with one extra column differs from the schema."""
    metadata = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    metadata.tables["structures"].append_column(sa.Column("band_gap_ev", sa.Float))
    diff = _schema_diff(db_url, metadata)
    assert [(d[0], d[2], d[3].name) for d in diff] == [("add_column", "structures", "band_gap_ev")]


def test_sqlite_is_set_up_for_safe_concurrent_use(sqlite_project) -> None:
    from hamdb.db.engine import make_engine

    with make_engine(sqlite_project.database_url).connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_unreachable_database_is_a_user_error(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-folder' / 'db.sqlite'}"
    with pytest.raises(DatabaseError, match="no-such-folder"):
        migrate.upgrade(url)


def test_an_unknown_revision_is_a_user_error(db_url: str) -> None:
    with pytest.raises(DatabaseError, match="nonsense"):
        migrate.downgrade(db_url, "nonsense")
    assert migrate.current(db_url) == migrate.head()


def test_current_does_not_create_a_missing_sqlite_file(tmp_path) -> None:
    path = tmp_path / "typo.sqlite"
    assert migrate.current(f"sqlite:///{path}") is None
    assert not path.exists()


def test_developers_alembic_command_line_uses_the_same_scripts(empty_db_url: str) -> None:
    """`alembic -c migrations.ini -x url=... upgrade head`, then `check`: ORM and head agree."""
    from pathlib import Path

    from alembic.config import main as alembic_main

    ini = str(Path(__file__).resolve().parents[2] / "migrations.ini")
    alembic_main(["-c", ini, "-x", f"url={empty_db_url}", "upgrade", "head"])
    assert migrate.current(empty_db_url) == migrate.head()
    alembic_main(["-c", ini, "-x", f"url={empty_db_url}", "check"])


BROKEN_REVISION = """
from alembic import op
import sqlalchemy as sa

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("THIS IS NOT SQL")


def downgrade():
    op.drop_table("half_done")
"""


def test_a_failing_migration_leaves_nothing_behind(empty_db_url: str, tmp_path) -> None:
    """Migrations run in one transaction, DDL included (on SQLite too): a revision that fails
    half-way leaves the database as it was, not half-migrated."""
    import shutil

    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.migrations_dir(), scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_broken.py").write_text(
        BROKEN_REVISION.format(head=migrate.head())
    )
    with pytest.raises(DatabaseError, match="upgrade failed"):
        migrate._run(empty_db_url, "upgrade", "head", scripts)
    assert migrate.current(empty_db_url) is None
    assert _tables(empty_db_url) == set()
