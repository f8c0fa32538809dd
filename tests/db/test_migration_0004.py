"""Revision 0004 on a database holding screening results, both databases: the backfill gives
every row its copies and flag, the candidates view shows exactly what revision 0002's did,
and the downgrade gives back the old schema and view with the rows intact."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from hamdb.db import migrate
from hamdb.db.engine import build_engine

# Rows written as revision 0003's schema has them (plain SQL: the ORM is at head).
ROWS_AT_0003 = [
    "INSERT INTO basis_sets (id, name, shells, valence, sha256, created_at)"
    " VALUES (1, 'b', '{}', '{}', '', CURRENT_TIMESTAMP)",
    "INSERT INTO models (id, name, created_at) VALUES (1, 'm', CURRENT_TIMESTAMP)",
    "INSERT INTO model_versions (id, model_id, version, weights_uri, weights_sha256, config,"
    " created_at) VALUES (1, 1, 1, 'w', '', '{}', CURRENT_TIMESTAMP)",
    "INSERT INTO structures (id, reduced_formula, spacegroup_number, n_sites, elements,"
    " elements_key, structure_json, material_id, created_at) VALUES"
    " (1, 'Bi2Se3', 166, 5, '[\"Bi\", \"Se\"]', '-Bi-Se-', '{}', 1, CURRENT_TIMESTAMP),"
    " (2, 'Si', 227, 2, '[\"Si\"]', '-Si-', '{}', 2, CURRENT_TIMESTAMP)",
    "INSERT INTO hamiltonians (id, structure_id, basis_set_id, kind, spin, method,"
    " model_version_id, uri, sha256, n_orbitals, n_edges, n_electrons, uncertainty_ev,"
    " created_at) VALUES"
    " (1, 1, 1, 'predicted', 'soc', 'model:m@1', 1, 'x', '', 4, 2, 2, 0.01, CURRENT_TIMESTAMP),"
    " (2, 2, 1, 'predicted', 'soc', 'model:m@1', 1, 'x', '', 4, 2, 2, NULL, CURRENT_TIMESTAMP),"
    " (3, 1, 1, 'dft', 'soc', 'gpaw', NULL, 'x', '', 4, 2, 2, NULL, CURRENT_TIMESTAMP),"
    " (4, 2, 1, 'predicted', 'none', 'model:m@1', 1, 'x', '', 4, 2, 2, NULL, CURRENT_TIMESTAMP)",
    # Hamiltonian 1: screened twice (the newer wcc row is the view's) and a parity check;
    # 2: a metal; 3: the DFT check of structure 1; 4: not SOC, never in the view.
    "INSERT INTO topology_results (id, hamiltonian_id, method, settings_hash, dimension, z2,"
    " nu0, nu1, nu2, nu3, gap_ev, direct_gap_ev, n_occupied, converged, is_metal, error,"
    " created_at) VALUES"
    " (1, 1, 'wcc', 'old', 3, '[0,0,0,1]', 0, 0, 0, 1, 0.1, 0.1, 2, true, false, NULL,"
    "  CURRENT_TIMESTAMP),"
    " (2, 1, 'parity', 'old', 3, '[1,0,0,0]', 1, 0, 0, 0, 0.1, 0.1, 2, true, false, NULL,"
    "  CURRENT_TIMESTAMP),"
    " (3, 1, 'wcc', 'new', 3, '[1,0,0,0]', 1, 0, 0, 0, 0.2, 0.2, 2, true, false, NULL,"
    "  CURRENT_TIMESTAMP),"
    " (4, 2, 'wcc', 'new', 3, NULL, NULL, NULL, NULL, NULL, 0.0, 0.0, 2, false, true, 'metal',"
    "  CURRENT_TIMESTAMP),"
    " (5, 3, 'wcc', 'new', 3, '[1,0,0,0]', 1, 0, 0, 0, 0.3, 0.3, 2, true, false, NULL,"
    "  CURRENT_TIMESTAMP),"
    " (6, 4, 'wcc', 'new', 3, '[1,0,0,0]', 1, 0, 0, 0, 0.3, 0.3, 2, true, false, NULL,"
    "  CURRENT_TIMESTAMP)",
]


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = build_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql))]
    finally:
        engine.dispose()


def _view(url: str) -> list[tuple[Any, ...]]:
    return _query(url, "SELECT * FROM candidates ORDER BY hamiltonian_id")


def _autovacuum_options(url: str) -> list[str] | None:
    """topology_results' storage parameters on PostgreSQL; None on SQLite (it has none)."""
    if not url.startswith("postgresql"):
        return None
    sql = "SELECT reloptions FROM pg_class WHERE oid = 'topology_results'::regclass"
    return _query(url, sql)[0][0]


def _refuses_dimension_4(url: str, copies: bool) -> bool:
    """The CHECK constraints survived SQLite's table rebuild: a 4D result is refused."""
    columns, values = "", ""
    if copies:
        columns = ", reduced_formula, spacegroup_number, n_sites, elements_key, current_screen"
        values = ", 'Si', 227, 2, '-Si-', false"
    engine = build_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO topology_results (hamiltonian_id, method, settings_hash,"
                    f" dimension, converged, is_metal, created_at{columns}) VALUES"
                    f" (2, 'wcc', 'bad', 4, true, false, CURRENT_TIMESTAMP{values})"
                )
            )
    except sa.exc.IntegrityError:
        return True
    finally:
        engine.dispose()
    return False


def test_0004_backfills_and_the_view_is_unchanged_both_ways(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url, "0003")
    engine = build_engine(empty_db_url)
    try:
        with engine.begin() as connection:
            for statement in ROWS_AT_0003:
                connection.execute(sa.text(statement))
    finally:
        engine.dispose()
    before = _view(empty_db_url)
    assert [row[6] for row in before] == [1, 2]  # hamiltonian_id: the two predicted SOC ones

    assert migrate.upgrade(empty_db_url, "0004") == "0004"
    assert _view(empty_db_url) == before
    rows = _query(
        empty_db_url,
        "SELECT id, reduced_formula, spacegroup_number, n_sites, elements_key, current_screen"
        " FROM topology_results ORDER BY id",
    )
    assert [(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows] == [
        (1, "Bi2Se3", 166, 5, "-Bi-Se-", False),
        (2, "Bi2Se3", 166, 5, "-Bi-Se-", False),
        (3, "Bi2Se3", 166, 5, "-Bi-Se-", True),
        (4, "Si", 227, 2, "-Si-", True),
        (5, "Bi2Se3", 166, 5, "-Bi-Se-", False),
        (6, "Si", 227, 2, "-Si-", False),
    ]
    elements = "SELECT structure_id, element FROM structure_elements ORDER BY 1, 2"
    assert _query(empty_db_url, elements) == [(1, "Bi"), (1, "Se"), (2, "Si")]
    assert _refuses_dimension_4(empty_db_url, copies=True)
    on_postgresql = empty_db_url.startswith("postgresql")
    vacuum_often = ["autovacuum_vacuum_insert_scale_factor=0.01"] if on_postgresql else None
    assert _autovacuum_options(empty_db_url) == vacuum_often

    assert migrate.downgrade(empty_db_url, "0003") == "0003"
    assert _view(empty_db_url) == before
    engine = build_engine(empty_db_url)
    try:
        inspector = sa.inspect(engine)
        columns = {c["name"] for c in inspector.get_columns("topology_results")}
        indexes = {i["name"] for i in inspector.get_indexes("topology_results")}
        assert "structure_elements" not in inspector.get_table_names()
    finally:
        engine.dispose()
    assert not columns & {"reduced_formula", "current_screen"}
    assert "ix_topology_results_candidate_gap" in indexes
    assert len(_query(empty_db_url, "SELECT id FROM topology_results")) == 6
    assert _refuses_dimension_4(empty_db_url, copies=False)
    assert not _autovacuum_options(empty_db_url)
