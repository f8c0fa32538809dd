"""`hamdb info`: which database and store this project uses, its schema version, row counts."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project


@click.command("info")
@json_option
@pass_project
def command(project: Project, as_json: bool) -> None:
    """Show the project folder, database (password hidden), store, schema and row counts.

    \b
    Example:
      hamdb info --json
    """
    from hamdb.db.engine import make_engine
    from hamdb.db.migrate import current, head
    from hamdb.db.queries import mask_url, row_counts

    url = project.database_url
    revision, newest = current(url), head()
    counts = row_counts(make_engine(url)) if revision is not None else {}
    payload = {
        "project": str(project.root),
        "database": mask_url(url),
        "backend": "sqlite" if project.is_sqlite else "postgresql",
        "store": str(project.store_path),
        "store_exists": project.store_path.is_dir(),
        "schema": revision,
        "schema_head": newest,
        "up_to_date": revision == newest,
        "rows": counts,
    }
    if as_json:
        echo_json(payload)
        return
    if revision is None:
        schema = f"none (empty database: run hamdb db upgrade to reach {newest})"
    elif revision == newest:
        schema = f"{revision} (up to date)"
    else:
        schema = f"{revision} (head is {newest}: run hamdb db upgrade)"
    store = str(project.store_path) + ("" if project.store_path.is_dir() else " (missing)")
    click.echo(f"project   {project.root}")
    click.echo(f"database  {mask_url(url)}")
    click.echo(f"store     {store}")
    click.echo(f"schema    {schema}")
    if counts:
        click.echo("rows")
        width = max(len(name) for name in counts)
        for name, count in counts.items():
            click.echo(f"  {name.ljust(width)}  {count:>10,}")
