"""`hamdb store ...`: the HDF5 Hamiltonian store (verify hashes, remove orphan files)."""

from __future__ import annotations

import click

from hamdb.cli.main import LazyGroup


def _store() -> None:
    """Check and clean the content-addressed HDF5 store of the project.

    \b
    Examples:
      hamdb store verify            # re-hash every file a row references
      hamdb store gc --dry-run      # list files no row references
      hamdb store gc --grace 0      # remove them, however young
    """


command = click.group("store", cls=LazyGroup, prefix="store_")(_store)
