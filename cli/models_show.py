"""`hamdb models show SPEC`: one version in full (config, training data, metrics)."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project


@click.command("show")
@click.argument("spec")
@json_option
@pass_project
def command(project: Project, spec: str, as_json: bool) -> None:
    """Show model version SPEC (NAME@VERSION, NAME@ALIAS, NAME or an alias)."""
    from sqlalchemy.orm import Session

    from hamdb.db.engine import make_engine
    from hamdb.ml.registry import resolve_version, version_summary

    with Session(make_engine(project.database_url)) as session:
        info = version_summary(session, resolve_version(session, spec), full=True)
    if as_json:
        echo_json(info)
        return
    click.echo(
        f"{info['name']}@{info['version']} (id {info['id']})  "
        f"aliases: {', '.join(info['aliases']) or '-'}"
    )
    click.echo(
        f"  parts: {', '.join(info['parts'])}   basis: {info['basis']}   "
        f"elements: {' '.join(info['elements'])}"
    )
    click.echo(f"  weights: {info['weights_uri']} (sha256 {info['weights_sha256'][:16]}…)")
    for key, value in sorted(info["metrics"].items()):
        if isinstance(value, float):
            click.echo(f"  {key:24s} {value:.6g}")
    for part, data in (info["training_data"] or {}).items():
        if isinstance(data, dict) and "split" in data:
            split = data["split"]
            click.echo(
                f"  {part}: {len(split['train'])} train / {len(split['val'])} val / "
                f"{len(split['test'])} test structures, {data.get('epochs_run')} epochs"
            )
