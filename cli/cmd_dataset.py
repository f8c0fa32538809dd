"""`hamdb dataset ...`: the starter training set of GPAW Hamiltonians."""

from __future__ import annotations

import click

from hamdb.cli.main import LazyGroup


def _dataset() -> None:
    """Generate strained/distorted prototype crystals and their DFT Hamiltonians.

    \b
    Examples:
      hamdb dataset build --n 200
      hamdb dataset stats --json
    """


command = click.group("dataset", cls=LazyGroup, prefix="dataset_")(_dataset)
