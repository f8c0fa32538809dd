"""`hamdb jobs status`: counts by state, throughput, oldest lease, recent failures."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project


@click.command("status")
@click.option("--model-version-id", type=int, default=None, help="Only this model version.")
@json_option
@pass_project
def command(project, model_version_id, as_json) -> None:  # type: ignore[no-untyped-def]
    """How far `hamdb predict --pending` has got, across every worker and host."""
    from hamdb.db.engine import make_engine, session_scope
    from hamdb.pipeline.claims import job_status

    with session_scope(make_engine(project.database_url)) as session:
        status = job_status(session, model_version_id)
    if as_json:
        echo_json(status.as_dict())
        return
    counts = status.counts
    click.echo(
        "jobs: " + ", ".join(f"{counts[k]} {k}" for k in ("pending", "claimed", "done", "failed"))
    )
    click.echo(
        f"throughput: {status.done_last_10_min} done in the last 10 min "
        f"({status.throughput_per_s:.2f} structures/s)"
    )
    if status.oldest_lease_expires_at is not None:
        click.echo(
            f"oldest lease expires {status.oldest_lease_expires_at.isoformat(timespec='seconds')}"
            f" ({status.expired_leases} expired, to be taken over); "
            f"workers: {', '.join(status.workers) or '-'}"
        )
    for structure_id, error in status.last_errors:
        click.echo(f"failed: structure {structure_id}: {error.splitlines()[0]}")
