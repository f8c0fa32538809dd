"""`hamdb init [PATH]`: create a project folder (hamdb.toml, SQLite database, store/)."""

from __future__ import annotations

from pathlib import Path

import click

from hamdb.cli.options import json_option


@click.command("init")
@click.argument("path", type=click.Path(file_okay=False), default=".")
@json_option
@click.pass_context
def command(ctx: click.Context, path: str, as_json: bool) -> None:
    """Create a hamdb project in PATH (default: here) and migrate its database.

    \b
    Example:
      hamdb init demo && cd demo && hamdb info
    """
    from hamdb.config import load_project, write_default_config
    from hamdb.db.migrate import upgrade
    from hamdb.db.queries import mask_url

    root = Path(path).resolve()
    write_default_config(root)
    project = load_project(root, ctx.find_root().obj.db_option)
    project.store_path.mkdir(parents=True, exist_ok=True)
    revision = upgrade(project.database_url)
    if as_json:
        from hamdb.cli.options import echo_json

        echo_json(
            {"project": str(root), "database": mask_url(project.database_url), "revision": revision}
        )
    else:
        click.echo(
            f"initialised {root} (database {mask_url(project.database_url)}, schema {revision})"
        )
