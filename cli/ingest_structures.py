"""`hamdb ingest structures PATH...`: crystal structures into the database, deduplicated."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from hamdb.cli.options import echo_json, json_option, pass_project, workers_option
from hamdb.config import Project


@click.command("structures")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--strict", is_flag=True, help="Abort at the first bad file; write nothing.")
@click.option(
    "--no-dedup", is_flag=True, help="Skip the identity checks: every new source is a new row."
)
@click.option(
    "--batch-size",
    type=click.IntRange(1),
    default=500,
    show_default=True,
    help="Structures per transaction.",
)
@workers_option
@json_option
@pass_project
def command(
    project: Project,
    paths: tuple[str, ...],
    strict: bool,
    no_dedup: bool,
    batch_size: int,
    workers: int,
    as_json: bool,
) -> None:
    """Ingest CIF, POSCAR/CONTCAR, pymatgen JSON, extended XYZ and JSON-lines files, or folders
    and .zip/.tar.gz archives of them.

    A copy of a stored structure (rotated, translated, permuted, another cell) is not inserted
    again, only its source is recorded; a strained variant is a new structure in the same
    material group. Re-running on the same files adds nothing. Bad files are listed with the
    reason and the others go in; the exit code is 1 if any failed. With --strict the first
    bad file aborts the run and nothing is written. --workers 2 parses and analyses files in
    a second process while this one matches and writes (N: in N - 1 processes; worth it for
    thousands of files).

    \b
    Examples:
      hamdb ingest structures gnome_by_id.zip
      hamdb ingest structures --json POSCAR Bi2Se3.cif more/
    """
    from sqlalchemy.orm import Session

    from hamdb.db.engine import make_engine
    from hamdb.io.structure_ingest import ingest
    from hamdb.io.structures import iter_raw_files

    with (
        Session(make_engine(project.database_url), expire_on_commit=False) as session,
        _progress(enabled=not as_json and sys.stderr.isatty()) as progress,
    ):
        report = ingest(
            session,
            iter_raw_files(paths),
            dedup=not no_dedup,
            batch_size=batch_size,
            strict=strict,
            progress=progress,
            workers=workers,
        )
    if as_json:
        echo_json(report.as_dict())
    else:
        for failure in report.failures:
            click.echo(f"failed: {failure}", err=True)
        click.echo(report.summary())
    if report.failed:
        raise SystemExit(1)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A rich progress display on a terminal (count and rate), nothing otherwise."""
    if not enabled:
        yield None
        return
    from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        "[progress.description]{task.description}",
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("ingesting structures", total=None)
        yield lambda done: bar.update(task, completed=done)
