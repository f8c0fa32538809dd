"""`hamdb structures ...`: look at the crystal structures in the database."""

from __future__ import annotations

import click

from hamdb.cli.main import LazyGroup


def _structures() -> None:
    """List and filter the structures of the project.

    \b
    Examples:
      hamdb structures list --elements Bi,Se --max-sites 10
      hamdb structures list --formula Bi2Se3 --spacegroup 166 --json
    """


command = click.group("structures", cls=LazyGroup, prefix="structures_")(_structures)
