"""Fixtures shared by the whole suite."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymatgen.core import Lattice, Structure

REPO_ROOT = Path(__file__).resolve().parents[1]
TOPOLOGY_TESTDATA = REPO_ROOT.parent / "shared" / "topology_testdata"


@pytest.fixture(scope="session")
def topology_testdata() -> Path:
    """../shared/topology_testdata: published SOC Hamiltonians with known Z2 (PROVENANCE.md)."""
    if not TOPOLOGY_TESTDATA.is_dir():
        pytest.skip(f"{TOPOLOGY_TESTDATA} is absent (CI always has it)")
    return TOPOLOGY_TESTDATA


# --- Databases: every DB test runs on SQLite and on PostgreSQL (issue 3) -------------------

POSTGRES_TEST_URL = os.environ.get(
    "HAMDB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def _migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; each test gets a copy (fast)."""
    from hamdb.db.migrate import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _postgres_admin() -> Iterator[Any]:
    """An engine on the test PostgreSQL server; skip (or fail when CI=true) if unreachable."""
    import sqlalchemy as sa

    engine = sa.create_engine(
        POSTGRES_TEST_URL, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        reason = f"PostgreSQL at {POSTGRES_TEST_URL} unreachable: {str(exc.orig).strip()}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)
    yield engine
    engine.dispose()


def _fresh_postgres_url(admin: Any) -> tuple[str, str]:
    """Create an empty schema; return (URL whose search_path is that schema, schema name)."""
    import sqlalchemy as sa

    schema = f"test_{uuid.uuid4().hex[:16]}"
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(POSTGRES_TEST_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), schema


def _drop_postgres_schema(admin: Any, schema: str) -> None:
    import sqlalchemy as sa

    from hamdb.db.engine import dispose_all

    dispose_all()
    with admin.begin() as connection:
        connection.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


_DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=_DATABASES)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, never-migrated database: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        from hamdb.db.engine import dispose_all

        dispose_all()
        return
    admin = request.getfixturevalue("_postgres_admin")
    url, schema = _fresh_postgres_url(admin)
    try:
        yield url
    finally:
        _drop_postgres_schema(admin, schema)


class _MigratedPostgresSchema:
    """A PostgreSQL schema migrated to head once per test module and emptied after each test.

    Migrating takes ~0.5 s, emptying ~0.05 s: every test still starts on an empty database
    (rows deleted, id sequences restarted). A test that changed the schema itself (a
    downgrade) or left rows locked gets a brand-new schema instead.
    """

    def __init__(self, admin: Any) -> None:
        self.admin = admin
        self.url, self.schema = "", ""
        self._create()

    def _create(self) -> None:
        from hamdb.db.migrate import upgrade

        self.url, self.schema = _fresh_postgres_url(self.admin)
        upgrade(self.url)

    def reset(self) -> None:
        """Empty every table for the next test, or replace the schema if emptying fails."""
        import sqlalchemy as sa

        from hamdb.db.engine import dispose_all
        from hamdb.db.migrate import head
        from hamdb.db.models import Base

        dispose_all()
        try:
            with self.admin.begin() as connection:
                connection.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
                connection.execute(sa.text(f'SET LOCAL search_path TO "{self.schema}"'))
                revision = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
                if revision.scalar() != head():
                    raise RuntimeError("schema changed by the test")
                for table in reversed(Base.metadata.sorted_tables):
                    connection.execute(table.delete())
                connection.execute(
                    sa.text(
                        "SELECT setval(c.oid::regclass, 1, false) FROM pg_class c"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE c.relkind = 'S' AND n.nspname = :schema"
                    ),
                    {"schema": self.schema},
                )
        except (sa.exc.SQLAlchemyError, RuntimeError):
            self.drop()
            self._create()

    def drop(self) -> None:
        import sqlalchemy as sa

        # Still locked by a leaked connection after 5 s: leave it; no later test uses it.
        with contextlib.suppress(sa.exc.OperationalError):
            _drop_postgres_schema(self.admin, self.schema)


@pytest.fixture(scope="module")
def _postgres_module_schema(request: pytest.FixtureRequest) -> Iterator[_MigratedPostgresSchema]:
    schema = _MigratedPostgresSchema(request.getfixturevalue("_postgres_admin"))
    yield schema
    schema.drop()


@pytest.fixture(params=_DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database migrated to head and empty: a SQLite file, or a PostgreSQL schema (one per
    test module, emptied between tests, so no test sees another's rows)."""
    if request.param == "sqlite":
        path = tmp_path / "hamdb.sqlite"
        shutil.copyfile(request.getfixturevalue("_migrated_sqlite_template"), path)
        yield f"sqlite:///{path}"
        from hamdb.db.engine import dispose_all

        dispose_all()
        return
    schema = request.getfixturevalue("_postgres_module_schema")
    try:
        yield schema.url
    finally:
        schema.reset()


def _make_project(root: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from hamdb.config import CONFIG_NAME, load_project, write_default_config

    monkeypatch.delenv("HAMDB_DATABASE_URL", raising=False)
    monkeypatch.delenv("HAMDB_PROJECT", raising=False)
    write_default_config(root)
    config = root / CONFIG_NAME
    lines = [
        f"url = {json.dumps(database_url)}" if line.startswith("url = ") else line
        for line in config.read_text().splitlines()
    ]
    config.write_text("\n".join(lines) + "\n")
    project = load_project(root)
    project.store_path.mkdir(parents=True, exist_ok=True)
    return project


@pytest.fixture
def project(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A `hamdb.config.Project` in tmp_path/project (hamdb.toml, store/) on `db_url`."""
    return _make_project(tmp_path / "project", db_url, monkeypatch)


@pytest.fixture
def sqlite_project(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Like `project`, on SQLite only (for what only makes sense there: read-only files, WAL)."""
    path = tmp_path / "sqlite-project" / "hamdb.sqlite"
    path.parent.mkdir(parents=True)
    shutil.copyfile(request.getfixturevalue("_migrated_sqlite_template"), path)
    yield _make_project(path.parent, f"sqlite:///{path}", monkeypatch)
    from hamdb.db.engine import dispose_all

    dispose_all()


@pytest.fixture
def session(project: Any) -> Iterator[Any]:
    """An ORM session on the project's database (the test commits what it needs)."""
    from sqlalchemy.orm import Session

    from hamdb.db.engine import make_engine

    with Session(make_engine(project.database_url), expire_on_commit=False) as db_session:
        yield db_session


@pytest.fixture(scope="session")
def gaas_like() -> Structure:
    """A two-atom zincblende cell (atoms off the origin, so gauges differ)."""
    return Structure(
        Lattice.from_parameters(4.0, 4.2, 4.4, 85, 95, 100),
        ["Ga", "As"],
        [[0.1, 0.05, 0.2], [0.35, 0.3, 0.45]],
    )
