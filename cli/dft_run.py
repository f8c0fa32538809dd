"""`hamdb dft run`: GPAW LCAO + SOC Hamiltonians for structures, one transaction each."""

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


@click.command("run")
@click.argument("ids", nargs=-1, type=int)
@click.option(
    "--pending", is_flag=True, help="Only structures without a finished run of this method."
)
@click.option("--retry-failed", is_flag=True, help="With --pending: take failed runs again too.")
@click.option(
    "--elements",
    multiple=True,
    callback=split_elements,
    help="Filter: containing all of these elements (Bi,Se).",
)
@click.option("--formula", help="Filter: reduced formula (Bi2Se3).")
@click.option("--max-sites", type=click.IntRange(1), help="Filter: at most this many sites.")
@click.option(
    "--kdensity",
    type=click.FloatRange(0.1),
    default=2.5,
    show_default=True,
    help="SCF k-points per Å⁻¹ (2π included): N = ceil(kdensity·|b|).",
)
@click.option(
    "--grid-spacing",
    type=click.FloatRange(0.05),
    default=0.2,
    show_default=True,
    help="Real-space grid spacing h (Å).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Compare eigenvalues at off-mesh k with GPAW's own (non-SOC and SOC); "
    "a deviation above 1e-4 eV fails the run.",
)
@workers_option
@json_option
@pass_project
def command(
    project: Project,
    ids: tuple[int, ...],
    pending: bool,
    retry_failed: bool,
    elements: tuple[str, ...],
    formula: str | None,
    max_sites: int | None,
    kdensity: float,
    grid_spacing: float,
    check: bool,
    workers: int,
    as_json: bool,
) -> None:
    """Run GPAW (PBE LCAO, dzp, Γ-centred k-mesh) on structures IDS, or on all that match the
    filters; store the non-SOC and the SOC Hamiltonian of each (method gpaw-lcao-pbe-dzp).

    A structure that fails (bad input, no setups, no SCF convergence, a crash) is recorded as
    failed with its reason in the dft_runs table and the others go on. Exits 1 if any failed.

    \b
    Examples:
      hamdb dft run 1 --check
      hamdb dft run --pending --workers 2 --json
    """
    from hamdb.db.queries import StructureFilter
    from hamdb.dft.gpaw_lcao import LcaoSettings
    from hamdb.dft.runner import run_many, select_structures
    from hamdb.errors import InputError

    if not ids and not pending and not (elements or formula or max_sites):
        raise InputError("dft run: give structure IDS, --pending or a filter (--elements, ...)")
    settings = LcaoSettings(kdensity=kdensity, grid_spacing=grid_spacing)
    where = StructureFilter(elements, formula, None, max_sites)
    todo = select_structures(
        project,
        ids,
        pending=pending,
        where=where,
        method=settings.method,
        retry_failed=retry_failed,
    )

    def report(outcome: object) -> None:
        if not as_json:
            o = outcome  # RunOutcome
            extra = f"{o.seconds:.1f} s" + (
                f", check {max(o.check.values()):.1e} eV" if o.check else ""
            )
            line = f"structure {o.structure_id}: {o.status} ({extra})"
            click.echo(line if o.status == "done" else f"{line}: {o.error}")

    outcomes = run_many(project, todo, settings, check=check, workers=workers, on_outcome=report)
    failed = [o for o in outcomes if o.status == "failed"]
    if as_json:
        echo_json({"runs": [o.as_dict() for o in outcomes], "failed": len(failed)})
    else:
        skipped = sum(o.status == "skipped" for o in outcomes)
        done = len(outcomes) - len(failed) - skipped
        click.echo(f"{done} done, {skipped} already done, {len(failed)} failed")
    if failed:
        raise SystemExit(1)
