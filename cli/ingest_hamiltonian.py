"""`hamdb ingest hamiltonian PATH`: a Hamiltonian file into the store and the database."""

from __future__ import annotations

import json

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project

FORMATS = ("hamdb", "openmx", "deeph", "wannier90", "siesta", "tbmodels")


def parse_options(pairs: tuple[str, ...]) -> dict[str, object]:
    """KEY=VALUE reader options; VALUE is JSON when it parses as JSON, else a string."""
    from hamdb.errors import InputError

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


@click.command("hamiltonian")
@click.argument("path", type=click.Path(exists=True, path_type=str))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="File format (default: from the file name).")  # fmt: skip
@click.option("--structure", "structure_file", default=None,
              type=click.Path(exists=True, dir_okay=False),
              help="Structure file (POSCAR, CIF) for formats that lack one.")  # fmt: skip
@click.option("--kind", type=click.Choice(["dft", "predicted"]), default="dft", show_default=True)
@click.option("--method", default=None, help="Method label (default: import:<format>).")
@click.option("--model-version", "model_version_id", type=int, default=None,
              help="model_versions row id (required with --kind predicted).")  # fmt: skip
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Reader option as KEY=JSON-or-text (repeatable), "
                   "e.g. --option 'species=[\"In\",\"As\"]'.")  # fmt: skip
@json_option
@pass_project
def command(
    project: Project,
    path: str,
    fmt: str | None,
    structure_file: str | None,
    kind: str,
    method: str | None,
    model_version_id: int | None,
    options: tuple[str, ...],
    as_json: bool,
) -> None:
    """Read PATH, check it (shapes, finiteness, hermiticity), store its file, then add its row;
    the structure is matched against the database or added. Nothing is stored when any check
    fails.

    \b
    Examples:
      hamdb ingest hamiltonian wannier90_hr.dat --structure POSCAR
      hamdb ingest hamiltonian Bi.HSX --method siesta-szp-soc
      hamdb ingest hamiltonian HS.tar.gz --option 'valence_electrons={"Mo":14,"Te":16}'
      hamdb ingest hamiltonian InAs.hdf5 --option 'species=["In","As"]' --json
    """
    from sqlalchemy.exc import IntegrityError

    from hamdb.db.engine import make_engine, session_scope
    from hamdb.errors import InputError
    from hamdb.io.catalog import save_hamiltonian
    from hamdb.io.formats import guess_format, read_hamiltonian
    from hamdb.store.store import HamiltonianStore

    fmt = fmt or guess_format(path)
    reader_options = parse_options(options)
    if structure_file is not None:
        if fmt not in ("wannier90", "openmx"):
            raise InputError(f"{path}: format {fmt} carries its own structure; drop --structure")
        from pymatgen.core import Structure

        reader_options["structure"] = Structure.from_file(structure_file)
    ham = read_hamiltonian(path, fmt, **reader_options)
    method = method or f"import:{fmt}"
    store = HamiltonianStore(project.store_path)
    settings = {"file": str(path), "format": fmt,
                "options": {k: str(v) for k, v in reader_options.items()}}  # fmt: skip
    with session_scope(make_engine(project.database_url), immediate=True) as session:
        try:
            with session.begin_nested():
                row = save_hamiltonian(
                    session, store, ham, kind=kind, method=method,
                    model_version_id=model_version_id, settings=settings, source=str(path),
                )  # fmt: skip
        except IntegrityError:
            raise InputError(
                f"{path}: its structure already has a {kind} {ham.spin} Hamiltonian with method "
                f"{method!r}; give another --method"
            ) from None
        result = {
            "id": row.id, "structure_id": row.structure_id, "uri": row.uri, "sha256": row.sha256,
            "kind": kind, "method": method, "spin": ham.spin, "n_states": ham.n_states,
            "n_edges": ham.n_edges, "n_electrons": ham.n_electrons,
        }  # fmt: skip
    if as_json:
        echo_json(result)
        return
    click.echo(
        f"stored Hamiltonian {result['id']} (structure {result['structure_id']}, {ham.spin}, "
        f"{ham.n_states} states, {ham.n_edges} edges) as {result['uri']}"
    )
