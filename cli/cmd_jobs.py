"""`hamdb jobs`: the prediction job queue (status, retry)."""

from __future__ import annotations

import click

from hamdb.cli.main import LazyGroup


def _jobs() -> None:
    """Inspect and manage prediction jobs (`hamdb predict --pending` works through them).

    \b
    Examples:
      hamdb jobs status
      hamdb jobs retry --failed
    """


command = click.group("jobs", cls=LazyGroup, prefix="jobs_")(_jobs)
