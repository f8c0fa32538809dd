"""`hamdb jobs retry --failed`: put failed prediction jobs back in the queue."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project


@click.command("retry")
@click.option("--failed", "failed", is_flag=True, required=True, help="Retry failed jobs.")
@click.option("--model-version-id", type=int, default=None, help="Only this model version.")
@json_option
@pass_project
def command(project, failed, model_version_id, as_json) -> None:  # type: ignore[no-untyped-def]
    """Failed jobs become pending with a fresh attempt count (e.g. after a model fix)."""
    from hamdb.db.engine import make_engine, session_scope
    from hamdb.pipeline.claims import retry_failed, writer_lock

    engine = make_engine(project.database_url)
    with writer_lock(project.database_url, "hamdb jobs retry"), session_scope(engine) as session:
        n = retry_failed(session, model_version_id)
    if as_json:
        echo_json({"retried": n})
    else:
        click.echo(f"{n} failed job{'s' if n != 1 else ''} pending again")
