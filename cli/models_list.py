"""`hamdb models list`: every registered model version with its aliases and key metrics."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project

KEY_METRICS = ("h_mae_ev", "soc_k_mae_ev", "gap_mae_ev")


@click.command("list")
@json_option
@pass_project
def command(project: Project, as_json: bool) -> None:
    """List model versions (newest last per model)."""
    from sqlalchemy.orm import Session

    from hamdb.db.engine import make_engine
    from hamdb.ml.registry import list_versions, version_summary

    with Session(make_engine(project.database_url)) as session:
        rows = [version_summary(session, r) for r in list_versions(session)]
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
            f"{k}={1000 * r['metrics'][k]:.1f}meV" for k in KEY_METRICS if k in r["metrics"]
        )
        aliases = f" [{', '.join(r['aliases'])}]" if r["aliases"] else ""
        click.echo(
            f"{r['name']}@{r['version']}{aliases}  parts={'+'.join(r['parts'])}  "
            f"basis={r['basis']}  {metrics}"
        )
