"""`hamdb verify --top N`: reference DFT and its Z2 for the most promising unverified candidates."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project


@click.command("verify")
@click.option("--top", type=click.IntRange(1), default=1, show_default=True,
              help="How many candidates to check.")  # fmt: skip
@click.option("--model-version-id", type=int, default=None, help="Only this model version.")
@json_option
@pass_project
def command(project, top, model_version_id, as_json) -> None:  # type: ignore[no-untyped-def]
    """Run GPAW (LCAO + SOC) on the N candidates with the largest gap beyond their uncertainty
    that have no DFT check yet, compute Z2 from the DFT Hamiltonian, and record agreement.

    \b
    Example:
      hamdb verify --top 3 && hamdb candidates --format table
    """
    from hamdb.pipeline.candidates import format_table
    from hamdb.pipeline.claims import writer_lock
    from hamdb.pipeline.trust import verify_top

    with writer_lock(project.database_url, "hamdb verify"):
        rows = verify_top(project, top, model_version_id=model_version_id)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no unverified candidates")
        return
    columns = ("structure_id", "formula", "z2_class", "gap_ev", "uncertainty_ev",
               "dft_z2_class", "dft_gap_ev", "dft_agrees")  # fmt: skip
    click.echo(format_table(rows, columns))
    for row in rows:
        if row.get("dft_error"):
            click.echo(f"structure {row['structure_id']}: DFT failed: {row['dft_error']}", err=True)
