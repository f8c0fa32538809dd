"""`hamdb train nonsoc|soc|overlap`: train one part of a model and register the new version."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project


@click.command("train")
@click.argument("part", type=click.Choice(["nonsoc", "soc", "overlap"]))
@click.option(
    "--data",
    "data_filter",
    help="Select training data: elements=Bi,Se formula=X method=M ids=1,2 limit=N.",
)
@click.option(
    "--epochs", type=click.IntRange(1), help="Epochs (default 300, or the config file's)."
)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML/JSON with [train] (TrainConfig) and [model] (ModelConfig, preset=small|large).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed: same seed, same weights."
)
@click.option("--name", default="hamdb", show_default=True, help="Model name in the registry.")
@click.option("--threads", type=click.IntRange(1), help="CPU threads for torch (default: torch's).")
@json_option
@pass_project
def command(
    project: Project,
    part: str,
    data_filter: str | None,
    epochs: int | None,
    device: str,
    config_file: str | None,
    seed: int,
    name: str,
    threads: int | None,
    as_json: bool,
) -> None:
    """Train PART of model NAME on the project's DFT Hamiltonians; register a new version.

    Train 'nonsoc' first (spinless H), then 'soc' (the SOC correction, delta learning) and,
    where the exact overlap is unavailable at prediction, 'overlap'. The split is by material
    group; checkpoints let a killed run resume when started again with the same options.

    \b
    Examples:
      hamdb train nonsoc --epochs 200 --seed 1
      hamdb train soc --data elements=Bi,Se,Te
      hamdb models alias hamdb 3 production
    """
    import torch
    from sqlalchemy.orm import Session

    from hamdb.db.engine import make_engine
    from hamdb.ml.train import progress_printer
    from hamdb.ml.training_run import read_config_file, train_part

    if threads:
        torch.set_num_threads(threads)
    config = read_config_file(config_file)
    total = epochs or config.get("train", {}).get("epochs", 300)
    update, stop = progress_printer(total) if not as_json else ((lambda e, r: None), (lambda: None))
    with Session(make_engine(project.database_url), expire_on_commit=False) as session:
        try:
            row, history = train_part(
                session,
                project.store_path,
                part,
                name=name,
                data_filter=data_filter,
                epochs=epochs,
                device=device,
                seed=seed,
                config=config,
                on_epoch=update,
            )
        finally:
            stop()
        session.commit()
        summary = {
            "model": name,
            "version": row.version,
            "model_version_id": row.id,
            "part": part,
            "epochs_run": len(history.epochs),
            "best_epoch": history.best_epoch,
            "stopped_early": history.stopped_early,
            "best_val": {k: v for k, v in row.metrics.items() if k.startswith(part)},
        }
    if as_json:
        echo_json(summary)
    else:
        vals = " ".join(f"{k}={1000 * v:.2f} meV" for k, v in summary["best_val"].items())
        click.echo(
            f"registered {name}@{row.version} ({part}; best epoch {history.best_epoch}: {vals})"
        )
