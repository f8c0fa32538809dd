"""The DFT check of each screened prediction, kept on its topology result at write time.

"Candidates without a DFT check yet" (`WHERE is_candidate AND dft_topology_result_id IS
NULL`) counted over every candidate took 1.2-1.5 s on 1M rows: through revision 0004's view,
`dft_topology_result_id` is a correlated subquery (the structure's DFT SOC Hamiltonians,
their 'wcc' results, newest first) run once per candidate. Now:

- topology_results.dft_topology_result_id: on a `current_screen` row, the id of that DFT
  check (the newest 'wcc' result of the structure's newest DFT SOC Hamiltonian that has one),
  NULL while there is none and on every other row. hamdb.db.screening_columns keeps it on
  every ORM insert, whichever of the prediction's and the DFT check's results is written
  first. A foreign key to topology_results (ON DELETE SET NULL, found through a partial
  index of the non-NULL pointers) keeps it from dangling.
- the view's `dft_topology_result_id` is that column and its other `dft_*` columns come from
  a LEFT JOIN on it, so the view's columns and rows are revision 0004's (the backfill computes
  the pointer with 0004's subquery) while a filter on the pointer is a column test.
- the candidates' covering index is rebuilt with the pointer among its INCLUDE columns: the
  count is again an index-only scan.

The backfill touches only the rows of structures that have a DFT check (a window query over
the DFT results, one UPDATE ... FROM), and adding a nullable column rewrites nothing on
PostgreSQL. On SQLite the foreign key needs a table rebuild (batch copy from revision 0004's
frozen definition of the table), so the view is dropped first and created again after.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import sqlalchemy as sa
from alembic import context, op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMN = "dft_topology_result_id"
FOREIGN_KEY = "fk_topology_results_dft_topology_result_id_topology_results"
POINTER_INDEX = "ix_topology_results_dft_topology_result_id"
CANDIDATES_INDEX = "ix_topology_results_candidates"

CANDIDATE = (
    "converged AND NOT is_metal AND gap_ev > 0 AND (nu0 = 1 OR nu1 = 1 OR nu2 = 1 OR nu3 = 1)"
)
VIEW_CANDIDATE = f"current_screen AND {CANDIDATE}"
#: Revision 0004's INCLUDE columns of the candidates' index and the DFT pointer.
INCLUDE = [
    "id", "hamiltonian_id", "dimension", "nu0", "nu1", "nu2", "nu3", "converged", "is_metal",
    "spacegroup_number", "n_sites", "elements_key", COLUMN,
]  # fmt: skip

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

# The columns and their order are revision 0002's; only the DFT check's source changed.
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
    tr.id AS topology_result_id,
    tr.method AS topology_method,
    tr.dimension,
    tr.nu0, tr.nu1, tr.nu2, tr.nu3,
    tr.gap_ev,
    tr.direct_gap_ev,
    tr.converged,
    tr.is_metal,
    {_Z2_CLASS.format(t="tr")} AS z2_class,
    {_IS_CANDIDATE.format(t="tr")} AS is_candidate,
    tr.created_at AS screened_at,
    dtr.hamiltonian_id AS dft_hamiltonian_id,
    tr.dft_topology_result_id,
    dtr.gap_ev AS dft_gap_ev,
    CASE WHEN dtr.id IS NULL THEN NULL ELSE {_Z2_CLASS.format(t="dtr")} END AS dft_z2_class,
    CASE WHEN dtr.id IS NULL THEN NULL
         WHEN ({_Z2_CLASS.format(t="tr")}) = 'unknown'
              OR ({_Z2_CLASS.format(t="dtr")}) = 'unknown' THEN NULL
         ELSE ({_Z2_CLASS.format(t="tr")}) = ({_Z2_CLASS.format(t="dtr")}) END AS dft_agrees
FROM topology_results tr
LEFT JOIN hamiltonians h ON h.id = tr.hamiltonian_id
LEFT JOIN structures s ON s.id = h.structure_id
LEFT JOIN model_versions mv ON mv.id = h.model_version_id
LEFT JOIN models m ON m.id = mv.model_id
LEFT JOIN topology_results dtr ON dtr.id = tr.dft_topology_result_id
WHERE tr.current_screen
"""

# Revision 0004's view computed, per row, the newest 'wcc' result of the structure's newest
# DFT SOC Hamiltonian (ORDER BY dh.id DESC, dtr0.id DESC LIMIT 1): here rank 1 of each
# structure, written on its current predicted rows. UPDATE ... FROM runs on PostgreSQL and on
# SQLite >= 3.33, window functions on SQLite >= 3.25.
BACKFILL = """
WITH dft_checks AS (
    SELECT dh.structure_id, dtr0.id AS result_id,
           row_number() OVER (PARTITION BY dh.structure_id
                              ORDER BY dh.id DESC, dtr0.id DESC) AS rank
    FROM hamiltonians dh
    JOIN topology_results dtr0 ON dtr0.hamiltonian_id = dh.id AND dtr0.method = 'wcc'
    WHERE dh.kind = 'dft' AND dh.spin = 'soc'
)
UPDATE topology_results SET dft_topology_result_id = dft_checks.result_id
FROM hamiltonians h JOIN dft_checks ON dft_checks.structure_id = h.structure_id
WHERE h.id = topology_results.hamiltonian_id AND topology_results.current_screen
  AND dft_checks.rank = 1
"""


def _revision_0004() -> ModuleType:
    """Revision 0004's module: its frozen table definition, index and view for the batch
    copy and the downgrade (frozen like this file; never the live ORM)."""
    return context.script.get_revision("0004").module


def _pointer() -> sa.Column:
    return sa.Column(COLUMN, sa.Integer(), nullable=True)


def _foreign_key() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [COLUMN], ["topology_results.id"], name=FOREIGN_KEY, ondelete="SET NULL"
    )


def upgrade() -> None:
    op.execute("DROP VIEW candidates")
    op.drop_index(CANDIDATES_INDEX, table_name="topology_results")
    table_0004 = _revision_0004()._topology_results(new_nullable=False)
    with op.batch_alter_table("topology_results", copy_from=table_0004) as batch:
        batch.add_column(_pointer())
        batch.create_foreign_key(
            FOREIGN_KEY, "topology_results", [COLUMN], ["id"], ondelete="SET NULL"
        )
    op.execute(BACKFILL)
    where = sa.text(f"{COLUMN} IS NOT NULL")
    op.create_index(
        POINTER_INDEX, "topology_results", [COLUMN], postgresql_where=where, sqlite_where=where
    )
    op.create_index(
        CANDIDATES_INDEX,
        "topology_results",
        ["gap_ev"],
        postgresql_include=INCLUDE,
        postgresql_where=sa.text(VIEW_CANDIDATE),
        sqlite_where=sa.text(VIEW_CANDIDATE),
    )
    op.execute(VIEW_SQL)


def downgrade() -> None:
    previous = _revision_0004()
    op.execute("DROP VIEW candidates")
    op.drop_index(CANDIDATES_INDEX, table_name="topology_results")
    op.drop_index(POINTER_INDEX, table_name="topology_results")
    current = previous._topology_results(new_nullable=False)
    current.append_column(_pointer())
    current.append_constraint(_foreign_key())
    with op.batch_alter_table("topology_results", copy_from=current) as batch:
        batch.drop_constraint(FOREIGN_KEY, type_="foreignkey")
        batch.drop_column(COLUMN)
    op.create_index(
        CANDIDATES_INDEX,
        "topology_results",
        ["gap_ev"],
        postgresql_include=previous.INCLUDE,
        postgresql_where=sa.text(previous.VIEW_CANDIDATE),
        sqlite_where=sa.text(previous.VIEW_CANDIDATE),
    )
    op.execute(previous.VIEW_SQL)
