"""`hamdb report`: precision and recall of the Z2 screen against DFT, with the confusion table."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project


@click.command("report")
@click.option("--model-version-id", type=int, default=None, help="Only this model version.")
@json_option
@pass_project
def command(project, model_version_id, as_json) -> None:  # type: ignore[no-untyped-def]
    """How far the screen can be believed: every structure with both a predicted and a DFT
    topology result, the screen's verdict against DFT's.

    \b
    Example:
      hamdb verify --top 5 && hamdb report
    """
    from hamdb.db.engine import make_engine, session_scope
    from hamdb.pipeline.trust import screen_report

    with session_scope(make_engine(project.database_url)) as session:
        report = screen_report(session, model_version_id)
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(report.format())
