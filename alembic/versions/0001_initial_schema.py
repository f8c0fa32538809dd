"""Initial schema: every table of DESIGN.md §4, identical on SQLite and PostgreSQL.

Revision ID: 0001
Revises:
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

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "basis_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("shells", JSON, nullable=False),
        sa.Column("valence", JSON, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_basis_sets")),
        sa.UniqueConstraint("name", name=op.f("uq_basis_sets_name")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", name=op.f("uq_models_name")),
    )
    op.create_table(
        "structures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reduced_formula", sa.String(length=128), nullable=False),
        sa.Column("spacegroup_number", sa.Integer(), nullable=False),
        sa.Column("n_sites", sa.Integer(), nullable=False),
        sa.Column("elements", JSON, nullable=False),
        sa.Column("elements_key", sa.String(length=512), nullable=False),
        sa.Column("structure_json", JSON, nullable=False),
        sa.Column("material_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("n_sites > 0", name=op.f("ck_structures_n_sites_positive")),
        sa.CheckConstraint(
            "spacegroup_number BETWEEN 1 AND 230", name=op.f("ck_structures_spacegroup_number")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_structures")),
    )
    op.create_index(
        "ix_structures_formula_spacegroup", "structures", ["reduced_formula", "spacegroup_number"]
    )
    op.create_index(op.f("ix_structures_material_id"), "structures", ["material_id"])
    op.create_index(op.f("ix_structures_n_sites"), "structures", ["n_sites"])
    op.create_index(op.f("ix_structures_spacegroup_number"), "structures", ["spacegroup_number"])
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("weights_uri", sa.String(length=1024), nullable=False),
        sa.Column("weights_sha256", sa.String(length=64), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("training_data", JSON, nullable=True),
        sa.Column("metrics", JSON, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_model_versions_version_positive")),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_versions_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("model_id", "version", name=op.f("uq_model_versions_model_id_version")),
    )
    op.create_table(
        "structure_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("structure_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("source_id", sa.String(length=512), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["structure_id"],
            ["structures.id"],
            name=op.f("fk_structure_sources_structure_id_structures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_structure_sources")),
        sa.UniqueConstraint(
            "source", "source_id", name=op.f("uq_structure_sources_source_source_id")
        ),
    )
    op.create_index(
        op.f("ix_structure_sources_structure_id"), "structure_sources", ["structure_id"]
    )
    op.create_table(
        "hamiltonians",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("structure_id", sa.Integer(), nullable=False),
        sa.Column("basis_set_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("spin", sa.String(length=8), nullable=False),
        sa.Column("method", sa.String(length=256), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("uri", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("n_orbitals", sa.Integer(), nullable=False),
        sa.Column("n_edges", sa.Integer(), nullable=False),
        sa.Column("n_electrons", sa.Float(), nullable=False),
        sa.Column("fermi_level_ev", sa.Float(), nullable=True),
        sa.Column("settings", JSON, nullable=True),
        sa.Column("uncertainty_ev", sa.Float(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "(kind = 'dft' AND model_version_id IS NULL) OR (kind = 'predicted' AND model_version_id IS NOT NULL)",
            name=op.f("ck_hamiltonians_kind_model_version"),
        ),
        sa.CheckConstraint("kind IN ('dft', 'predicted')", name=op.f("ck_hamiltonians_kind")),
        sa.CheckConstraint("spin IN ('none', 'soc')", name=op.f("ck_hamiltonians_spin")),
        sa.CheckConstraint("n_edges > 0", name=op.f("ck_hamiltonians_n_edges_positive")),
        sa.CheckConstraint("n_orbitals > 0", name=op.f("ck_hamiltonians_n_orbitals_positive")),
        sa.ForeignKeyConstraint(
            ["basis_set_id"],
            ["basis_sets.id"],
            name=op.f("fk_hamiltonians_basis_set_id_basis_sets"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_hamiltonians_model_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["structure_id"],
            ["structures.id"],
            name=op.f("fk_hamiltonians_structure_id_structures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hamiltonians")),
        sa.UniqueConstraint(
            "structure_id",
            "kind",
            "spin",
            "method",
            name=op.f("uq_hamiltonians_structure_id_kind_spin_method"),
        ),
    )
    op.create_index(op.f("ix_hamiltonians_basis_set_id"), "hamiltonians", ["basis_set_id"])
    op.create_index("ix_hamiltonians_kind_spin", "hamiltonians", ["kind", "spin"])
    op.create_index(op.f("ix_hamiltonians_model_version_id"), "hamiltonians", ["model_version_id"])
    op.create_index(op.f("ix_hamiltonians_sha256"), "hamiltonians", ["sha256"])
    op.create_index(op.f("ix_hamiltonians_structure_id"), "hamiltonians", ["structure_id"])
    op.create_table(
        "model_aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_aliases_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_aliases_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_aliases")),
        sa.UniqueConstraint("model_id", "alias", name=op.f("uq_model_aliases_model_id_alias")),
    )
    op.create_index(op.f("ix_model_aliases_version_id"), "model_aliases", ["version_id"])
    op.create_table(
        "prediction_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("structure_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("worker_id", sa.String(length=256), nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("hamiltonian_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'claimed', 'done', 'failed')",
            name=op.f("ck_prediction_jobs_status"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_prediction_jobs_attempts_nonnegative")),
        sa.ForeignKeyConstraint(
            ["hamiltonian_id"],
            ["hamiltonians.id"],
            name=op.f("fk_prediction_jobs_hamiltonian_id_hamiltonians"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_prediction_jobs_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["structure_id"],
            ["structures.id"],
            name=op.f("fk_prediction_jobs_structure_id_structures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction_jobs")),
        sa.UniqueConstraint(
            "structure_id",
            "model_version_id",
            name=op.f("uq_prediction_jobs_structure_id_model_version_id"),
        ),
    )
    op.create_index(
        op.f("ix_prediction_jobs_hamiltonian_id"), "prediction_jobs", ["hamiltonian_id"]
    )
    op.create_index(
        op.f("ix_prediction_jobs_model_version_id"), "prediction_jobs", ["model_version_id"]
    )
    op.create_index(
        "ix_prediction_jobs_status_lease", "prediction_jobs", ["status", "lease_expires_at"]
    )
    op.create_table(
        "topology_results",
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
        sa.CheckConstraint("method IN ('wcc', 'parity')", name=op.f("ck_topology_results_method")),
        sa.CheckConstraint(
            "(nu0 IS NULL OR nu0 IN (0, 1)) AND (nu1 IS NULL OR nu1 IN (0, 1)) AND (nu2 IS NULL OR nu2 IN (0, 1)) AND (nu3 IS NULL OR nu3 IN (0, 1))",
            name=op.f("ck_topology_results_nu_binary"),
        ),
        sa.CheckConstraint("dimension IN (2, 3)", name=op.f("ck_topology_results_dimension")),
        sa.ForeignKeyConstraint(
            ["hamiltonian_id"],
            ["hamiltonians.id"],
            name=op.f("fk_topology_results_hamiltonian_id_hamiltonians"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topology_results")),
        sa.UniqueConstraint(
            "hamiltonian_id",
            "method",
            "settings_hash",
            name=op.f("uq_topology_results_hamiltonian_id_method_settings_hash"),
        ),
    )
    op.create_index(op.f("ix_topology_results_gap_ev"), "topology_results", ["gap_ev"])
    op.create_index("ix_topology_results_nu0_gap", "topology_results", ["nu0", "gap_ev"])


def downgrade() -> None:
    # Dropping a table drops its indexes and constraints; children before parents.
    for table in (
        "topology_results",
        "prediction_jobs",
        "model_aliases",
        "hamiltonians",
        "structure_sources",
        "model_versions",
        "structures",
        "models",
        "basis_sets",
    ):
        op.drop_table(table)
