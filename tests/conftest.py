"""Fixtures shared by the whole suite."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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


@pytest.fixture(params=_DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database migrated to head and empty: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        path = tmp_path / "hamdb.sqlite"
        shutil.copyfile(request.getfixturevalue("_migrated_sqlite_template"), path)
        yield f"sqlite:///{path}"
        from hamdb.db.engine import dispose_all

        dispose_all()
        return
    from hamdb.db.migrate import upgrade

    admin = request.getfixturevalue("_postgres_admin")
    url, schema = _fresh_postgres_url(admin)
    try:
        upgrade(url)
        yield url
    finally:
        _drop_postgres_schema(admin, schema)


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
