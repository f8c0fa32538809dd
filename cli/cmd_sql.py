"""`hamdb sql "SELECT ..."`: run one read-only SQL query and print a table, CSV or JSON."""

from __future__ import annotations

import sys

import click

from hamdb.cli.options import pass_project
from hamdb.config import Project


@click.command("sql")
@click.argument("query")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    help="Stop the query after this many seconds.",
)
@pass_project
def command(project: Project, query: str, fmt: str, as_json: bool, timeout_s: float) -> None:
    """Run QUERY (one SELECT / WITH / VALUES / EXPLAIN ...) on the project's database.

    The query runs on a connection that cannot write: a read-only transaction on
    PostgreSQL, a read-only file connection on SQLite. Pass "-" to read QUERY from stdin.

    \b
    Examples:
      hamdb sql "SELECT reduced_formula, n_sites FROM structures ORDER BY n_sites LIMIT 5"
      hamdb sql --format csv "SELECT * FROM structures" > structures.csv
      echo "SELECT count(*) AS n FROM hamiltonians" | hamdb sql --json -
    """
    from hamdb.cli.render import render
    from hamdb.db.readonly import run_readonly

    if query == "-":
        query = sys.stdin.read()
    result = run_readonly(project.database_url, query, timeout_s=timeout_s)
    click.echo(render(result.columns, result.rows, "json" if as_json else fmt), nl=False)
    if not as_json and fmt == "table":
        click.echo(f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})", err=True)
