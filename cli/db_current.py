"""`hamdb db current`: the schema version of the database and the newest one hamdb knows."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project


@click.command("current")
@json_option
@pass_project
def command(project: Project, as_json: bool) -> None:
    """Print the database's schema revision and whether it is up to date.

    Exits 1 when the database needs `hamdb db upgrade`.
    """
    from hamdb.db.migrate import current, head
    from hamdb.db.queries import mask_url

    url = project.database_url
    revision, newest = current(url), head()
    if as_json:
        echo_json(
            {
                "database": mask_url(url),
                "current": revision,
                "head": newest,
                "up_to_date": revision == newest,
            }
        )
    else:
        state = (
            "up to date" if revision == newest else f"behind head {newest}: run hamdb db upgrade"
        )
        click.echo(f"{mask_url(url)}: schema {revision or 'empty'} ({state})")
    if revision != newest:
        raise SystemExit(1)
