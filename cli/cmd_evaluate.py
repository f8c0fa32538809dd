"""`hamdb evaluate MODEL`: held-out metrics of a model version, written into the registry."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project


@click.command("evaluate")
@click.argument("model", default="production")
@click.option(
    "--data", "data_filter", help="Evaluate on this selection instead of the held-out split."
)
@json_option
@pass_project
def command(project: Project, model: str, data_filter: str | None, as_json: bool) -> None:
    """Evaluate MODEL (NAME@VERSION, NAME or alias) on its held-out structures.

    Reports H MAE raw and after the zero-point shift ΔE·S, SOC-correction MAE, SOC splitting
    error at high-symmetry k, occupied-band MAE and gap error (eV), and stores them as the
    version's metrics.

    \b
    Example:
      hamdb evaluate hamdb@2 --json
    """
    from sqlalchemy.orm import Session

    from hamdb.db.engine import make_engine
    from hamdb.ml.evaluate import evaluate_version

    with Session(make_engine(project.database_url), expire_on_commit=False) as session:
        row, metrics = evaluate_version(session, project.store_path, model, data_filter)
        session.commit()
        label = f"{row.model.name}@{row.version}"
    if as_json:
        echo_json({"model": label, "model_version_id": row.id, "metrics": metrics})
        return
    click.echo(f"{label} on {metrics['n_structures']} held-out structures:")
    for key, value in metrics.items():
        if isinstance(value, float):
            unit = " meV" if key.endswith("_ev") else ""
            shown = 1000 * value if key.endswith("_ev") else value
            click.echo(f"  {key:22s} {shown:10.3f}{unit}")
