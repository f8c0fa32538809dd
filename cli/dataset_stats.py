"""`hamdb dataset stats`: DFT Hamiltonians per element, element pair and spin kind."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project


@click.command("stats")
@json_option
@pass_project
def command(project: Project, as_json: bool) -> None:
    """Count the stored DFT Hamiltonians: per spin kind, per element, per element pair, and
    the DFT runs per status.

    \b
    Example:
      hamdb dataset stats --json
    """
    from hamdb.dft.dataset import stats

    data = stats(project)
    if as_json:
        echo_json(data)
        return
    click.echo(f"structures with DFT Hamiltonians: {data['structures_with_dft']}")
    click.echo(
        "per spin: " + ", ".join(f"{k} {v}" for k, v in data["hamiltonians_per_spin"].items())
    )
    click.echo("runs: " + ", ".join(f"{k} {v}" for k, v in data["runs"].items()))
    click.echo("per element: " + ", ".join(f"{k} {v}" for k, v in data["per_element"].items()))
    click.echo("per pair: " + ", ".join(f"{k} {v}" for k, v in data["per_pair"].items()))
    click.echo("per n_sites: " + ", ".join(f"{k} {v}" for k, v in data["per_n_sites"].items()))
