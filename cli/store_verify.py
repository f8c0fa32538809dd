"""`hamdb store verify`: re-hash every store file a row references against that row."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project


@click.command("verify")
@json_option
@pass_project
def command(project: Project, as_json: bool) -> None:
    """Re-hash every file referenced by hamiltonians (and model weights kept in the store).

    Reports missing files and files whose arrays do not hash to the recorded sha256; exits 1
    if there is any.
    """
    from hamdb.db.engine import make_engine, session_scope
    from hamdb.store.maintenance import verify_store
    from hamdb.store.store import HamiltonianStore

    with session_scope(make_engine(project.database_url)) as session:
        report = verify_store(session, HamiltonianStore(project.store_path))
    if as_json:
        echo_json({"store": str(project.store_path), **report.as_dict()})
    else:
        for problem in report.problems:
            click.echo(str(problem), err=True)
        state = "ok" if report.ok else f"{len(report.problems)} problems"
        click.echo(
            f"{project.store_path}: {report.files_checked} files for {report.rows_checked} rows "
            f"verified, {state}"
        )
    if not report.ok:
        raise SystemExit(1)
