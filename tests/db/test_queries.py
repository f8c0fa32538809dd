"""`list_structures` filters and `row_counts`, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from hamdb.db.engine import make_engine
from hamdb.db.models import StructureRow, StructureSourceRow, elements_key
from hamdb.db.queries import StructureFilter, list_structures, mask_url, row_counts
from hamdb.errors import InputError

# (formula, space group, n_sites, elements)
CRYSTALS = [
    ("Bi2Se3", 166, 5, ["Bi", "Se"]),
    ("Bi2Te3", 166, 5, ["Bi", "Te"]),
    ("BiTeI", 156, 3, ["Bi", "I", "Te"]),
    ("Si", 227, 2, ["Si"]),
    ("Bi2Se3", 166, 15, ["Bi", "Se"]),
    ("Sb2Te3", 166, 5, ["Sb", "Te"]),
    ("Se", 152, 3, ["Se"]),
]


@pytest.fixture
def filled(project, session: Session) -> str:
    for number, (formula, sg, n_sites, elements) in enumerate(CRYSTALS):
        row = StructureRow(
            reduced_formula=formula,
            spacegroup_number=sg,
            n_sites=n_sites,
            elements=elements,
            elements_key=elements_key(elements),
            structure_json={"formula": formula},
        )
        row.sources.append(StructureSourceRow(source="crystals.zip", source_id=f"{number}.cif"))
        session.add(row)
        session.flush()
        row.material_id = row.id
    session.commit()
    return project.database_url


def _formulas(url: str, **where: object) -> list[tuple[str, int]]:
    rows, total = list_structures(url, StructureFilter(**where), limit=None)
    assert total == len(rows)
    return [(r.reduced_formula, r.n_sites) for r in rows]


def _expected(predicate) -> list[tuple[str, int]]:
    return [(f, n) for f, sg, n, els in CRYSTALS if predicate(f, sg, n, els)]


@pytest.mark.parametrize(
    ("where", "predicate"),
    [
        ({}, lambda f, sg, n, els: True),
        ({"elements": ("Bi",)}, lambda f, sg, n, els: "Bi" in els),
        ({"elements": ("Te", "Bi")}, lambda f, sg, n, els: {"Bi", "Te"} <= set(els)),
        # "Se" must not match "Sb" or a prefix of another symbol.
        ({"elements": ("Se",)}, lambda f, sg, n, els: "Se" in els),
        ({"elements": ("S",)}, lambda f, sg, n, els: "S" in els),
        ({"formula": "Se3Bi2"}, lambda f, sg, n, els: f == "Bi2Se3"),
        ({"spacegroup": 166, "max_sites": 5}, lambda f, sg, n, els: sg == 166 and n <= 5),
        ({"elements": ("Te",), "spacegroup": 156}, lambda f, sg, n, els: f == "BiTeI"),
    ],
)
def test_filters_select_what_they_say(filled: str, where: dict, predicate) -> None:
    assert _formulas(filled, **where) == _expected(predicate)


def test_limit_counts_all_matches_and_rows_carry_their_first_source(filled: str) -> None:
    rows, total = list_structures(filled, StructureFilter(spacegroup=166), limit=2)
    assert total == 4
    assert [r.reduced_formula for r in rows] == ["Bi2Se3", "Bi2Te3"]
    assert (rows[0].source, rows[0].source_id) == ("crystals.zip", "0.cif")
    assert rows[0].material_id == rows[0].id
    assert rows[0].as_dict()["elements"] == ["Bi", "Se"]


def test_a_hostile_filter_value_is_only_data(filled: str) -> None:
    with pytest.raises(InputError, match="not an element"):
        StructureFilter(elements=("Bi'; DROP TABLE structures; --",))
    with pytest.raises(InputError, match="not a chemical formula"):
        list_structures(filled, StructureFilter(formula="Bi2'; DROP TABLE structures; --"))
    assert len(_formulas(filled)) == len(CRYSTALS)


def test_row_counts_cover_every_table(filled: str) -> None:
    counts = row_counts(make_engine(filled))
    assert counts["structures"] == len(CRYSTALS)
    assert counts["structure_sources"] == len(CRYSTALS)
    assert counts["hamiltonians"] == 0
    assert "alembic_version" not in counts


def test_mask_url_hides_the_password() -> None:
    masked = mask_url("postgresql+psycopg://hamdb:s3cret@db.example:5432/hamdb")
    assert "s3cret" not in masked
    assert masked == "postgresql+psycopg://hamdb:***@db.example:5432/hamdb"
