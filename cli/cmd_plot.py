"""`hamdb plot`: figures (`hamdb plot wilson` draws Wannier-charge-centre flow)."""

from __future__ import annotations

import click

from hamdb.cli.main import LazyGroup


def _plot() -> None:
    """Draw figures of stored or file Hamiltonians."""


command = click.group("plot", cls=LazyGroup, prefix="plot_")(_plot)
