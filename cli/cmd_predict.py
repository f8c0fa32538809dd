"""`hamdb predict STRUCTURE_FILE|ID`: predict and store the SOC Hamiltonian of one structure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hamdb.cli.options import echo_json, json_option, pass_project, predicted_s_min_option
from hamdb.config import Project


@click.command("predict")
@click.argument("target", required=False)
@click.option(
    "--model",
    "model_spec",
    default="production",
    show_default=True,
    help="NAME@VERSION, NAME, or an alias.",
)
@click.option("--pending", is_flag=True, help="Every structure without a prediction (queue).")
@click.option("--workers", type=click.IntRange(1), default=1, help="--pending: processes.")
@click.option(
    "--batch",
    type=click.IntRange(1),
    default=16,
    help="--pending: structures per claim, run through the network as one batch.",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="--pending: at most K.")
@click.option("--screen", is_flag=True, help="--pending: gap and Z2 of each batch too.")
@predicted_s_min_option
@click.option("--lease", type=click.FloatRange(5), default=120.0, help="--pending: lease (s).")
@json_option
@pass_project
def command(
    project: Project,
    target: str | None,
    model_spec: str,
    pending: bool,
    workers: int,
    batch: int,
    limit: int | None,
    screen: bool,
    s_min: float,
    lease: float,
    as_json: bool,
) -> None:
    """Predict the SOC Hamiltonian of TARGET (a structure file, or a structure id) and store it
    as a `predicted` Hamiltonian of the model version.

    \b
    Examples:
      hamdb predict Bi2Se3.cif
      hamdb predict 42 --model hamdb@3 --json
      hamdb predict --pending --screen --workers 4   # the queue; many hosts on PostgreSQL
    """
    if pending:
        from hamdb.cli.predict_pending import run_pending

        return run_pending(
            project, model_spec, workers, batch, limit, screen, lease, as_json, s_min
        )
    if target is None:
        raise click.UsageError("give a STRUCTURE_FILE or a structure ID, or --pending")
    result = predict_single(project, target, model_spec)
    if as_json:
        echo_json(result)
    else:
        click.echo(
            f"structure {result['structure_id']} ({result['formula']}): hamiltonian "
            f"{result['hamiltonian_id']} by {result['model']} ({result['n_states']} states, "
            f"{result['n_edges']} edges, {result['seconds']:.2f} s)"
        )


def load_target(session: Any, target: str) -> tuple[int, Any]:
    """(structure id, Structure) of a file (ingested if new) or of an existing id."""
    from pymatgen.core import Structure

    from hamdb.db.models import StructureRow
    from hamdb.errors import InputError

    path = Path(target)
    if not path.exists():
        if not target.isdigit():
            raise InputError(f"{target}: no such file, and not a structure id")
        row = session.get(StructureRow, int(target))
        if row is None:
            raise InputError(f"structure {target}: no such row (hamdb structures list)")
        return row.id, Structure.from_dict(row.structure_json)
    from hamdb.io.structure_ingest import find_or_add_structure
    from hamdb.io.structures import ReadFailure, read_path

    items = list(read_path(path))
    good = [item for item in items if not isinstance(item, ReadFailure)]
    if not good:
        raise InputError(str(items[0]) if items else f"{path}: no structure in the file")
    if len(good) > 1:
        raise InputError(f"{path}: holds {len(good)} structures; ingest them and predict by id")
    structure, source, source_id = good[0]
    structure_id, _ = find_or_add_structure(session, structure, source, source_id)
    row = session.get(StructureRow, structure_id)
    return structure_id, Structure.from_dict(row.structure_json)


def predict_single(project: Project, target: str, model_spec: str) -> dict[str, Any]:
    """Predict one structure with the model version and store the result (file, then row)."""
    import time

    from sqlalchemy.orm import Session

    from hamdb.db.engine import make_engine
    from hamdb.io.catalog import save_hamiltonian
    from hamdb.ml.inference import Predictor
    from hamdb.store.store import HamiltonianStore

    store = HamiltonianStore(project.store_path)
    with Session(make_engine(project.database_url), expire_on_commit=False) as session:
        predictor = Predictor.load(session, store, model_spec)
        structure_id, structure = load_target(session, target)
        start = time.perf_counter()
        (ham,) = predictor.predict([structure])
        seconds = time.perf_counter() - start
        row = save_hamiltonian(
            session,
            store,
            ham,
            structure_id=structure_id,
            kind="predicted",
            method=f"model:{predictor.spec}",
            model_version_id=predictor.model_version_id,
        )
        session.commit()
        return {
            "structure_id": structure_id,
            "formula": structure.composition.reduced_formula,
            "hamiltonian_id": row.id,
            "model": predictor.spec,
            "model_version_id": predictor.model_version_id,
            "spin": ham.spin,
            "n_states": ham.n_states,
            "n_edges": ham.n_edges,
            "seconds": seconds,
        }
