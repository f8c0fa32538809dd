"""`hamdb predict --pending`: the option set and output of the queue mode of `hamdb predict`.

Kept apart from cmd_predict.py (single-structure mode) so that file only routes; the work is
hamdb.pipeline.workers.run.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from hamdb.cli.options import echo_json
from hamdb.config import Project
from hamdb.physics.orthogonal import PREDICTED_S_MIN


def run_pending(
    project: Project,
    model_spec: str,
    workers: int,
    batch: int,
    limit: int | None,
    screen: bool,
    lease_s: float,
    as_json: bool,
    s_min: float = PREDICTED_S_MIN,
) -> None:
    """Predict every structure lacking a prediction of the model version; print a summary."""
    from hamdb.pipeline.workers import WorkerOptions, WorkerStats, run

    options = WorkerOptions(
        model=model_spec,
        batch=batch,
        limit=limit,
        screen=screen,
        screen_s_min=s_min,
        lease_s=lease_s,
    )
    progress = None
    if not as_json and sys.stderr.isatty():

        def progress(stats: WorkerStats) -> None:
            click.echo(
                f"\r{stats.done} predicted, {stats.failed} failed, {stats.screened} screened",
                err=True,
                nl=False,
            )

    stats = run(project, options, workers=workers, on_batch=progress)
    if progress is not None:
        click.echo("", err=True)
    summary: dict[str, Any] = stats.as_dict()
    if as_json:
        echo_json(summary)
        return
    click.echo(
        f"{stats.done} predicted, {stats.failed} failed, {stats.retried} to retry, "
        f"{stats.screened} screened in {stats.wall_s:.1f} s "
        f"({summary['structures_per_s']} structures/s; {stats.created_jobs} new jobs)"
    )
    shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in summary["fraction"].items() if v)
    click.echo(f"time: {shares}")
    if stats.failed:
        click.echo("failed jobs and their reasons: hamdb jobs status", err=True)
