"""`hamdb ingest ...`: bring outside data (structures, Hamiltonians) into the project."""

from __future__ import annotations

import click

from hamdb.cli.main import LazyGroup


def _ingest() -> None:
    """Read structures or Hamiltonians from files into the project's database and store.

    \b
    Examples:
      hamdb ingest structures crystals/ gnome_by_id.zip Bi2Se3.cif
      hamdb ingest structures --strict --json POSCAR
    """


command = click.group("ingest", cls=LazyGroup, prefix="ingest_")(_ingest)
