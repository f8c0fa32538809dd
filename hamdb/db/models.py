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
    event,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column, relationship
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
#: The candidates view's `is_candidate` (a gap and a non-trivial, converged Z2).
_CANDIDATE = (
    "converged AND NOT is_metal AND gap_ev > 0 AND (nu0 = 1 OR nu1 = 1 OR nu2 = 1 OR nu3 = 1)"
)
#: SQL condition on topology_results' own columns: the rows the candidates view shows with
#: `is_candidate` true. Also, verbatim, the predicate of their partial index (migration 0004),
#: so a query on topology_results written with it can read that index.
VIEW_CANDIDATE = f"current_screen AND {_CANDIDATE}"
#: What that index carries besides its key gap_ev (PostgreSQL INCLUDE), so that screening
#: aggregates are index-only scans: what they filter and group candidates by, what z2_class
#: is computed from, `id` (`hamdb candidates` finds its rows by it), `hamiltonian_id`
#: (PostgreSQL still counts a LEFT JOIN's column as needed after dropping the unused join)
#: and `dft_topology_result_id` ("candidates without a DFT check", migration 0005).
_CANDIDATE_INCLUDE = (
    "id", "hamiltonian_id", "dimension", "nu0", "nu1", "nu2", "nu3", "converged", "is_metal",
    "spacegroup_number", "n_sites", "elements_key", "dft_topology_result_id",
)  # fmt: skip
#: Structure columns copied onto each topology result (migration 0004).
STRUCTURE_COPIES = ("reduced_formula", "spacegroup_number", "n_sites", "elements_key")


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
    "-Bi-Se-" (what the candidates view shows), and `structure_elements` one row per element,
    the index behind "contains Bi" (`has_element`), filled when the structure is inserted.
    The columns never change after the insert: topology results keep copies of some of them.
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
        """SQL condition "this structure contains `symbol`": an index lookup on both databases.

        `id IN (SELECT structure_id FROM structure_elements WHERE element = :symbol)`, where
        a LIKE '%-Bi-%' on elements_key would read every structure.
        """
        return cls.id.in_(
            select(StructureElementRow.structure_id).where(StructureElementRow.element == symbol)
        )

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


class StructureElementRow(Base):
    """One element of one structure (migration 0004): "structures containing Bi" by index.

    Written with the structure (`_index_elements` below, on every ORM insert of a
    StructureRow) from its `elements`; the (element, structure_id) index answers
    `StructureRow.has_element` without reading the structures.
    """

    __tablename__ = "structure_elements"
    __table_args__ = (
        Index("ix_structure_elements_element_structure_id", "element", "structure_id"),
    )

    structure_id: Mapped[int] = mapped_column(
        ForeignKey("structures.id", ondelete="CASCADE"), primary_key=True
    )
    element: Mapped[str] = mapped_column(String(16), primary_key=True)


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

    Denormalised for the candidates view (migrations 0004, 0005), so that screening queries
    over every candidate read one small index instead of joining four tables per row:
    - `reduced_formula`, `spacegroup_number`, `n_sites`, `elements_key`: copies of the
      Hamiltonian's structure (which never changes after its insert);
    - `current_screen`: true on the newest 'wcc' row of a predicted SOC Hamiltonian, the one
      row of it the view shows; false on every other row (parity, older settings, DFT).
    - `dft_topology_result_id` (migration 0005), on a `current_screen` row only: the DFT
      check of its structure, i.e. the newest 'wcc' result of the structure's newest DFT SOC
      Hamiltonian that has one; NULL while there is none, and on every other row. The view's
      `dft_*` columns follow it, so "candidates without a DFT check" is a column test of the
      candidates' index, not a DFT lookup per candidate.
    All are set on every ORM insert by the listeners of hamdb.db.screening_columns (the
    screen, `hamdb verify` and tests all insert through the ORM), whichever of a prediction's
    and its DFT check's results is written first; a row written with raw SQL must set them
    itself. Deleting a DFT result (or its Hamiltonian) empties the pointers to it (ON DELETE
    SET NULL) even where an older DFT check remains; hamdb itself never deletes one.
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
        # Migration 0005: the pointers to a DFT result, found when it is deleted (SET NULL).
        Index(
            "ix_topology_results_dft_topology_result_id",
            "dft_topology_result_id",
            postgresql_where=text("dft_topology_result_id IS NOT NULL"),
            sqlite_where=text("dft_topology_result_id IS NOT NULL"),
        ),
        # Migration 0004 (rebuilt by 0005 to carry the DFT pointer): the candidates of the
        # view by gap, covering (on PostgreSQL) what screening aggregates group and filter
        # by, so they are index-only scans of ~3% of the rows.
        Index(
            "ix_topology_results_candidates",
            "gap_ev",
            postgresql_include=list(_CANDIDATE_INCLUDE),
            postgresql_where=text(VIEW_CANDIDATE),
            sqlite_where=text(VIEW_CANDIDATE),
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
    reduced_formula: Mapped[str] = mapped_column(String(128))
    spacegroup_number: Mapped[int] = mapped_column(Integer)
    n_sites: Mapped[int] = mapped_column(Integer)
    elements_key: Mapped[str] = mapped_column(String(512))
    current_screen: Mapped[bool] = mapped_column(Boolean, default=False)
    dft_topology_result_id: Mapped[int | None] = mapped_column(
        ForeignKey("topology_results.id", ondelete="SET NULL")
    )

    hamiltonian: Mapped[HamiltonianRow] = relationship()


@event.listens_for(StructureRow, "after_insert")
def _index_elements(_mapper: Mapper[Any], connection: Connection, row: StructureRow) -> None:
    """Write the structure's `structure_elements` rows in the same flush as the structure.

    ORM inserts only; a bulk insert of structures writes them itself (as ingest does).
    """
    connection.execute(
        insert(StructureElementRow.__table__),
        [{"structure_id": row.id, "element": element} for element in sorted(set(row.elements))],
    )


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
    StructureElementRow,
    BasisSetRow,
    ModelRow,
    ModelVersionRow,
    ModelAliasRow,
    HamiltonianRow,
    PredictionJobRow,
    TopologyResultRow,
    DftRunRow,
)


# The listeners that fill topology_results' screening columns live in their own module; it
# imports this one, which is complete by now.
from hamdb.db import screening_columns as _screening_columns  # noqa: E402, F401
