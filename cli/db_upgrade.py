"""`hamdb db upgrade [REVISION]`: migrate the database up (default: to the newest schema)."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project


@click.command("upgrade")
@click.argument("revision", default="head")
@json_option
@pass_project
def command(project: Project, revision: str, as_json: bool) -> None:
    """Migrate the database up to REVISION (default: head, the newest this hamdb knows).

    Safe to run again: a database already at REVISION is left as it is.
    """
    from hamdb.db.migrate import current, upgrade
    from hamdb.db.queries import mask_url

    url = project.database_url
    before = current(url)
    after = upgrade(url, revision)
    if as_json:
        echo_json({"database": mask_url(url), "from": before, "to": after})
    elif before == after:
        click.echo(f"{mask_url(url)}: already at schema {after}")
    else:
        click.echo(f"{mask_url(url)}: schema {before or 'empty'} -> {after}")
