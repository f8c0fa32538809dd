"""`hamdb db downgrade REVISION`: migrate the database down (drops columns and tables)."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project


@click.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_project
def command(project: Project, revision: str, yes: bool, as_json: bool) -> None:
    """Migrate the database down to REVISION ('base' removes every hamdb table).

    Data in dropped tables and columns is lost, so this asks first unless --yes.

    \b
    Example:
      hamdb db downgrade base --yes
    """
    from hamdb.db.migrate import current, downgrade
    from hamdb.db.queries import mask_url

    url = project.database_url
    before = current(url)
    if not yes:
        click.confirm(
            f"Downgrade {mask_url(url)} from {before} to {revision}? Dropped data is lost",
            abort=True,
        )
    after = downgrade(url, revision)
    if as_json:
        echo_json({"database": mask_url(url), "from": before, "to": after})
    else:
        click.echo(f"{mask_url(url)}: schema {before or 'empty'} -> {after or 'empty'}")
