"""Training data from a project: DFT Hamiltonian pairs (spinless, SOC) per structure.

`--data FILTER` selects rows with comma-free `key=value` terms joined by spaces or ';':
  elements=Bi,Se    structures whose elements are all among these
  formula=Bi2Se3    reduced formula
  method=gpaw-lcao-pbe-dzp
  ids=1,2,5         structure ids
  limit=40          at most this many structures (by id)
The selection and the split are recorded in the version's `training_data`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hamdb.errors import InputError, ModelError
from hamdb.physics.hamiltonian import Hamiltonian


@dataclass
class Record:
    """One training structure: its DFT Hamiltonians and its material group (split key)."""

    structure_id: int
    group: str
    h_none: Hamiltonian
    h_soc: Hamiltonian | None
    ids: tuple[int, int | None]


def parse_filter(text: str | None) -> dict[str, str]:
    terms: dict[str, str] = {}
    for part in (text or "").replace(";", " ").split():
        key, sep, value = part.partition("=")
        if not sep or key not in ("elements", "formula", "method", "ids", "limit"):
            raise InputError(
                f"--data term {part!r}: use elements=A,B formula=X method=M ids=1,2 limit=N"
            )
        terms[key] = value
    return terms


def load_hamiltonian_row(session: Session, store: Any, row: Any) -> Hamiltonian:
    """A stored Hamiltonian through hamdb.io's catalog (or the store format directly)."""
    try:
        from hamdb.io.catalog import load_hamiltonian
    except ImportError:
        load_hamiltonian = None
    if load_hamiltonian is not None:
        return load_hamiltonian(session, store, row.id)
    from hamdb.io.hamdb_format import from_arrays

    arrays, attrs = store.get(row.uri)
    return from_arrays(arrays, attrs, source=row.uri)


def load_records(
    session: Session, store: Any, data_filter: str | None, need_soc: bool
) -> tuple[list[Record], dict[str, Any]]:
    """The selected DFT pairs and a JSON description of the selection."""
    from hamdb.db.models import HamiltonianRow, StructureRow

    terms = parse_filter(data_filter)
    query = (
        select(HamiltonianRow, StructureRow)
        .join(StructureRow, HamiltonianRow.structure_id == StructureRow.id)
        .where(HamiltonianRow.kind == "dft")
        .order_by(StructureRow.id, HamiltonianRow.id)
    )
    if "method" in terms:
        query = query.where(HamiltonianRow.method == terms["method"])
    if "formula" in terms:
        query = query.where(StructureRow.reduced_formula == terms["formula"])
    if "ids" in terms:
        query = query.where(StructureRow.id.in_([int(x) for x in terms["ids"].split(",") if x]))
    allowed = set(terms["elements"].split(",")) if "elements" in terms else None
    pairs: dict[int, dict[str, Any]] = {}
    for ham_row, st_row in session.execute(query):
        if allowed is not None and not set(st_row.elements) <= allowed:
            continue
        entry = pairs.setdefault(st_row.id, {"st": st_row})
        entry.setdefault(ham_row.spin, ham_row)
    ids = sorted(k for k, v in pairs.items() if "none" in v and (not need_soc or "soc" in v))
    if "limit" in terms:
        ids = ids[: int(terms["limit"])]
    if not ids:
        what = "spinless+SOC" if need_soc else "spinless"
        raise ModelError(
            f"no structures with {what} DFT Hamiltonians match --data {data_filter or '(all)'}"
        )
    records = []
    for sid in ids:
        entry = pairs[sid]
        h_none = load_hamiltonian_row(session, store, entry["none"])
        h_soc = load_hamiltonian_row(session, store, entry["soc"]) if "soc" in entry else None
        group = entry["st"].material_id
        records.append(
            Record(
                sid,
                str(group if group is not None else f"s{sid}"),
                h_none,
                h_soc,
                (entry["none"].id, entry["soc"].id if "soc" in entry else None),
            )
        )
    selection = {
        "filter": data_filter or "",
        "structure_ids": ids,
        "hamiltonian_ids": [list(r.ids) for r in records],
    }
    return records, selection


def common_basis(records: Sequence[Record]) -> Any:
    """The one basis all records share (ModelError naming the odd one out otherwise)."""
    from hamdb.physics.basis import BasisSet

    shells: dict[str, tuple[int, ...]] = {}
    valence: dict[str, float] = {}
    name = records[0].h_none.basis.name
    for r in records:
        b = r.h_none.basis
        if b.name != name:
            raise ModelError(
                f"structure {r.structure_id}: basis {b.name!r} differs from {name!r}; "
                "use --data to pick one"
            )
        for el in set(r.h_none.species):
            ls = b.shell_ls(el)
            if shells.setdefault(el, ls) != ls:
                raise ModelError(
                    f"structure {r.structure_id}: element {el} has shells {ls}, others {shells[el]}"
                )
            if el in b.valence_electrons:
                valence[el] = b.valence_electrons[el]
    return BasisSet(name, shells, valence)
