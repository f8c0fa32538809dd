"""`hamdb models export SPEC FOLDER`: write a version as a standalone model folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project


@click.command("export")
@click.argument("spec")
@click.argument("folder", type=click.Path(file_okay=False))
@json_option
@pass_project
def command(project: Project, spec: str, folder: str, as_json: bool) -> None:
    """Write version SPEC to FOLDER/model.pt (+ card.json with its metrics and data), the
    layout of the model shipped in models/ and read by `hamdb models import`.

    \b
    Example:
      hamdb models export hamdb@3 models/hamdb-small
    """
    from sqlalchemy.orm import Session

    from hamdb.db.engine import make_engine
    from hamdb.ml.bundle import ModelBundle
    from hamdb.ml.inference import BUNDLE_FILE
    from hamdb.ml.registry import resolve_version, verify_weights

    with Session(make_engine(project.database_url)) as session:
        row = resolve_version(session, spec)
        bundle = ModelBundle.load(verify_weights(project.store_path, row))
        metrics = {k: v for k, v in (row.metrics or {}).items() if k != "per_structure"}
        card = {
            "source": f"{row.model.name}@{row.version}",
            "metrics": metrics,
            "training_data": row.training_data or {},
            "parts": sorted(bundle.nets),
            "basis": bundle.basis.as_dict(),
        }
    bundle.meta = {**bundle.meta, "metrics": metrics, "source": card["source"]}
    out = Path(folder)
    sha = bundle.save(out / BUNDLE_FILE)
    card["sha256"] = sha
    (out / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    if as_json:
        echo_json({"folder": str(out), "sha256": sha, "source": card["source"]})
    else:
        click.echo(f"wrote {out / BUNDLE_FILE} (sha256 {sha[:12]}…) from {card['source']}")
