"""`hamdb models list`: every registered model version with its aliases and key metrics."""

from __future__ import annotations

from typing import Any

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project

KEY_METRICS = ("h_mae_ev", "soc_k_mae_ev")
#: The gap metric a screen depends on, best first (hamdb.ml.evaluate): |gap_pred − gap_DFT|
#: over the test structures DFT calls insulators, in the overlap-filtered subspace the screen
#: solves predictions in, else with exact eigenvalues. `gap_mae_ev` is not shown: it
#: averages over metals too, where both gaps are 0, and so looks far better than it is.
INSULATOR_GAP_KEYS = ("insulator_gap_mae_filtered_ev", "insulator_gap_mae_ev")


def insulator_gap(metrics: dict[str, Any]) -> dict[str, Any]:
    """The version's insulator gap MAE: key, value (eV), insulators counted, and a note.

    value_ev is None when evaluate found no insulator among the test structures, or when the
    version was never evaluated; the note says which.
    """
    n_tested = metrics.get("n_structures")
    per_structure = metrics.get("per_structure") or []
    for key in INSULATOR_GAP_KEYS:
        if isinstance(metrics.get(key), int | float):
            n_insulators = sum(key in row for row in per_structure) if per_structure else None
            subspace = "overlap-filtered" if "filtered" in key else "exact eigenvalues"
            return {"key": key, "value_ev": float(metrics[key]), "n_insulators": n_insulators,
                    "n_structures": n_tested, "note": subspace}  # fmt: skip
    if n_tested is None:
        note = "not evaluated: hamdb evaluate NAME@VERSION"
    else:
        note = f"no insulator among its {n_tested} test structures"
    return {"key": None, "value_ev": None, "n_insulators": 0 if n_tested is not None else None,
            "n_structures": n_tested, "note": note}  # fmt: skip


def format_insulator_gap(gap: dict[str, Any]) -> str:
    """`insulator_gap_mae=296meV (overlap-filtered, 1 of 22 test structures)` or why none."""
    if gap["value_ev"] is None:
        return f"insulator_gap_mae=none ({gap['note']})"
    counted = ""
    if gap["n_insulators"] is not None and gap["n_structures"] is not None:
        counted = f", {gap['n_insulators']} of {gap['n_structures']} test structures"
    elif gap["n_structures"] is not None:
        counted = f", insulators of {gap['n_structures']} test structures"
    return f"insulator_gap_mae={1000 * gap['value_ev']:.0f}meV ({gap['note']}{counted})"


@click.command("list")
@json_option
@pass_project
def command(project: Project, as_json: bool) -> None:
    """List model versions (newest last per model) with their element and SOC errors and the
    band-gap error on the insulators of their test set (the one that matters for a screen).

    \b
    Example:
      hamdb models list
    """
    from sqlalchemy.orm import Session

    from hamdb.db.engine import make_engine
    from hamdb.ml.registry import list_versions, version_summary

    with Session(make_engine(project.database_url)) as session:
        rows = [version_summary(session, r) for r in list_versions(session)]
    for r in rows:
        r["insulator_gap"] = insulator_gap(r["metrics"])
    if as_json:
        for r in rows:
            r["metrics"] = {k: v for k, v in r["metrics"].items() if k != "per_structure"}
        echo_json(rows)
        return
    if not rows:
        click.echo(
            "no models registered (hamdb train nonsoc, or hamdb models import models/<name>)"
        )
        return
    for r in rows:
        metrics = " ".join(
            f"{k}={1000 * r['metrics'][k]:.3g}meV" for k in KEY_METRICS if k in r["metrics"]
        )
        aliases = f" [{', '.join(r['aliases'])}]" if r["aliases"] else ""
        click.echo(
            f"{r['name']}@{r['version']}{aliases}  parts={'+'.join(r['parts'])}  "
            f"basis={r['basis']}  {metrics}  {format_insulator_gap(r['insulator_gap'])}"
        )
