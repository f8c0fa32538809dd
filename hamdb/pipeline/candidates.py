"""Reading the `candidates` view (alembic revisions 0002, 0004, 0005) and exporting it.

The view has one row per screened predicted SOC Hamiltonian (its columns are documented in
the README); `is_candidate = 1` marks a gap and a non-trivial, converged Z2. The candidates
are a partial index of topology_results that carries (INCLUDE, on PostgreSQL) the columns the
filters below use, so a filtered query reads that index and joins the other tables only for
the rows it returns. Queries here are
built with SQLAlchemy expressions and bound parameters, never by formatting user input into
SQL. Exports: CSV, JSON, Parquet (needs pyarrow) and OPTIMADE-style JSON lines (the structure
resource's attributes plus `_hamdb_z2`, `_hamdb_gap_ev` and the other `_hamdb_` fields).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Column, column, func, select, table, text
from sqlalchemy.orm import Session

from hamdb.errors import InputError

#: The view's columns, in order (the README documents each).
COLUMNS: tuple[str, ...] = (
    "structure_id", "formula", "spacegroup_number", "n_sites", "elements_key", "material_id",
    "hamiltonian_id", "model_version_id", "model_name", "model_version", "uncertainty_ev",
    "topology_result_id", "topology_method", "dimension", "nu0", "nu1", "nu2", "nu3",
    "gap_ev", "direct_gap_ev", "converged", "is_metal", "z2_class", "is_candidate",
    "screened_at", "dft_hamiltonian_id", "dft_topology_result_id", "dft_gap_ev",
    "dft_z2_class", "dft_agrees",
)  # fmt: skip

Z2_CLASSES = ("strong", "weak", "2d")
FORMATS = ("table", "csv", "json", "parquet", "optimade")
#: Columns a table on a terminal shows (every export has all of them).
TABLE_COLUMNS = (
    "structure_id", "formula", "spacegroup_number", "z2_class", "nu0", "nu1", "nu2", "nu3",
    "gap_ev", "uncertainty_ev", "model_name", "model_version", "dft_z2_class", "dft_agrees",
)  # fmt: skip

view = table("candidates", *[column(name) for name in COLUMNS])


def _col(name: str) -> Column[Any]:
    return view.c[name]


def _filters(
    c: Any, min_gap_ev: float | None, z2: str | None, elements: Sequence[str]
) -> list[Any]:
    """The gap, Z2 and element filters on columns `c`: the view's or topology_results' own
    (the names are the same)."""
    conditions = []
    if min_gap_ev is not None:
        conditions.append(c.gap_ev >= min_gap_ev)
    if z2 is not None:
        # The same as z2_class = z2 for candidates, on plain columns the planner can use.
        if z2 not in Z2_CLASSES:
            raise InputError(f"--z2 {z2!r}: choose one of {', '.join(Z2_CLASSES)}")
        if z2 == "2d":
            conditions.append(c.dimension == 2)
        else:
            conditions += [c.dimension == 3, c.nu0 == (1 if z2 == "strong" else 0)]
    for element in elements:
        symbol = element.strip().capitalize()
        if not symbol.isalpha() or len(symbol) > 3:
            raise InputError(f"--elements: {element!r} is not an element symbol")
        conditions.append(c.elements_key.like(f"%-{symbol}-%"))
    return conditions


def candidates_query(
    *,
    min_gap_ev: float | None = None,
    z2: str | None = None,
    elements: Sequence[str] = (),
    only_candidates: bool = True,
    unverified: bool = False,
    model_version_id: int | None = None,
    order: str = "gap",
    limit: int | None = None,
) -> Any:
    """A SELECT over the view with the filters of `hamdb candidates`.

    z2: 'strong' | 'weak' | '2d'; elements: every one must be present; unverified: no DFT
    topology result yet; order 'gap' (largest gap first) or 'promise' (gap beyond twice
    its uncertainty first, what `hamdb verify --top N` checks first).

    Candidates filtered by gap, Z2, elements or the lack of a DFT check (topology_results
    keeps its DFT check's id, migration 0005) are found first in topology_results alone,
    `topology_result_id IN (SELECT id FROM topology_results WHERE <the view's candidate
    condition> AND <filters>)`, an index-only scan of the candidates' covering index; the
    view then joins its other tables for the matching rows only. Filtered through the view
    directly, every candidate in the gap range would be read from the table first (the
    filter columns of an index are only usable without a table read in an index-only scan).
    """
    from hamdb.db.models import VIEW_CANDIDATE, TopologyResultRow

    query = select(view)
    if only_candidates or z2 is not None:
        results = TopologyResultRow.__table__.c
        conditions = _filters(results, min_gap_ev, z2, elements)
        if unverified:
            conditions.append(results.dft_topology_result_id.is_(None))
        if conditions:
            matching = select(results.id).where(text(VIEW_CANDIDATE), *conditions)
            query = query.where(_col("topology_result_id").in_(matching))
        else:
            query = query.where(_col("is_candidate"))
    else:
        query = query.where(*_filters(view.c, min_gap_ev, z2, elements))
        if unverified:
            query = query.where(_col("dft_topology_result_id").is_(None))
    if model_version_id is not None:
        query = query.where(_col("model_version_id") == model_version_id)
    if order == "promise":
        promise = _col("gap_ev") - 2 * func.coalesce(_col("uncertainty_ev"), 0.0)
        query = query.order_by(promise.desc(), _col("structure_id"))
    else:
        query = query.order_by(_col("gap_ev").desc(), _col("structure_id"))
    if limit is not None:
        query = query.limit(limit)
    return query


def fetch(session: Session, query: Any) -> list[dict[str, Any]]:
    """Rows of a query over the view as plain dicts (booleans as bool, times as ISO text)."""
    out = []
    for row in session.execute(query).mappings():
        record = {}
        for key, value in row.items():
            if key == "is_candidate":
                value = bool(value)  # NULL (no gap known) means not a candidate
            elif key in ("converged", "is_metal", "dft_agrees") and value is not None:
                value = bool(value)
            elif isinstance(value, datetime):
                value = value.isoformat()
            record[key] = value
        out.append(record)
    return out


# -- writers ---------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else str(value)
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """A plain, aligned text table (what a terminal shows)."""
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def write_csv(rows: Sequence[dict[str, Any]], out: IO[str]) -> None:
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def write_parquet(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Parquet needs pyarrow (`pip install pyarrow`): a clear error if it is missing."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            "--format parquet needs pyarrow: pip install pyarrow (or use csv/json)"
        ) from None
    data = {c: [r.get(c) for r in rows] for c in COLUMNS}
    pq.write_table(pa.table(data), path)


def optimade_record(row: dict[str, Any], structure_json: dict[str, Any]) -> dict[str, Any]:
    """One OPTIMADE `structures` resource (v1.2 attribute names) with hamdb's own fields.

    Provider-specific fields carry the `_hamdb_` prefix, as OPTIMADE requires.
    """
    from pymatgen.core import Structure

    structure = Structure.from_dict(structure_json)
    comp = structure.composition
    elements = sorted(el.symbol for el in comp.elements)
    total = comp.num_atoms
    reduced = comp.reduced_composition
    anonymous = "".join(
        f"{chr(65 + i)}{int(n) if n != 1 else ''}"
        for i, n in enumerate(sorted(reduced.values(), reverse=True))
    )
    species = sorted({site.specie.symbol for site in structure})
    z2 = [row[k] for k in ("nu0", "nu1", "nu2", "nu3") if row.get(k) is not None]
    if row.get("dimension") == 2:
        z2 = z2[:1]
    return {
        "id": f"hamdb-{row['structure_id']}",
        "type": "structures",
        "attributes": {
            "elements": elements,
            "nelements": len(elements),
            "elements_ratios": [comp[el] / total for el in elements],
            "chemical_formula_reduced": "".join(
                f"{el}{int(reduced[el]) if reduced[el] != 1 else ''}" for el in elements
            ),
            "chemical_formula_descriptive": comp.formula.replace(" ", ""),
            "chemical_formula_anonymous": anonymous,
            "dimension_types": [1, 1, 1],
            "nperiodic_dimensions": 3,
            "lattice_vectors": structure.lattice.matrix.tolist(),
            "cartesian_site_positions": structure.cart_coords.tolist(),
            "nsites": len(structure),
            "species_at_sites": [site.specie.symbol for site in structure],
            "species": [
                {"name": el, "chemical_symbols": [el], "concentration": [1.0]} for el in species
            ],
            "structure_features": [],
            "last_modified": row.get("screened_at"),
            "_hamdb_z2": z2,
            "_hamdb_z2_class": row.get("z2_class"),
            "_hamdb_gap_ev": row.get("gap_ev"),
            "_hamdb_direct_gap_ev": row.get("direct_gap_ev"),
            "_hamdb_uncertainty_ev": row.get("uncertainty_ev"),
            "_hamdb_space_group": row.get("spacegroup_number"),
            "_hamdb_model": f"{row.get('model_name')}@{row.get('model_version')}",
            "_hamdb_dft_z2_class": row.get("dft_z2_class"),
            "_hamdb_dft_agrees": row.get("dft_agrees"),
        },
    }


def write_optimade(session: Session, rows: Sequence[dict[str, Any]], out: IO[str]) -> None:
    """OPTIMADE-style JSON lines: one structure resource per candidate."""
    from hamdb.db.models import StructureRow

    ids = [r["structure_id"] for r in rows]
    structures: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(ids, 500):
        for sid, data in session.execute(
            select(StructureRow.id, StructureRow.structure_json).where(StructureRow.id.in_(chunk))
        ):
            structures[sid] = data
    for row in rows:
        out.write(json.dumps(optimade_record(row, structures[row["structure_id"]])) + "\n")


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def export(
    session: Session, rows: Sequence[dict[str, Any]], fmt: str, output: Path | None
) -> str | None:
    """Write rows in `fmt` to `output`, or return the text (stdout) when output is None."""
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        if output is None:
            raise InputError("--format parquet writes a file: give --output FILE.parquet")
        write_parquet(rows, output)
        return None
    buffer = io.StringIO()
    if fmt == "table":
        buffer.write(format_table(rows) + "\n")
    elif fmt == "csv":
        write_csv(rows, buffer)
    elif fmt == "json":
        buffer.write(json.dumps(list(rows), indent=2) + "\n")
    else:
        write_optimade(session, rows, buffer)
    if output is None:
        return buffer.getvalue()
    output.write_text(buffer.getvalue())
    return None
