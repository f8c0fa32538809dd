"""`hamdb topology FILE`: gap and Z2 of one Hamiltonian file, no database needed."""

from __future__ import annotations

import click

from hamdb.cli.options import json_option


def settings_options(func):  # type: ignore[no-untyped-def]
    """Convergence options shared by `hamdb topology` and `hamdb screen` (Z2Pack's names)."""
    specs = [
        ("--pos-tol", float, "Line convergence: max WCC move when k-points double [0.01]."),
        ("--gap-tol", float, "Surface: WCC to largest-gap distance, in gap sizes [0.3]."),
        ("--move-tol", float, "Surface: WCC move between lines, in gap sizes [0.3]."),
        ("--num-lines", click.IntRange(3), "Initial lines per plane [5]."),
        ("--min-neighbour-dist", float, "Smallest line spacing (pump coordinate 0..1) [0.001]."),
        ("--k-max", click.IntRange(8), "Most k-points on one line [256]."),
        ("--max-lines", click.IntRange(3), "Most lines per plane [200]."),
        (
            "--s-min",
            click.FloatRange(0.0, 1.0),
            "Drop overlap directions with eigenvalue <= S_MIN * largest at each k (near-"
            "dependent basis, predicted H) [0 = exact; `screen --kind predicted`: 1e-2].",
        ),
    ]
    options = [click.option(flag, type=kind, default=None, help=text) for flag, kind, text in specs]
    options.append(
        click.option(
            "--fixed", "fixed_grid", is_flag=True, help="No adaptive refinement (to compare)."
        )
    )
    for option in reversed(options):
        func = option(func)
    return func


def collect_settings(kwargs: dict) -> dict:  # type: ignore[type-arg]
    """The TopologySettings fields given on the command line (the rest keep their defaults)."""
    names = (
        "pos_tol",
        "gap_tol",
        "move_tol",
        "num_lines",
        "min_neighbour_dist",
        "k_max",
        "max_lines",
        "s_min",
    )
    settings = {n: kwargs.pop(n) for n in names if kwargs.get(n) is not None}
    for n in names:
        kwargs.pop(n, None)
    if kwargs.pop("fixed_grid", False):
        settings["adaptive"] = False
    return settings


def format_z2(z2: list[int] | None) -> str:
    if z2 is None:
        return "none"
    if len(z2) == 1:
        return f"ν = {z2[0]}"
    return f"({z2[0]}; {z2[1]}{z2[2]}{z2[3]})"


@click.command("topology")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    default=None,
    help="File format (default: from the name): wannier90, siesta, tbmodels, openmx, hamdb.",
)
@click.option(
    "--occupied",
    type=click.IntRange(1),
    default=None,
    help="Occupied bands (default: the file's electron count).",
)
@click.option(
    "--dim",
    type=click.Choice(["2", "3"]),
    default=None,
    help="Force 2D (k3 = 0 plane) or 3D (default: detected).",
)
@click.option(
    "--method",
    "methods",
    type=click.Choice(["wcc", "parity"]),
    multiple=True,
    help="Methods to run [wcc and parity].",
)
@settings_options
@json_option
def command(
    file: str,
    fmt: str | None,
    occupied: int | None,
    dim: str | None,
    methods: tuple[str, ...],
    as_json: bool,
    **kwargs,
) -> None:  # type: ignore[no-untyped-def]
    """Band gap and Z2 invariant(s) of the Hamiltonian in FILE.

    The Z2 comes from the adaptive flow of Wannier charge centres (Z2Pack's algorithm); for a
    centrosymmetric crystal the Fu–Kane parities are checked against it.

    \b
    Examples:
      hamdb topology wannier90_hr.dat --format wannier90 --occupied 28
      hamdb topology Bi.HSX --json
    """
    from hamdb.cli.options import echo_json
    from hamdb.io.formats import read_hamiltonian
    from hamdb.topology import analyse

    settings = collect_settings(kwargs)
    ham = read_hamiltonian(file, fmt)
    report = analyse(
        ham, occupied=occupied, dim=int(dim) if dim else None,
        methods=methods or ("wcc", "parity"), settings=settings,
    )  # fmt: skip
    if as_json:
        echo_json({"file": file, **report.as_dict()})
        return
    click.echo(f"{file}: {ham!r}")
    click.echo(
        f"  dimension       {report.dim}D"
        + (f" (vacuum along a{report.vacuum_axis + 1})" if report.vacuum_axis is not None else "")
    )
    click.echo(f"  occupied bands  {report.n_occupied}")
    click.echo(
        f"  band gap        {report.gap_ev:.4f} eV" + ("  (metal)" if report.is_metal else "")
    )
    click.echo(f"  direct gap      {report.direct_gap_ev:.4f} eV")
    click.echo(
        f"  Z2              {format_z2(report.z2)}  [{report.method}, converged={report.converged}]"
    )
    if report.parity_z2 is not None or report.wcc_z2 is not None:
        click.echo(f"  WCC / parity    {format_z2(report.wcc_z2)} / {format_z2(report.parity_z2)}")
    if report.n_dropped:
        click.echo(f"  overlap filter  {report.n_dropped} states dropped at worst k (--s-min)")
    if report.error:
        click.echo(f"  note            {report.error}")
    click.echo(
        "  time            " + ", ".join(f"{k} {v:.3f} s" for k, v in report.timing_s.items())
    )
