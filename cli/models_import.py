"""`hamdb models import FOLDER|FILE|NAME`: register a weights file (e.g. the shipped model)."""

from __future__ import annotations

from pathlib import Path

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project


@click.command("import")
@click.argument("source")
@click.option("--name", help="Registry name (default: the folder's name).")
@click.option(
    "--alias",
    "alias",
    default="production",
    show_default=True,
    help="Alias to set when no version of any model has it yet ('' for none).",
)
@json_option
@pass_project
def command(project: Project, source: str, name: str | None, alias: str, as_json: bool) -> None:
    """Register SOURCE (a models/<name> folder holding model.pt, a .pt file, or the name of a
    model shipped with hamdb, which an installed wheel carries too) as a version.

    \b
    Examples:
      hamdb models import hamdb-small          # the shipped model, wherever hamdb is installed
      hamdb models import models/hamdb-small   # the same from a source checkout
    """
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from hamdb.db.engine import make_engine
    from hamdb.db.models import ModelAliasRow
    from hamdb.ml.bundle import ModelBundle
    from hamdb.ml.inference import BUNDLE_FILE
    from hamdb.ml.registry import register_version, set_alias

    path = _source_path(source)
    file = path / BUNDLE_FILE if path.is_dir() else path
    name = name or (path.name if path.is_dir() else path.stem)
    bundle = ModelBundle.load(file)
    with Session(make_engine(project.database_url)) as session:
        row = register_version(
            session,
            project.store_path,
            name,
            bundle,
            training_data={
                "imported_from": str(file.resolve()),
                **bundle.meta.get("training_data", {}),
            },
            metrics=bundle.meta.get("metrics"),
        )
        aliased = False
        if (
            alias
            and session.scalar(select(ModelAliasRow).where(ModelAliasRow.alias == alias)) is None
        ):
            set_alias(session, name, row.version, alias)
            aliased = True
        session.commit()
        out = {
            "name": name,
            "version": row.version,
            "model_version_id": row.id,
            "alias": alias if aliased else None,
        }
    if as_json:
        echo_json(out)
    else:
        click.echo(f"registered {name}@{row.version}" + (f" as {alias}" if aliased else ""))


def _source_path(source: str) -> Path:
    """SOURCE as a path: an existing file or folder, else the shipped model of that name."""
    from hamdb.errors import InputError
    from hamdb.ml.inference import BUNDLE_FILE, SHIPPED_MODELS_DIR

    path = Path(source)
    if path.exists():
        return path
    shipped = SHIPPED_MODELS_DIR / source
    if (shipped / BUNDLE_FILE).is_file():
        return shipped
    names = sorted(p.parent.name for p in SHIPPED_MODELS_DIR.glob(f"*/{BUNDLE_FILE}"))
    raise InputError(
        f"{source}: no such file or folder, and not a shipped model "
        f"(shipped: {', '.join(names) or 'none'})"
    )
