"""The `candidates` view and the indexes screening queries need.

One row per screened predicted SOC Hamiltonian: the structure, the model version, the
prediction's uncertainty, its topology result (the newest 'wcc' row), a `z2_class` ('strong' | 'weak' | '2d' | 'trivial' | 'metal' |
'unknown'), `is_candidate` (a gap and a non-trivial, converged Z2) and, when the same structure
has a DFT SOC Hamiltonian with a topology result, that result and whether it agrees.

The view text is identical on SQLite and PostgreSQL. Note for later migrations on SQLite: a
batch (copy-and-rename) alteration of a table this view reads fails while the view exists;
drop the view first and recreate it (this file's VIEW_SQL) afterwards.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A Hamiltonian's topology result is its newest 'wcc' row: the screen (hamdb.topology.screening)
# always writes one, also for a metal, a failed analysis or a WCC/parity disagreement (error
# set, z2 NULL: 'unknown', never a candidate, but counted by `hamdb report`); a 'parity' row is
# a cross-check beside it. Several 'wcc' rows exist only after screening with other settings.
_NEWEST_WCC = """{t}.method = 'wcc' AND NOT EXISTS (
        SELECT 1 FROM topology_results newer
        WHERE newer.hamiltonian_id = {t}.hamiltonian_id AND newer.method = 'wcc'
          AND newer.id > {t}.id)"""

# The DFT check of a structure: the newest 'wcc' result of its newest DFT SOC Hamiltonian. A
# correlated scalar subquery: computed only for rows (and columns) a query asks for.
_DFT_RESULT = """(SELECT dtr0.id FROM hamiltonians dh
        JOIN topology_results dtr0 ON dtr0.hamiltonian_id = dh.id AND dtr0.method = 'wcc'
        WHERE dh.structure_id = s.id AND dh.kind = 'dft' AND dh.spin = 'soc'
        ORDER BY dh.id DESC, dtr0.id DESC
        LIMIT 1)"""

_Z2_CLASS = """CASE
        WHEN {t}.is_metal THEN 'metal'
        WHEN NOT {t}.converged OR {t}.nu0 IS NULL THEN 'unknown'
        WHEN {t}.dimension = 2 THEN CASE WHEN {t}.nu0 = 1 THEN '2d' ELSE 'trivial' END
        WHEN {t}.nu0 = 1 THEN 'strong'
        WHEN {t}.nu1 = 1 OR {t}.nu2 = 1 OR {t}.nu3 = 1 THEN 'weak'
        ELSE 'trivial' END"""

# is_candidate is a plain boolean expression (not a CASE), identical to the predicate of the
# partial index below, so `WHERE is_candidate` is answered from that small index.
CANDIDATE = (
    "converged AND NOT is_metal AND gap_ev > 0 AND (nu0 = 1 OR nu1 = 1 OR nu2 = 1 OR nu3 = 1)"
)
_IS_CANDIDATE = (
    "({t}.converged AND NOT {t}.is_metal AND {t}.gap_ev > 0"
    " AND ({t}.nu0 = 1 OR {t}.nu1 = 1 OR {t}.nu2 = 1 OR {t}.nu3 = 1))"
)

VIEW_SQL = f"""
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
    dtr.id AS dft_topology_result_id,
    dtr.gap_ev AS dft_gap_ev,
    CASE WHEN dtr.id IS NULL THEN NULL ELSE {_Z2_CLASS.format(t="dtr")} END AS dft_z2_class,
    CASE WHEN dtr.id IS NULL THEN NULL
         WHEN ({_Z2_CLASS.format(t="tr")}) = 'unknown'
              OR ({_Z2_CLASS.format(t="dtr")}) = 'unknown' THEN NULL
         ELSE ({_Z2_CLASS.format(t="tr")}) = ({_Z2_CLASS.format(t="dtr")}) END AS dft_agrees
FROM topology_results tr
JOIN hamiltonians h ON h.id = tr.hamiltonian_id AND h.kind = 'predicted' AND h.spin = 'soc'
JOIN structures s ON s.id = h.structure_id
JOIN model_versions mv ON mv.id = h.model_version_id
JOIN models m ON m.id = mv.model_id
LEFT JOIN topology_results dtr ON dtr.id = {_DFT_RESULT}
WHERE {_NEWEST_WCC.format(t="tr")}
"""


def upgrade() -> None:
    import sqlalchemy as sa

    # Screening reads few rows of large tables. Results per Hamiltonian and a structure's DFT
    # Hamiltonians are found through the unique constraints' indexes (leading columns); what
    # is missing is the candidates by gap: a partial index, small because topological
    # insulators are rare.
    op.create_index(
        "ix_topology_results_candidate_gap",
        "topology_results",
        ["gap_ev"],
        postgresql_where=sa.text(CANDIDATE),
        sqlite_where=sa.text(CANDIDATE),
    )
    op.execute(VIEW_SQL)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS candidates")
    op.drop_index("ix_topology_results_candidate_gap", table_name="topology_results")
