"""`hamdb export ...`: hand stored data back to other tools."""

from __future__ import annotations

import click

from hamdb.cli.main import LazyGroup


def _export() -> None:
    """Write stored objects in other codes' formats.

    \b
    Examples:
      hamdb export hamiltonian 12 --format wannier90 -o out/model_hr.dat
      hamdb export hamiltonian 12 --format deeph -o deeph_folder/
    """


command = click.group("export", cls=LazyGroup, prefix="export_")(_export)
