"""`hamdb plot wilson ID|FILE out.png`: WCC flow of each time-reversal-invariant plane."""

from __future__ import annotations

from pathlib import Path

import click

from hamdb.cli.options import json_option


@click.command("wilson")
@click.argument("source")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", default=None, help="File format when SOURCE is a file.")
@click.option("--occupied", type=click.IntRange(1), default=None, help="Occupied bands.")
@click.option("--dim", type=click.Choice(["2", "3"]), default=None, help="Force 2D or 3D.")
@json_option
@click.pass_context
def command(
    ctx: click.Context,
    source: str,
    out: str,
    fmt: str | None,
    occupied: int | None,
    dim: str | None,
    as_json: bool,
) -> None:
    """Plot the Wannier-charge-centre flow per plane (as Z2Pack draws it) to OUT.

    SOURCE is a Hamiltonian id of the project database or a Hamiltonian file.

    \b
    Examples:
      hamdb plot wilson 12 wcc.png
      hamdb plot wilson Bi.HSX wcc.png
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hamdb.cli.options import echo_json
    from hamdb.topology import analyse

    ham = _load(ctx, source, fmt)
    report = analyse(ham, occupied=occupied, dim=int(dim) if dim else None, methods=("wcc",))
    planes = report.planes
    if not planes:
        raise click.ClickException(f"{source}: no WCC flow ({report.error})")
    rows, cols = (1, 1) if len(planes) == 1 else (3, 2)  # 3D: one row per axis, k_i = 0 and ½
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax, plane in zip(axes.ravel(), planes, strict=True):
        for t, wcc in zip(plane.t, plane.wcc, strict=True):
            ax.plot([t] * len(wcc), wcc, "o", ms=2.5, color="k", ls="none")
        ax.plot(plane.t, plane.gap_pos, "D", ms=3, color="tab:blue", ls="none", fillstyle="none")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel(f"$k_{plane.pump_axis + 1}$ / (½ $b_{plane.pump_axis + 1}$)")
        ax.set_ylabel(f"WCC along $a_{plane.loop_axis + 1}$")
        name = f"$k_{plane.fixed_axis + 1}$ = {plane.fixed_value:g}"
        ax.set_title(f"{name}: Z2 = {plane.z2 if plane.z2 is not None else '?'}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)
    if as_json:
        echo_json({"out": out, "z2": report.z2, "planes": [p.as_dict() for p in planes]})
    else:
        click.echo(f"wrote {out}")


def _load(ctx: click.Context, source: str, fmt: str | None):  # type: ignore[no-untyped-def]
    """A file path, or else an integer id in the project database."""
    if Path(source).is_file():
        from hamdb.io.formats import read_hamiltonian

        return read_hamiltonian(source, fmt)
    if not source.isdigit():
        raise click.BadParameter(
            f"{source} is neither a file nor a Hamiltonian id", param_hint="SOURCE"
        )
    from sqlalchemy.orm import Session

    from hamdb.db.engine import make_engine
    from hamdb.io.catalog import load_hamiltonian
    from hamdb.store.store import HamiltonianStore

    project = ctx.find_root().obj.project()
    with Session(make_engine(project.database_url)) as session:
        return load_hamiltonian(session, HamiltonianStore(project.store_path), int(source))
