"""The `dft_runs` table: status, failure reason, timings and check of reference-DFT runs.

A run that crashes or does not converge is recorded here as 'failed' with its reason, so
`hamdb dft run --pending` moves on and a user can see why (issue 5).

Revision ID: 0003
Revises: 0002
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

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dft_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("structure_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("settings", JSON, nullable=True),
        sa.Column("timings", JSON, nullable=True),
        sa.Column("check", JSON, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'done', 'failed')", name=op.f("ck_dft_runs_status")
        ),
        sa.ForeignKeyConstraint(
            ["structure_id"], ["structures.id"],
            name=op.f("fk_dft_runs_structure_id_structures"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dft_runs")),
        sa.UniqueConstraint("structure_id", "method", name=op.f("uq_dft_runs_structure_id_method")),
    )
    op.create_index(op.f("ix_dft_runs_structure_id"), "dft_runs", ["structure_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_dft_runs_structure_id"), table_name="dft_runs")
    op.drop_table("dft_runs")
