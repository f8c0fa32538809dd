"""`hamdb candidates`: list screened topological-insulator candidates (the `candidates` view)."""

from __future__ import annotations

from pathlib import Path

import click

from hamdb.cli.options import json_option, pass_project, split_elements


@click.command("candidates")
@click.option("--min-gap", type=float, default=None, help="Smallest band gap in eV, e.g. 0.05.")
@click.option(
    "--z2", type=click.Choice(["strong", "weak", "2d"]), default=None, help="Z2 class to keep."
)
@click.option(
    "--elements",
    multiple=True,
    callback=split_elements,
    help="Candidates containing all of these elements: --elements Bi,Se (or repeat the option).",
)
@click.option("--unverified", is_flag=True, help="Only candidates without a DFT check yet.")
@click.option("--all", "show_all", is_flag=True, help="Every screened prediction, trivial too.")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many rows.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet", "optimade"]),
    default="table",
    show_default=True,
    help="optimade: OPTIMADE-style JSON lines with _hamdb_z2 / _hamdb_gap_ev.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write here.")
@json_option
@pass_project
def command(
    project, min_gap, z2, elements, unverified, show_all, limit, fmt, output, as_json
) -> None:  # type: ignore[no-untyped-def]
    """Predicted SOC Hamiltonians with a gap and a non-trivial Z2, largest gap first.

    \b
    Examples:
      hamdb candidates --min-gap 0.05 --z2 strong
      hamdb candidates --elements Bi,Se --format csv -o bise.csv
      hamdb candidates --elements Bi --elements Te --z2 strong
      hamdb candidates --format optimade -o candidates.jsonl
      hamdb sql "SELECT formula, gap_ev FROM candidates WHERE is_candidate = 1"
    """
    from hamdb.db.engine import make_engine, session_scope
    from hamdb.pipeline.candidates import candidates_query, export, fetch

    query = candidates_query(
        min_gap_ev=min_gap,
        z2=z2,
        elements=elements,
        only_candidates=not show_all,
        unverified=unverified,
        limit=limit,
    )
    with session_scope(make_engine(project.database_url)) as session:
        rows = fetch(session, query)
        text = export(session, rows, "json" if as_json else fmt, Path(output) if output else None)
    if text is not None:
        click.echo(text, nl=False)
    elif output:
        click.echo(f"wrote {len(rows)} candidates to {output}", err=True)
