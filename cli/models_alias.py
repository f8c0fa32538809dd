"""`hamdb models alias NAME VERSION ALIAS`: point an alias (e.g. production) at a version."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project


@click.command("alias")
@click.argument("name")
@click.argument("version", type=click.IntRange(1))
@click.argument("alias")
@json_option
@pass_project
def command(project: Project, name: str, version: int, alias: str, as_json: bool) -> None:
    """Point ALIAS of model NAME at VERSION (moving it if it exists).

    \b
    Example:
      hamdb models alias hamdb 3 production
    """
    from sqlalchemy.orm import Session

    from hamdb.db.engine import make_engine
    from hamdb.ml.registry import set_alias

    with Session(make_engine(project.database_url)) as session:
        row = set_alias(session, name, version, alias)
        session.commit()
        version_id = row.version_id
    if as_json:
        echo_json(
            {"name": name, "version": version, "alias": alias, "model_version_id": version_id}
        )
    else:
        click.echo(f"{name}@{alias} -> version {version}")
