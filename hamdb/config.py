"""Where a hamdb project lives: its folder, its database URL and its HDF5 store.

A project is a folder holding `hamdb.toml`, a SQLite file and a `store/` folder (made by
`hamdb init`). It is found from `--project PATH`, else `$HAMDB_PROJECT`, else the current
folder; the database URL from `--db URL`, else `$HAMDB_DATABASE_URL`, else hamdb.toml. That lets
a hundred cluster workers share one PostgreSQL database and one store on a shared filesystem.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from hamdb.errors import ConfigError

CONFIG_NAME = "hamdb.toml"
DEFAULT_SQLITE_NAME = "hamdb.sqlite"
DEFAULT_STORE_NAME = "store"

DEFAULT_CONFIG = f"""\
# hamdb project settings. Paths are relative to this file.
[database]
# SQLite by default; for many workers point this (or $HAMDB_DATABASE_URL, or --db) at
# PostgreSQL, e.g. "postgresql+psycopg://postgres@127.0.0.1:5432/hamdb".
url = "sqlite:///{DEFAULT_SQLITE_NAME}"

[store]
path = "{DEFAULT_STORE_NAME}"
"""


@dataclass(frozen=True)
class Project:
    """A resolved project: absolute folder, SQLAlchemy database URL, absolute store folder."""

    root: Path
    database_url: str
    store_path: Path

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _absolute_sqlite_url(url: str, root: Path) -> str:
    """Make `sqlite:///relative.db` relative to the project folder, not to the cwd."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str((root / url[len(prefix) :]).resolve())
    return url


def load_project(project: str | os.PathLike[str] | None = None, db: str | None = None) -> Project:
    """Resolve the project folder and database URL from options, environment and hamdb.toml."""
    root = Path(project or os.environ.get("HAMDB_PROJECT") or Path.cwd()).resolve()
    config_file = root / CONFIG_NAME
    if not config_file.is_file():
        raise ConfigError(
            f"{config_file}: no hamdb project here; run 'hamdb init {root}' or pass --project"
        )
    try:
        settings = tomllib.loads(config_file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_file}: not valid TOML ({exc})") from None
    url = db or os.environ.get("HAMDB_DATABASE_URL") or settings.get("database", {}).get("url")
    if not url:
        raise ConfigError(f"{config_file}: no [database] url and no --db / $HAMDB_DATABASE_URL")
    store = Path(settings.get("store", {}).get("path", DEFAULT_STORE_NAME))
    store_path = store if store.is_absolute() else (root / store).resolve()
    return Project(root=root, database_url=_absolute_sqlite_url(url, root), store_path=store_path)


def write_default_config(root: Path) -> Path:
    """Create `root/hamdb.toml` with the embedded defaults unless one is already there."""
    root.mkdir(parents=True, exist_ok=True)
    config_file = root / CONFIG_NAME
    if not config_file.exists():
        config_file.write_text(DEFAULT_CONFIG)
    (root / DEFAULT_STORE_NAME).mkdir(exist_ok=True)
    return config_file
