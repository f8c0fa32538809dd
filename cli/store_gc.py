"""`hamdb store gc`: remove store files that no row references."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option(
    "--grace",
    "grace_s",
    type=click.FloatRange(0),
    default=3600.0,
    show_default=True,
    help="Spare unreferenced files younger than this many seconds (their row may be on its "
    "way from a running writer).",
)
@json_option
@pass_project
def command(project: Project, dry_run: bool, grace_s: float, as_json: bool) -> None:
    """Remove files no hamiltonians/model_versions row references, and stale temp files.

    A file any row references is never removed.
    """
    from hamdb.db.engine import make_engine, session_scope
    from hamdb.store.maintenance import gc_store
    from hamdb.store.store import HamiltonianStore

    with session_scope(make_engine(project.database_url)) as session:
        report = gc_store(
            session, HamiltonianStore(project.store_path), dry_run=dry_run, grace_s=grace_s
        )
    if as_json:
        echo_json({"store": str(project.store_path), **report.as_dict()})
        return
    verb = "would remove" if dry_run else "removed"
    for uri in report.removed + report.temp_removed:
        click.echo(f"{verb} {uri}")
    click.echo(
        f"{verb} {len(report.removed)} orphan files and {len(report.temp_removed)} temp files "
        f"({report.bytes_freed / 1e6:.1f} MB); {report.referenced} referenced, "
        f"{len(report.kept_young)} young orphans kept"
    )
