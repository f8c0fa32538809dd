"""`hamdb models ...`: the model registry (versions, aliases, the shipped model)."""

from __future__ import annotations

import click

from hamdb.cli.main import LazyGroup


def _models() -> None:
    """List, inspect, alias and import trained models.

    \b
    Examples:
      hamdb models list
      hamdb models show hamdb@2
      hamdb models alias hamdb 2 production
      hamdb models import models/hamdb-small
    """


command = click.group("models", cls=LazyGroup, prefix="models_")(_models)
