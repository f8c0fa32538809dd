"""`hamdb hamiltonian show ID|FILE`: what a Hamiltonian holds, its hermiticity and gap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hamdb.cli.options import echo_json, json_option

FORMATS = ("hamdb", "openmx", "deeph", "wannier90", "siesta", "tbmodels")
SHOWN = ("formula", "basis", "shells", "spin", "n_orbitals", "n_states", "n_edges", "overlap",
         "n_electrons", "fermi_level_ev", "hermiticity_error_ev", "gap_ev", "direct_gap_ev",
         "gap_mesh", "origin", "kind", "method", "uri")  # fmt: skip


@click.command("show")
@click.argument("source")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="File format (default: from the file name).")  # fmt: skip
@click.option("--mesh", type=click.IntRange(1), default=None,
              help="k-points per periodic direction for the gap "
                   "(default: about 200 k-points in all).")  # fmt: skip
@json_option
@click.pass_context
def command(
    ctx: click.Context, source: str, fmt: str | None, mesh: int | None, as_json: bool
) -> None:
    """Summary of the Hamiltonian in SOURCE (a file, or a hamiltonians row ID): structure,
    basis, orbitals per element, spin kind, edges, overlap, electrons, hermiticity error and
    the band gap on a Γ-centred mesh (when the electron count is known).

    \b
    Examples:
      hamdb hamiltonian show 3
      hamdb hamiltonian show Bi.HSX --json
    """
    ham, row = _load(ctx, source, fmt)
    summary = summarize(ham, mesh)
    if row is not None:
        summary.update(id=row.id, structure_id=row.structure_id, kind=row.kind,
                       method=row.method, uri=row.uri)  # fmt: skip
    summary["source"] = source
    if as_json:
        echo_json(summary)
        return
    click.echo(f"{source}: {ham!r}")
    for key in SHOWN:
        if key in summary:
            click.echo(f"  {key:<22}{summary[key]}")


def summarize(ham: Any, mesh: int | None) -> dict[str, Any]:
    """The fields `show` prints: sizes, hermiticity error (eV), gap on a mesh (eV)."""
    import numpy as np

    from hamdb.physics.bands import band_gap, eigenvalues, kmesh, n_occupied
    from hamdb.physics.checks import hermiticity_error

    out: dict[str, Any] = {
        "formula": ham.structure.composition.reduced_formula,
        "basis": ham.basis.name,
        "shells": {el: list(ham.basis.shell_ls(el)) for el in sorted(set(ham.species))},
        "spin": ham.spin,
        "n_orbitals": ham.n_orbitals,
        "n_states": ham.n_states,
        "n_edges": ham.n_edges,
        "overlap": ham.s is not None,
        "n_electrons": ham.n_electrons,
        "fermi_level_ev": ham.fermi_level_ev,
        "hermiticity_error_ev": hermiticity_error(ham),
        "origin": ham.origin,
        "gap_ev": None,
        "direct_gap_ev": None,
    }
    if ham.n_electrons > 0:
        periodic = np.abs(ham.edges[:, 2:]).max(axis=0) > 0
        n = mesh or max(2, round(200 ** (1 / max(1, int(periodic.sum())))))
        grid = tuple(n if p else 1 for p in periodic)
        eigs = eigenvalues(ham, kmesh(grid))  # type: ignore[arg-type]
        gap, direct = band_gap(eigs, n_occupied(ham))
        out["gap_ev"], out["direct_gap_ev"] = float(gap), float(direct)
        out["gap_mesh"] = list(grid)
    return out


def _load(ctx: click.Context, source: str, fmt: str | None) -> tuple[Any, Any]:
    """(Hamiltonian, row or None) from a file or a hamiltonians row ID."""
    from hamdb.errors import InputError

    if Path(source).exists():
        from hamdb.io.formats import read_hamiltonian

        return read_hamiltonian(source, fmt), None
    if not source.isdigit():
        raise InputError(f"{source}: no such file (and not a hamiltonians row ID)")
    from hamdb.db.engine import make_engine, session_scope
    from hamdb.db.models import HamiltonianRow
    from hamdb.io.catalog import load_hamiltonian
    from hamdb.store.store import HamiltonianStore

    project = ctx.find_root().obj.project()
    with session_scope(make_engine(project.database_url)) as session:
        ham = load_hamiltonian(session, HamiltonianStore(project.store_path), int(source))
        return ham, session.get(HamiltonianRow, int(source))
