"""`hamdb export hamiltonian ID --format F -o OUT`: a stored Hamiltonian as a foreign file."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project
from hamdb.config import Project

FORMATS = ("hamdb", "openmx", "deeph", "wannier90", "siesta", "tbmodels")


@click.command("hamiltonian")
@click.argument("hamiltonian_id", type=int)
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True)
@click.option("-o", "--output", type=click.Path(path_type=str), required=True,
              help="File (a folder for deeph) to write.")  # fmt: skip
@click.option("--verify", is_flag=True, help="Re-hash the stored file before exporting.")
@json_option
@pass_project
def command(
    project: Project, hamiltonian_id: int, fmt: str, output: str, verify: bool, as_json: bool
) -> None:
    """Write Hamiltonian HAMILTONIAN_ID (a hamiltonians row) in FORMAT: hamdb .h5, wannier90
    (seedname_hr.dat + seedname.win), deeph (folder), openmx (HamGNN graph_data.npz,
    spinless), siesta (.HSX), tbmodels (.hdf5).

    \b
    Examples:
      hamdb export hamiltonian 12 --format wannier90 -o model_hr.dat
      hamdb export hamiltonian 12 --format deeph -o deeph/12
    """
    from hamdb.db.engine import make_engine, session_scope
    from hamdb.io.catalog import load_hamiltonian
    from hamdb.io.formats import write_hamiltonian
    from hamdb.store.store import HamiltonianStore

    with session_scope(make_engine(project.database_url)) as session:
        ham = load_hamiltonian(
            session, HamiltonianStore(project.store_path), hamiltonian_id, verify=verify
        )
    written = write_hamiltonian(ham, output, fmt)
    if as_json:
        echo_json({"id": hamiltonian_id, "format": fmt, "path": str(written)})
        return
    click.echo(f"wrote Hamiltonian {hamiltonian_id} as {fmt}: {written}")
