"""`hamdb dft ...`: reference DFT Hamiltonians (GPAW LCAO + spin-orbit) for stored structures."""

from __future__ import annotations

import click

from hamdb.cli.main import LazyGroup


def _dft() -> None:
    """Compute GPAW LCAO (PBE, dzp) Hamiltonians, non-SOC and SOC, for structures in the database.

    \b
    Examples:
      hamdb dft run 1 2 3 --check
      hamdb dft run --pending --workers 2
      hamdb dft run --pending --elements Bi,Se --max-sites 5
    """


command = click.group("dft", cls=LazyGroup, prefix="dft_")(_dft)
