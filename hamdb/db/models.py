"""The relational schema of DESIGN.md §4 as a typed SQLAlchemy 2 ORM.

The same tables on SQLite and PostgreSQL: JSON columns become JSONB on PostgreSQL through a
variant type, timestamps are timezone-aware UTC (stored as UTC on both), enumerations are
CHECK constraints (portable, and a later migration can widen them without an ALTER TYPE), and
every constraint and index is named by `NAMING_CONVENTION` so migrations can refer to it.

The schema itself is frozen in `alembic/versions/`; this module must agree with the migrated
schema, which tests/db/test_migrate.py checks with alembic's compare on both databases.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSON everywhere, JSONB on PostgreSQL (indexable, compact, compared by value).
JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")

HAMILTONIAN_KINDS = ("dft", "predicted")
SPIN_KINDS = ("none", "soc")
JOB_STATUSES = ("pending", "claimed", "done", "failed")
TOPOLOGY_METHODS = ("wcc", "parity")
#: The candidates view's `is_candidate` (a gap and a non-trivial, converged Z2), indexed.
_CANDIDATE = (
    "converged AND NOT is_metal AND gap_ev > 0 AND (nu0 = 1 OR nu1 = 1 OR nu2 = 1 OR nu3 = 1)"
)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the only kind of timestamp hamdb stores)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp column that takes and returns timezone-aware UTC datetimes.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so values are converted to UTC
    and stored without an offset, which keeps them sortable as text. A naive datetime is
    refused: its meaning depends on the machine that wrote it.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: hamdb stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    """SQL text `column IN ('a', 'b')` for a CHECK constraint over fixed, trusted literals."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


def elements_key(elements: Iterable[str]) -> str:
    """The `structures.elements_key` of a set of elements: sorted, deduplicated, "-Bi-Se-"."""
    return "-" + "-".join(sorted(set(elements))) + "-"


class StructureRow(Base):
    """One distinct crystal structure (DESIGN.md §4: "the same structure" is stored once).

    `elements` is the sorted list of element symbols; `elements_key` the same joined as
    "-Bi-Se-" so that "contains Bi" is the portable filter `elements_key LIKE '%-Bi-%'`.
    `material_id` groups structures that are the same material (strained or relaxed variants);
    by convention it is the id of the group's first structure, so it may be NULL only inside
    the transaction that inserts that first structure.
    """

    __tablename__ = "structures"
    __table_args__ = (
        CheckConstraint("spacegroup_number BETWEEN 1 AND 230", name="spacegroup_number"),
        CheckConstraint("n_sites > 0", name="n_sites_positive"),
        Index("ix_structures_formula_spacegroup", "reduced_formula", "spacegroup_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reduced_formula: Mapped[str] = mapped_column(String(128))
    spacegroup_number: Mapped[int] = mapped_column(Integer, index=True)
    n_sites: Mapped[int] = mapped_column(Integer, index=True)
    elements: Mapped[list[str]] = mapped_column(JSONType)
    elements_key: Mapped[str] = mapped_column(String(512))
    structure_json: Mapped[dict[str, Any]] = mapped_column(JSONType)
    material_id: Mapped[int | None] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    sources: Mapped[list[StructureSourceRow]] = relationship(
        back_populates="structure", cascade="all, delete-orphan", passive_deletes=True
    )

    @classmethod
    def has_element(cls, symbol: str) -> ColumnElement[bool]:
        """SQL condition "this structure contains `symbol`" (a bound LIKE on elements_key)."""
        return cls.elements_key.like(f"%-{symbol}-%")

    def __repr__(self) -> str:
        return (
            f"StructureRow(id={self.id}, {self.reduced_formula}, sg={self.spacegroup_number}, "
            f"n_sites={self.n_sites}, material_id={self.material_id})"
        )


class StructureSourceRow(Base):
    """Where a copy of a structure came from: a file or dataset and the id inside it.

    Every copy is recorded, also one that matched an existing structure, so re-ingesting the
    same file is recognised by (source, source_id) and adds nothing.
    """

    __tablename__ = "structure_sources"
    __table_args__ = (UniqueConstraint("source", "source_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    structure_id: Mapped[int] = mapped_column(
        ForeignKey("structures.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(1024))
    source_id: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    structure: Mapped[StructureRow] = relationship(back_populates="sources")


class BasisSetRow(Base):
    """An atomic-orbital basis: `shells` {element: [l, ...]}, `valence` {element: electrons}.

    `sha256` hashes the canonical definition so two bases of the same name never mix.
    """

    __tablename__ = "basis_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    shells: Mapped[dict[str, Any]] = mapped_column(JSONType)
    valence: Mapped[dict[str, Any]] = mapped_column(JSONType)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HamiltonianRow(Base):
    """One stored Hamiltonian: the HDF5 file at `uri` (content hash `sha256`) and its origin.

    kind 'dft' carries the DFT method (e.g. 'gpaw-lcao-pbe-dzp'); kind 'predicted' carries the
    model version (`model_version_id`, and method 'model:<name>@<version>') and may carry an
    `uncertainty_ev`. Energies in eV; `n_electrons` are the valence electrons of the cell in
    this basis.
    """

    __tablename__ = "hamiltonians"
    __table_args__ = (
        UniqueConstraint("structure_id", "kind", "spin", "method"),
        CheckConstraint(_in("kind", HAMILTONIAN_KINDS), name="kind"),
        CheckConstraint(_in("spin", SPIN_KINDS), name="spin"),
        CheckConstraint(
            "(kind = 'dft' AND model_version_id IS NULL)"
            " OR (kind = 'predicted' AND model_version_id IS NOT NULL)",
            name="kind_model_version",
        ),
        CheckConstraint("n_orbitals > 0", name="n_orbitals_positive"),
        CheckConstraint("n_edges > 0", name="n_edges_positive"),
        Index("ix_hamiltonians_kind_spin", "kind", "spin"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    structure_id: Mapped[int] = mapped_column(
        ForeignKey("structures.id", ondelete="CASCADE"), index=True
    )
    basis_set_id: Mapped[int] = mapped_column(
        ForeignKey("basis_sets.id", ondelete="RESTRICT"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    spin: Mapped[str] = mapped_column(String(8))
    method: Mapped[str] = mapped_column(String(256))
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT"), index=True
    )
    uri: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    n_orbitals: Mapped[int] = mapped_column(Integer)
    n_edges: Mapped[int] = mapped_column(Integer)
    n_electrons: Mapped[float] = mapped_column(Float)
    fermi_level_ev: Mapped[float | None] = mapped_column(Float)
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    uncertainty_ev: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    structure: Mapped[StructureRow] = relationship()
    basis_set: Mapped[BasisSetRow] = relationship()
    model_version: Mapped[ModelVersionRow | None] = relationship()


class ModelRow(Base):
    """A named model (registry entry); its trained weights are its `ModelVersionRow`s."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    versions: Mapped[list[ModelVersionRow]] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True
    )


class ModelVersionRow(Base):
    """Version `version` (1, 2, ...) of a model: weights file + hash, config, data, metrics."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    weights_uri: Mapped[str] = mapped_column(String(1024))
    weights_sha256: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    training_data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    model: Mapped[ModelRow] = relationship(back_populates="versions")


class ModelAliasRow(Base):
    """A movable name such as 'production' pointing at one version of a model.

    The version must belong to the same model; the registry code checks that when it sets
    an alias.
    """

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    version: Mapped[ModelVersionRow] = relationship()


class PredictionJobRow(Base):
    """A (structure, model version) prediction to compute; claimed by workers with a lease.

    A worker claims a 'pending' row (or a 'claimed' one whose `lease_expires_at` has passed),
    sets `worker_id` and the lease, renews `heartbeat_at`, and on success sets 'done' and
    `hamiltonian_id` in the same transaction as the Hamiltonian row.
    """

    __tablename__ = "prediction_jobs"
    __table_args__ = (
        UniqueConstraint("structure_id", "model_version_id"),
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        CheckConstraint("attempts >= 0", name="attempts_nonnegative"),
        Index("ix_prediction_jobs_status_lease", "status", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structures.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="pending")
    worker_id: Mapped[str | None] = mapped_column(String(256))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    hamiltonian_id: Mapped[int | None] = mapped_column(
        ForeignKey("hamiltonians.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TopologyResultRow(Base):
    """A Z2 invariant computed from one Hamiltonian with one method and settings.

    `z2` is [ν] in 2D or [ν0, ν1, ν2, ν3] in 3D; `nu0..nu3` repeat it as indexed columns
    (`nu0` holds ν in 2D). Gaps in eV. `settings_hash` is the sha256 of the canonical settings
    JSON, so a result is computed once per settings. A failed computation keeps its `error`.
    """

    __tablename__ = "topology_results"
    __table_args__ = (
        UniqueConstraint("hamiltonian_id", "method", "settings_hash"),
        CheckConstraint(_in("method", TOPOLOGY_METHODS), name="method"),
        CheckConstraint("dimension IN (2, 3)", name="dimension"),
        CheckConstraint(
            "(nu0 IS NULL OR nu0 IN (0, 1)) AND (nu1 IS NULL OR nu1 IN (0, 1))"
            " AND (nu2 IS NULL OR nu2 IN (0, 1)) AND (nu3 IS NULL OR nu3 IN (0, 1))",
            name="nu_binary",
        ),
        Index("ix_topology_results_nu0_gap", "nu0", "gap_ev"),
        # Created by migration 0002 with the `candidates` view: the rare candidates by gap.
        Index(
            "ix_topology_results_candidate_gap",
            "gap_ev",
            postgresql_where=text(_CANDIDATE),
            sqlite_where=text(_CANDIDATE),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hamiltonian_id: Mapped[int] = mapped_column(ForeignKey("hamiltonians.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(16))
    settings_hash: Mapped[str] = mapped_column(String(64))
    dimension: Mapped[int] = mapped_column(Integer)
    z2: Mapped[list[int] | None] = mapped_column(JSONType)
    nu0: Mapped[int | None] = mapped_column(Integer)
    nu1: Mapped[int | None] = mapped_column(Integer)
    nu2: Mapped[int | None] = mapped_column(Integer)
    nu3: Mapped[int | None] = mapped_column(Integer)
    gap_ev: Mapped[float | None] = mapped_column(Float, index=True)
    direct_gap_ev: Mapped[float | None] = mapped_column(Float)
    n_occupied: Mapped[int | None] = mapped_column(Integer)
    converged: Mapped[bool] = mapped_column(Boolean, default=False)
    is_metal: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    hamiltonian: Mapped[HamiltonianRow] = relationship()


DFT_RUN_STATUSES = ("running", "done", "failed")


class DftRunRow(Base):
    """One reference-DFT run of a structure with one method (issue 5, migration 0003).

    status 'running' while a worker computes it (a row left 'running' by a killed worker is
    taken again), 'done' once both Hamiltonians are stored (same transaction), 'failed' with
    the one-line reason in `error`. `check` holds the eigenvalue deviations (eV) against the
    DFT code at off-mesh k when the run was checked; `timings` the stage wall times (s).
    """

    __tablename__ = "dft_runs"
    __table_args__ = (
        UniqueConstraint("structure_id", "method"),
        CheckConstraint(_in("status", DFT_RUN_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    structure_id: Mapped[int] = mapped_column(
        ForeignKey("structures.id", ondelete="CASCADE"), index=True
    )
    method: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="running")
    error: Mapped[str | None] = mapped_column(Text)
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    check: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    structure: Mapped[StructureRow] = relationship()


#: Every table, in an order that respects foreign keys (for row counts and clean-up).
TABLES: tuple[type[Base], ...] = (
    StructureRow,
    StructureSourceRow,
    BasisSetRow,
    ModelRow,
    ModelVersionRow,
    ModelAliasRow,
    HamiltonianRow,
    PredictionJobRow,
    TopologyResultRow,
    DftRunRow,
)
