"""Options and helpers shared by every command (defined once, reused)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
workers_option = click.option(
    "--workers", type=click.IntRange(1), default=1, show_default=True, help="Worker processes."
)


def split_elements(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    """Click callback: `--elements Bi,Se --elements Te` -> ("Bi", "Se", "Te")."""
    return tuple(el.strip() for value in values for el in value.split(",") if el.strip())


#: `--s-min`: the overlap filter of hamdb.physics.orthogonal, for commands that solve bands.
s_min_option = click.option(
    "--s-min",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Drop overlap directions with eigenvalue <= S_MIN * largest at each k (near-dependent "
    "basis, predicted H; the model card gives the value, 1e-2 for hamdb-small); 0 = exact.",
)


def _predicted_s_min() -> float:
    from hamdb.physics.orthogonal import PREDICTED_S_MIN

    return PREDICTED_S_MIN


#: `--s-min` for commands that screen *predicted* Hamiltonians: hamdb's filter for predictions by
#: default (resolved when the command runs, so `--help` imports no numpy).
predicted_s_min_option = click.option(
    "--s-min",
    type=click.FloatRange(0.0, 1.0),
    default=_predicted_s_min,
    show_default="1e-2, the filter models are evaluated with",
    help="Screen with overlap directions of eigenvalue <= S_MIN * largest dropped at each k "
    "(a predicted H in the near-dependent dzp basis needs it); 0 = exact eigenvalues.",
)


def pass_project(func: F) -> F:
    """Give the command the resolved `hamdb.config.Project` as its first argument.

    Use below the click decorators of the command: `@command ... @pass_project def f(project, ...)`.
    """

    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        state = click.get_current_context().find_root().obj
        return func(state.project(), *args, **kwargs)

    return inner  # type: ignore[return-value]


def echo_json(payload: Any) -> None:
    """Print one JSON document (numpy scalars and paths become plain values)."""
    click.echo(json.dumps(payload, indent=2, default=_plain))


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
