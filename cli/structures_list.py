"""`hamdb structures list`: structures matching filters, as a table or JSON."""

from __future__ import annotations

import click

from hamdb.cli.options import echo_json, json_option, pass_project, split_elements
from hamdb.config import Project


@click.command("list")
@click.option(
    "--elements",
    multiple=True,
    callback=split_elements,
    help="Structures containing all of these elements: --elements Bi,Se (or repeat the option).",
)
@click.option("--formula", help="Reduced formula, any element order: Bi2Se3.")
@click.option("--spacegroup", type=click.IntRange(1, 230), help="Space group number (symprec 0.1).")
@click.option("--max-sites", type=click.IntRange(1), help="At most this many sites in the cell.")
@click.option(
    "--limit", type=click.IntRange(0), default=50, show_default=True, help="Rows to show; 0 = all."
)
@json_option
@pass_project
def command(
    project: Project,
    elements: tuple[str, ...],
    formula: str | None,
    spacegroup: int | None,
    max_sites: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """List structures by id with their formula, space group, size, material group and source.

    \b
    Examples:
      hamdb structures list --elements Bi --elements Te
      hamdb structures list --formula Se3Bi2 --json
    """
    from hamdb.cli.render import text_table
    from hamdb.db.queries import StructureFilter, list_structures

    where = StructureFilter(elements, formula, spacegroup, max_sites)
    rows, total = list_structures(project.database_url, where, limit=limit or None)
    if as_json:
        echo_json({"total": total, "structures": [row.as_dict() for row in rows]})
        return
    columns = ["id", "formula", "spacegroup", "n_sites", "material", "source"]
    table = [
        [
            str(r.id),
            r.reduced_formula,
            str(r.spacegroup_number),
            str(r.n_sites),
            "" if r.material_id is None else str(r.material_id),
            "" if r.source is None else f"{r.source}#{r.source_id}",
        ]
        for r in rows
    ]
    click.echo(text_table(columns, table), nl=False)
    click.echo(f"({len(rows)} of {total} matching)", err=True)
