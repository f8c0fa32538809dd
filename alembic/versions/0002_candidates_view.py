"""The `candidates` view and the indexes screening queries need.

One row per screened predicted SOC Hamiltonian: the structure, the model version, the
prediction's uncertainty, its preferred topology result (the newest 'wcc' result, else the
newest 'parity' one), a `z2_class` ('strong' | 'weak' | '2d' | 'trivial' | 'metal' |
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

# A topology result is "preferred" for its Hamiltonian when no other result ranks above it:
# 'wcc' above 'parity' (WCC applies to every crystal, parity only to centrosymmetric ones), then
# the newest. Results with an `error` stay visible: the screen writes one for a metal, a
# non-converged flow or a WCC/parity disagreement, and their z2 is NULL ('unknown'), so they
# are never candidates but count in `hamdb report`.
_PREFERRED = """NOT EXISTS (
        SELECT 1 FROM topology_results better
        WHERE better.hamiltonian_id = {t}.hamiltonian_id
          AND ((better.method = 'wcc' AND {t}.method <> 'wcc')
               OR (better.method = {t}.method AND better.id > {t}.id)))"""

_Z2_CLASS = """CASE
        WHEN {t}.is_metal THEN 'metal'
        WHEN NOT {t}.converged OR {t}.nu0 IS NULL THEN 'unknown'
        WHEN {t}.dimension = 2 THEN CASE WHEN {t}.nu0 = 1 THEN '2d' ELSE 'trivial' END
        WHEN {t}.nu0 = 1 THEN 'strong'
        WHEN {t}.nu1 = 1 OR {t}.nu2 = 1 OR {t}.nu3 = 1 THEN 'weak'
        ELSE 'trivial' END"""

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
    CASE WHEN tr.converged AND NOT tr.is_metal AND tr.gap_ev > 0
              AND (tr.nu0 = 1 OR tr.nu1 = 1 OR tr.nu2 = 1 OR tr.nu3 = 1)
         THEN 1 ELSE 0 END AS is_candidate,
    tr.created_at AS screened_at,
    dh.id AS dft_hamiltonian_id,
    dtr.id AS dft_topology_result_id,
    dtr.gap_ev AS dft_gap_ev,
    CASE WHEN dtr.id IS NULL THEN NULL ELSE {_Z2_CLASS.format(t="dtr")} END AS dft_z2_class,
    CASE WHEN dtr.id IS NULL THEN NULL
         WHEN ({_Z2_CLASS.format(t="tr")}) = ({_Z2_CLASS.format(t="dtr")}) THEN 1
         ELSE 0 END AS dft_agrees
FROM topology_results tr
JOIN hamiltonians h ON h.id = tr.hamiltonian_id AND h.kind = 'predicted' AND h.spin = 'soc'
JOIN structures s ON s.id = h.structure_id
JOIN model_versions mv ON mv.id = h.model_version_id
JOIN models m ON m.id = mv.model_id
LEFT JOIN hamiltonians dh
    ON dh.structure_id = s.id AND dh.kind = 'dft' AND dh.spin = 'soc'
    AND NOT EXISTS (
        SELECT 1 FROM hamiltonians newer
        WHERE newer.structure_id = s.id AND newer.kind = 'dft' AND newer.spin = 'soc'
          AND newer.id > dh.id)
LEFT JOIN topology_results dtr
    ON dtr.hamiltonian_id = dh.id AND {_PREFERRED.format(t="dtr")}
WHERE {_PREFERRED.format(t="tr")}
"""

# Screening reads few rows of large tables. Results per Hamiltonian and method, and a
# structure's DFT Hamiltonians, are served by the unique constraints' indexes (their leading
# columns); what is missing is the non-trivial results by gap: a partial index, small because
# topological insulators are rare.
NONTRIVIAL = "nu0 = 1 OR nu1 = 1 OR nu2 = 1 OR nu3 = 1"


def upgrade() -> None:
    import sqlalchemy as sa

    op.create_index(
        "ix_topology_results_nontrivial_gap",
        "topology_results",
        ["gap_ev"],
        postgresql_where=sa.text(NONTRIVIAL),
        sqlite_where=sa.text(NONTRIVIAL),
    )
    op.execute(VIEW_SQL)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS candidates")
    op.drop_index("ix_topology_results_nontrivial_gap", table_name="topology_results")
