"""`hamdb hamiltonian ...`: look at stored or file Hamiltonians."""

from __future__ import annotations

import click

from hamdb.cli.main import LazyGroup


def _hamiltonian() -> None:
    """Inspect Hamiltonians: by hamiltonians row ID or from a file of any supported format.

    \b
    Examples:
      hamdb hamiltonian show 12
      hamdb hamiltonian show wannier90_hr.dat --json
    """


command = click.group("hamiltonian", cls=LazyGroup, prefix="hamiltonian_")(_hamiltonian)
