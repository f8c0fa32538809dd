"""`hamdb screen`: gap and Z2 for every stored SOC Hamiltonian that has none for these settings."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from hamdb.cli.cmd_topology import collect_settings, settings_options
from hamdb.cli.options import json_option, pass_project, workers_option


@click.command("screen")
@click.option(
    "--pending",
    is_flag=True,
    default=True,
    help="Only Hamiltonians without a result for the current settings (the default; resumable).",
)
@click.option(
    "--kind",
    type=click.Choice(["predicted", "dft"]),
    default="predicted",
    show_default=True,
    help="Which stored Hamiltonians to screen.",
)
@workers_option
@settings_options
@json_option
@pass_project
def command(project, pending: bool, kind: str, workers: int, as_json: bool, **kwargs) -> None:  # type: ignore[no-untyped-def]
    """Compute and store topology_results (WCC flow + parity cross-check).

    Each Hamiltonian's results are committed once; rerunning continues where it stopped.

    \b
    Examples:
      hamdb screen --pending
      hamdb screen --kind dft --workers 2 --json
    """
    from sqlalchemy.orm import Session

    from hamdb.cli.options import echo_json
    from hamdb.db.engine import make_engine
    from hamdb.store.store import HamiltonianStore
    from hamdb.topology.screening import screen_pending

    settings = collect_settings(kwargs)
    store = HamiltonianStore(project.store_path)
    with (
        Session(make_engine(project.database_url), expire_on_commit=False) as session,
        _progress(sys.stderr.isatty() and not as_json) as progress,
    ):
        counts = screen_pending(
            session, store, kind=kind, workers=workers, settings=settings, progress=progress
        )
    if as_json:
        echo_json(counts)
    else:
        click.echo(", ".join(f"{k} {v}" for k, v in counts.items()))


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on a terminal, nothing otherwise (CI, pipes, --json)."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("screening", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
