"""`hamdb bands FILE|ID`: band structure along the high-symmetry path, gap, Fermi level, plot."""

from __future__ import annotations

from pathlib import Path

import click

from hamdb.cli.options import json_option, s_min_option


@click.command("bands")
@click.argument("source")
@click.option(
    "--format", "fmt", default=None, help="File format (default: from the name), e.g. wannier90."
)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write a PNG here.")
@click.option(
    "--spacing",
    type=click.FloatRange(min=1e-4),
    default=0.025,
    show_default=True,
    help="k-point spacing along the path (1/Å).",
)
@click.option(
    "--window",
    type=(float, float),
    default=None,
    help="Energy window of the plot around E_F (eV), e.g. --window -3 3.",
)
@s_min_option
@json_option
@click.pass_context
def command(
    ctx: click.Context,
    source: str,
    fmt: str | None,
    plot: str | None,
    spacing: float,
    window: tuple[float, float] | None,
    s_min: float,
    as_json: bool,
) -> None:
    """Bands of the Hamiltonian in SOURCE (a file, or a hamiltonians row ID) along the
    seekpath high-symmetry path: gap, direct gap, Fermi level; --plot draws them.

    \b
    Examples:
      hamdb bands wannier90_hr.dat --plot bands.png
      hamdb bands Bi.HSX --format siesta --json
      hamdb bands 12 --plot h12.png
    """
    import numpy as np

    from hamdb.physics.bands import eigenvalues, kpath, plot_bands, summarize

    ham = _load(ctx, source, fmt)
    path = kpath(ham.structure, reference_distance=spacing)
    eigs = eigenvalues(ham, path.kpts, s_min=s_min)
    n_dropped = int(np.isnan(eigs).sum(axis=1).max(initial=0))
    summary = None
    if ham.n_electrons > 0:
        summary = summarize(ham, eigs)
    fermi = summary.fermi_level_ev if summary else ham.fermi_level_ev
    if plot:
        title = f"{ham.structure.composition.reduced_formula} ({ham.spin})"
        plot_bands(path, eigs, plot, fermi, title=title, window_ev=window)
    result = {
        "source": source,
        "n_states": ham.n_states,
        "spin": ham.spin,
        "n_kpoints": len(path.kpts),
        "labels": [label for _, label in path.labels],
        "n_occupied": summary.n_occupied if summary else None,
        "gap_ev": summary.gap_ev if summary else None,
        "direct_gap_ev": summary.direct_gap_ev if summary else None,
        "fermi_level_ev": fermi,
        "plot": plot,
        "n_dropped": n_dropped,
    }
    if as_json:
        from hamdb.cli.options import echo_json

        echo_json(result)
        return
    click.echo(f"{source}: {ham!r}")
    click.echo(f"  path            {' '.join(result['labels'])} ({len(path.kpts)} k-points)")
    if summary:
        click.echo(f"  occupied bands  {summary.n_occupied}")
        click.echo(f"  band gap        {summary.gap_ev:.4f} eV (along the path)")
        click.echo(f"  direct gap      {summary.direct_gap_ev:.4f} eV")
        click.echo(f"  Fermi level     {summary.fermi_level_ev:.4f} eV")
    else:
        click.echo("  no electron count: gap and Fermi level not computed")
    if n_dropped:
        click.echo(f"  overlap filter  {n_dropped} states dropped at worst k (--s-min)")
    if plot:
        click.echo(f"  plot            {plot}")


def _load(ctx: click.Context, source: str, fmt: str | None):  # type: ignore[no-untyped-def]
    """A Hamiltonian from a file, or from the project's database when SOURCE is a row ID."""
    from hamdb.errors import InputError

    if Path(source).exists():
        from hamdb.io.formats import read_hamiltonian

        return read_hamiltonian(source, fmt)
    if not source.isdigit():
        raise InputError(f"{source}: no such file (and not a hamiltonians row ID)")
    from hamdb.db.engine import make_engine, session_scope
    from hamdb.io.catalog import load_hamiltonian
    from hamdb.store.store import HamiltonianStore

    project = ctx.find_root().obj.project()
    with session_scope(make_engine(project.database_url)) as session:
        return load_hamiltonian(session, HamiltonianStore(project.store_path), int(source))
