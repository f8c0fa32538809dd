"""`hamdb export candidates`: the screen's candidates as CSV, JSON, Parquet or OPTIMADE lines."""

from __future__ import annotations

from pathlib import Path

import click

from hamdb.cli.options import pass_project


@click.command("candidates")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "parquet", "optimade"]),
    default="optimade",
    show_default=True,
    help="optimade: JSON lines of OPTIMADE structures with _hamdb_z2, _hamdb_gap_ev.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), required=True, help="File.")
@click.option("--min-gap", type=float, default=None, help="Smallest band gap in eV.")
@click.option("--z2", type=click.Choice(["strong", "weak", "2d"]), default=None)
@click.option("--elements", default="", help="Comma-separated elements all present.")
@click.option("--all", "show_all", is_flag=True, help="Every screened prediction, trivial too.")
@pass_project
def command(project, fmt, output, min_gap, z2, elements, show_all) -> None:  # type: ignore[no-untyped-def]
    """Write candidates (the `candidates` view) to a file to serve or share.

    \b
    Examples:
      hamdb export candidates -o candidates.jsonl              # OPTIMADE-style JSON lines
      hamdb export candidates --format parquet -o cands.parquet --min-gap 0.05
    """
    from hamdb.db.engine import make_engine, session_scope
    from hamdb.pipeline.candidates import candidates_query, export, fetch

    query = candidates_query(
        min_gap_ev=min_gap,
        z2=z2,
        elements=[e for e in elements.split(",") if e.strip()],
        only_candidates=not show_all,
    )
    with session_scope(make_engine(project.database_url)) as session:
        rows = fetch(session, query)
        export(session, rows, fmt, Path(output))
    click.echo(f"wrote {len(rows)} candidates to {output} ({fmt})")
