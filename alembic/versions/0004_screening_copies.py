"""Fast screening queries: structure copies and a current-screen flag on topology_results,
the candidates view rebuilt on them, and a `structure_elements` index table.

Screening aggregates (candidates per space group, per Z2 class, counts with a gap cut) read
every candidate, ~3% of the screened rows. Through revision 0002's view each of them cost
four index probes (the newer-'wcc' anti-join, hamiltonians, structures, the model) and a heap
fetch: ~0.5 s on 1M rows. Now:

- topology_results carries copies of its structure's `reduced_formula`, `spacegroup_number`,
  `n_sites` and `elements_key` (a structure never changes after its insert), and
  `current_screen`, true on the newest 'wcc' row of each predicted SOC Hamiltonian (what the
  view's NOT EXISTS computed per row). hamdb.db.models fills both on every ORM insert.
- the view reads those columns and reaches the other tables through LEFT JOINs on their
  primary keys (always matched: foreign keys, and `current_screen` only on predicted SOC
  Hamiltonians, which have a model version). A LEFT JOIN whose columns a query does not use
  is dropped by PostgreSQL's and SQLite's planners, so a count per space group reads one
  partial index of the candidates, covering (INCLUDE) on PostgreSQL: an index-only scan.
- `structure_elements` (structure, element) with an (element, structure) index answers
  "structures containing Bi" on both databases; a GIN index on `structures.elements` would
  be PostgreSQL-only, and the ORM (compared with the schema on both databases) cannot
  declare an index for one database only.

The columns are added nullable, backfilled, then made NOT NULL. On SQLite that last step
rebuilds topology_results (batch copy from the frozen definition below: SQLite does not
reflect everything, CHECK constraints included), so the view is dropped first and created
again after. After upgrading a large PostgreSQL database run `VACUUM ANALYZE
topology_results`: the backfill rewrote every row (autovacuum gets there too, later).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Frozen copies of hamdb.db.models' column types: a migration never imports the live ORM.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COPIES = {
    "reduced_formula": sa.String(length=128),
    "spacegroup_number": sa.Integer(),
    "n_sites": sa.Integer(),
    "elements_key": sa.String(length=512),
}
NEW_COLUMNS = {**COPIES, "current_screen": sa.Boolean()}

CANDIDATE = (
    "converged AND NOT is_metal AND gap_ev > 0 AND (nu0 = 1 OR nu1 = 1 OR nu2 = 1 OR nu3 = 1)"
)
VIEW_CANDIDATE = f"current_screen AND {CANDIDATE}"
#: What the covering index carries besides its key (gap_ev), so that screening aggregates
#: are index-only scans: every column they filter or group candidates by, what z2_class is
#: computed from, id (`hamdb candidates` finds its rows by it) and hamiltonian_id (PostgreSQL
#: still counts a LEFT JOIN's column as needed after dropping the unused join).
INCLUDE = [
    "id", "hamiltonian_id", "dimension", "nu0", "nu1", "nu2", "nu3", "converged", "is_metal",
    "spacegroup_number", "n_sites", "elements_key",
]  # fmt: skip

#: PostgreSQL storage parameter of topology_results (set to 0.01: vacuum after inserts of 1%).
AUTOVACUUM_INSERTS = "autovacuum_vacuum_insert_scale_factor"

_Z2_CLASS = """CASE
        WHEN {t}.is_metal THEN 'metal'
        WHEN NOT {t}.converged OR {t}.nu0 IS NULL THEN 'unknown'
        WHEN {t}.dimension = 2 THEN CASE WHEN {t}.nu0 = 1 THEN '2d' ELSE 'trivial' END
        WHEN {t}.nu0 = 1 THEN 'strong'
        WHEN {t}.nu1 = 1 OR {t}.nu2 = 1 OR {t}.nu3 = 1 THEN 'weak'
        ELSE 'trivial' END"""

_IS_CANDIDATE = (
    "({t}.converged AND NOT {t}.is_metal AND {t}.gap_ev > 0"
    " AND ({t}.nu0 = 1 OR {t}.nu1 = 1 OR {t}.nu2 = 1 OR {t}.nu3 = 1))"
)

# The DFT check of a structure: the newest 'wcc' result of its newest DFT SOC Hamiltonian, a
# correlated scalar subquery computed only for the rows (and columns) a query asks for.
_DFT_RESULT = """(SELECT dtr0.id FROM hamiltonians dh
        JOIN topology_results dtr0 ON dtr0.hamiltonian_id = dh.id AND dtr0.method = 'wcc'
        WHERE dh.structure_id = {structure_id} AND dh.kind = 'dft' AND dh.spin = 'soc'
        ORDER BY dh.id DESC, dtr0.id DESC
        LIMIT 1)"""

_DFT_COLUMNS = f"""dtr.hamiltonian_id AS dft_hamiltonian_id,
    dtr.id AS dft_topology_result_id,
    dtr.gap_ev AS dft_gap_ev,
    CASE WHEN dtr.id IS NULL THEN NULL ELSE {_Z2_CLASS.format(t="dtr")} END AS dft_z2_class,
    CASE WHEN dtr.id IS NULL THEN NULL
         WHEN ({_Z2_CLASS.format(t="tr")}) = 'unknown'
              OR ({_Z2_CLASS.format(t="dtr")}) = 'unknown' THEN NULL
         ELSE ({_Z2_CLASS.format(t="tr")}) = ({_Z2_CLASS.format(t="dtr")}) END AS dft_agrees"""

_RESULT_COLUMNS = f"""tr.id AS topology_result_id,
    tr.method AS topology_method,
    tr.dimension,
    tr.nu0, tr.nu1, tr.nu2, tr.nu3,
    tr.gap_ev,
    tr.direct_gap_ev,
    tr.converged,
    tr.is_metal,
    {_Z2_CLASS.format(t="tr")} AS z2_class,
    {_IS_CANDIDATE.format(t="tr")} AS is_candidate,
    tr.created_at AS screened_at"""

# The columns and their order are revision 0002's; only where they come from changed.
VIEW_SQL = f"""
CREATE VIEW candidates AS
SELECT
    h.structure_id,
    tr.reduced_formula AS formula,
    tr.spacegroup_number,
    tr.n_sites,
    tr.elements_key,
    s.material_id,
    tr.hamiltonian_id,
    h.model_version_id,
    m.name AS model_name,
    mv.version AS model_version,
    h.uncertainty_ev,
    {_RESULT_COLUMNS},
    {_DFT_COLUMNS}
FROM topology_results tr
LEFT JOIN hamiltonians h ON h.id = tr.hamiltonian_id
LEFT JOIN structures s ON s.id = h.structure_id
LEFT JOIN model_versions mv ON mv.id = h.model_version_id
LEFT JOIN models m ON m.id = mv.model_id
LEFT JOIN topology_results dtr ON dtr.id = {_DFT_RESULT.format(structure_id="h.structure_id")}
WHERE tr.current_screen
"""

# Revision 0002's view, restored by the downgrade.
_NEWEST_WCC = """tr.method = 'wcc' AND NOT EXISTS (
        SELECT 1 FROM topology_results newer
        WHERE newer.hamiltonian_id = tr.hamiltonian_id AND newer.method = 'wcc'
          AND newer.id > tr.id)"""

VIEW_SQL_0002 = f"""
CREATE VIEW candidates AS
SELECT
    s.id AS structure_id,
    s.reduced_formula AS formula,
    s.spacegroup_number,
    s.n_sites,
    s.elements_key,
    s.material_id,
    h.id AS hamiltonian_id,
    h.model_version_id,
    m.name AS model_name,
    mv.version AS model_version,
    h.uncertainty_ev,
    {_RESULT_COLUMNS},
    {_DFT_COLUMNS}
FROM topology_results tr
JOIN hamiltonians h ON h.id = tr.hamiltonian_id AND h.kind = 'predicted' AND h.spin = 'soc'
JOIN structures s ON s.id = h.structure_id
JOIN model_versions mv ON mv.id = h.model_version_id
JOIN models m ON m.id = mv.model_id
LEFT JOIN topology_results dtr ON dtr.id = {_DFT_RESULT.format(structure_id="s.id")}
WHERE {_NEWEST_WCC}
"""

# One pass over topology_results: the copies from the structure, and the flag where no newer
# 'wcc' row of the same Hamiltonian exists (revision 0002's definition of the view's row).
# UPDATE ... FROM runs on PostgreSQL and on SQLite >= 3.33.
BACKFILL = """
UPDATE topology_results SET
    reduced_formula = s.reduced_formula,
    spacegroup_number = s.spacegroup_number,
    n_sites = s.n_sites,
    elements_key = s.elements_key,
    current_screen = (
        topology_results.method = 'wcc' AND h.kind = 'predicted' AND h.spin = 'soc'
        AND NOT EXISTS (
            SELECT 1 FROM topology_results newer
            WHERE newer.hamiltonian_id = topology_results.hamiltonian_id
              AND newer.method = 'wcc' AND newer.id > topology_results.id))
FROM hamiltonians h JOIN structures s ON s.id = h.structure_id
WHERE h.id = topology_results.hamiltonian_id
"""

ELEMENTS_BACKFILL = {
    "postgresql": "INSERT INTO structure_elements (structure_id, element)"
    " SELECT DISTINCT s.id, e.value FROM structures s,"
    " jsonb_array_elements_text(s.elements) AS e(value)",
    "sqlite": "INSERT INTO structure_elements (structure_id, element)"
    " SELECT DISTINCT s.id, e.value FROM structures s, json_each(s.elements) AS e",
}


def _topology_results(*, new_nullable: bool) -> sa.Table:
    """topology_results as 0001 made it plus 0004's columns: what SQLite's batch copies."""
    return sa.Table(
        "topology_results",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hamiltonian_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("settings_hash", sa.String(length=64), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("z2", JSON, nullable=True),
        sa.Column("nu0", sa.Integer(), nullable=True),
        sa.Column("nu1", sa.Integer(), nullable=True),
        sa.Column("nu2", sa.Integer(), nullable=True),
        sa.Column("nu3", sa.Integer(), nullable=True),
        sa.Column("gap_ev", sa.Float(), nullable=True),
        sa.Column("direct_gap_ev", sa.Float(), nullable=True),
        sa.Column("n_occupied", sa.Integer(), nullable=True),
        sa.Column("converged", sa.Boolean(), nullable=False),
        sa.Column("is_metal", sa.Boolean(), nullable=False),
        sa.Column("settings", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        *(sa.Column(name, type_, nullable=new_nullable) for name, type_ in NEW_COLUMNS.items()),
        sa.CheckConstraint("method IN ('wcc', 'parity')", name="ck_topology_results_method"),
        sa.CheckConstraint(
            "(nu0 IS NULL OR nu0 IN (0, 1)) AND (nu1 IS NULL OR nu1 IN (0, 1))"
            " AND (nu2 IS NULL OR nu2 IN (0, 1)) AND (nu3 IS NULL OR nu3 IN (0, 1))",
            name="ck_topology_results_nu_binary",
        ),
        sa.CheckConstraint("dimension IN (2, 3)", name="ck_topology_results_dimension"),
        sa.ForeignKeyConstraint(
            ["hamiltonian_id"],
            ["hamiltonians.id"],
            name="fk_topology_results_hamiltonian_id_hamiltonians",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_topology_results"),
        sa.UniqueConstraint(
            "hamiltonian_id",
            "method",
            "settings_hash",
            name="uq_topology_results_hamiltonian_id_method_settings_hash",
        ),
        sa.Index("ix_topology_results_gap_ev", "gap_ev"),
        sa.Index("ix_topology_results_nu0_gap", "nu0", "gap_ev"),
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW candidates")
    op.drop_index("ix_topology_results_candidate_gap", table_name="topology_results")

    for name, type_ in NEW_COLUMNS.items():
        op.add_column("topology_results", sa.Column(name, type_, nullable=True))
    op.execute(BACKFILL)
    if dialect == "postgresql":
        # One ALTER, one scan of the table to check every column (five ALTERs: five scans).
        op.execute(
            "ALTER TABLE topology_results "
            + ", ".join(f"ALTER COLUMN {name} SET NOT NULL" for name in NEW_COLUMNS)
        )
    else:
        current = _topology_results(new_nullable=True)
        with op.batch_alter_table("topology_results", copy_from=current) as batch:
            for name, type_ in NEW_COLUMNS.items():
                batch.alter_column(name, existing_type=type_, nullable=False)

    op.create_index(
        "ix_topology_results_candidates",
        "topology_results",
        ["gap_ev"],
        postgresql_include=INCLUDE,
        postgresql_where=sa.text(VIEW_CANDIDATE),
        sqlite_where=sa.text(VIEW_CANDIDATE),
    )
    op.execute(VIEW_SQL)
    if dialect == "postgresql":
        # Index-only scans skip the table only for pages VACUUM marked all-visible; by default
        # autovacuum visits an insert-only table after inserts of 20% of it (200k rows of
        # 1M), so the screen's newest results would be read from the table for a long time.
        op.execute(f"ALTER TABLE topology_results SET ({AUTOVACUUM_INSERTS} = 0.01)")

    op.create_table(
        "structure_elements",
        sa.Column("structure_id", sa.Integer(), nullable=False),
        sa.Column("element", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["structure_id"],
            ["structures.id"],
            name=op.f("fk_structure_elements_structure_id_structures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("structure_id", "element", name=op.f("pk_structure_elements")),
    )
    op.execute(ELEMENTS_BACKFILL[dialect])
    op.create_index(
        "ix_structure_elements_element_structure_id",
        "structure_elements",
        ["element", "structure_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_structure_elements_element_structure_id", table_name="structure_elements")
    op.drop_table("structure_elements")

    op.execute("DROP VIEW candidates")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE topology_results RESET ({AUTOVACUUM_INSERTS})")
    op.drop_index("ix_topology_results_candidates", table_name="topology_results")
    current = _topology_results(new_nullable=False)
    with op.batch_alter_table("topology_results", copy_from=current) as batch:
        for name in NEW_COLUMNS:
            batch.drop_column(name)
    op.create_index(
        "ix_topology_results_candidate_gap",
        "topology_results",
        ["gap_ev"],
        postgresql_where=sa.text(CANDIDATE),
        sqlite_where=sa.text(CANDIDATE),
    )
    op.execute(VIEW_SQL_0002)
