"""`hamdb dataset build`: add N generated structures and compute their DFT Hamiltonians."""

from __future__ import annotations

import click

from hamdb.cli.options import (
    echo_json,
    json_option,
    pass_project,
    split_elements,
    workers_option,
)
from hamdb.config import Project


@click.command("build")
@click.option("--n", "n", type=click.IntRange(1), required=True, help="Structures in the dataset.")
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Dataset seed (same seed, same structures).",
)
@click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="Compare each structure's eigenvalues off the mesh with GPAW's own (fails above 1e-4 eV).",
)
@click.option(
    "--elements",
    multiple=True,
    callback=split_elements,
    help="Draw every structure from these elements only, e.g. Bi,Sb,Se,Te (a focused set).",
)
@workers_option
@json_option
@pass_project
def command(
    project: Project,
    n: int,
    seed: int,
    check: bool,
    elements: tuple[str, ...] | None,
    workers: int,
    as_json: bool,
) -> None:
    """Build (or continue) the dataset: structures 0..N-1 of this seed, each a prototype
    (fcc, bcc, hcp, diamond, zincblende, rocksalt, CsCl, wurtzite, 1T, 2H, Bi2Se3-type) of
    elements up to Bi with a random strain and displacements, with GPAW non-SOC and SOC
    Hamiltonians. Interrupt it any time; running it again continues.

    \b
    Example:
      OMP_NUM_THREADS=1 hamdb dataset build --n 200
      OMP_NUM_THREADS=1 hamdb dataset build --n 150 --elements Si,Ge,Sn,Bi,Sb,Se,Te
    """
    import time

    from hamdb.dft.dataset import build

    start = time.perf_counter()

    def report(o: object) -> None:
        if not as_json:
            status = o.status if o.status == "done" else f"failed: {o.error}"  # type: ignore[attr-defined]
            click.echo(
                f"structure {o.structure_id} ({o.n_atoms} atoms, {o.seconds:.1f} s): {status}"
            )  # type: ignore[attr-defined]

    outcomes = build(
        project,
        n,
        seed=seed,
        workers=workers,
        check=check,
        elements=elements or None,
        on_outcome=report,
    )
    done = sum(o.status == "done" for o in outcomes)
    hours = (time.perf_counter() - start) / 3600
    summary = {
        "ran": len(outcomes),
        "done": done,
        "failed": len(outcomes) - done,
        "structures_per_hour": round(done / hours, 1) if hours > 0 and done else None,
    }
    if as_json:
        echo_json({**summary, "runs": [o.as_dict() for o in outcomes]})
    else:
        click.echo(", ".join(f"{k} {v}" for k, v in summary.items()))
