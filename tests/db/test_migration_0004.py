"""Revisions 0004 and 0005 on a database holding screening results, both databases: the
backfills give every row its copies, flag and DFT-check pointer, the candidates view shows
exactly what revision 0002's did at every revision, and the downgrades give back the old
schemas and views with the rows intact."""

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


# More DFT checks (0005's backfill must pick what 0004's view picked): structure 1 gets a
# newer DFT SOC Hamiltonian (5) whose 'wcc' result (7) is the check, not result 5; a
# newest one (7) with only a parity result, which does not count; structure 2 a DFT SOC
# Hamiltonian with only a parity result and a non-SOC one with a 'wcc' result: no check.
MORE_DFT_AT_0003 = [
    "INSERT INTO hamiltonians (id, structure_id, basis_set_id, kind, spin, method,"
    " model_version_id, uri, sha256, n_orbitals, n_edges, n_electrons, uncertainty_ev,"
    " created_at) VALUES"
    " (5, 1, 1, 'dft', 'soc', 'gpaw-2', NULL, 'x', '', 4, 2, 2, NULL, CURRENT_TIMESTAMP),"
    " (6, 2, 1, 'dft', 'soc', 'gpaw', NULL, 'x', '', 4, 2, 2, NULL, CURRENT_TIMESTAMP),"
    " (7, 1, 1, 'dft', 'soc', 'gpaw-3', NULL, 'x', '', 4, 2, 2, NULL, CURRENT_TIMESTAMP),"
    " (8, 2, 1, 'dft', 'none', 'gpaw', NULL, 'x', '', 4, 2, 2, NULL, CURRENT_TIMESTAMP)",
    "INSERT INTO topology_results (id, hamiltonian_id, method, settings_hash, dimension, z2,"
    " nu0, nu1, nu2, nu3, gap_ev, direct_gap_ev, n_occupied, converged, is_metal, error,"
    " created_at) VALUES"
    " (7, 5, 'wcc', 'new', 3, '[0,0,0,0]', 0, 0, 0, 0, 0.25, 0.3, 2, true, false, NULL,"
    "  CURRENT_TIMESTAMP),"
    " (8, 6, 'parity', 'new', 3, '[1,0,0,0]', 1, 0, 0, 0, 0.3, 0.3, 2, true, false, NULL,"
    "  CURRENT_TIMESTAMP),"
    " (9, 7, 'parity', 'new', 3, '[1,0,0,0]', 1, 0, 0, 0, 0.3, 0.3, 2, true, false, NULL,"
    "  CURRENT_TIMESTAMP),"
    " (10, 8, 'wcc', 'new', 3, '[1,0,0,0]', 1, 0, 0, 0, 0.3, 0.3, 2, true, false, NULL,"
    "  CURRENT_TIMESTAMP)",
]


COLUMN_0005 = "dft_topology_result_id"


def _columns(url: str) -> set[str]:
    engine = build_engine(url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns("topology_results")}
    finally:
        engine.dispose()


def test_0005_points_at_the_dft_checks_and_the_view_is_unchanged_both_ways(
    empty_db_url: str,
) -> None:
    migrate.upgrade(empty_db_url, "0003")
    engine = build_engine(empty_db_url)
    try:
        with engine.begin() as connection:
            for statement in ROWS_AT_0003 + MORE_DFT_AT_0003:
                connection.execute(sa.text(statement))
    finally:
        engine.dispose()
    before = _view(empty_db_url)
    # hamiltonian_id, dft_hamiltonian_id, dft_topology_result_id, dft_z2_class, dft_agrees
    assert [(r[6], r[25], r[26], r[28], r[29]) for r in before] == [
        (1, 5, 7, "trivial", False),
        (2, None, None, None, None),
    ]

    assert migrate.upgrade(empty_db_url, "0004") == "0004"
    assert _view(empty_db_url) == before
    assert migrate.upgrade(empty_db_url, "0005") == "0005"
    assert _view(empty_db_url) == before
    pointers = _query(
        empty_db_url, "SELECT id, dft_topology_result_id FROM topology_results ORDER BY id"
    )
    assert pointers == [(i, 7 if i == 3 else None) for i in range(1, 11)]
    assert _refuses_dimension_4(empty_db_url, copies=True)
    on_postgresql = empty_db_url.startswith("postgresql")
    vacuum_often = ["autovacuum_vacuum_insert_scale_factor=0.01"] if on_postgresql else None
    assert _autovacuum_options(empty_db_url) == vacuum_often
    # the pointer cannot dangle: deleting the DFT result empties it
    engine = build_engine(empty_db_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM topology_results WHERE id = 7"))
        with engine.connect() as connection:
            pointer = "SELECT dft_topology_result_id FROM topology_results WHERE id = 3"
            assert connection.execute(sa.text(pointer)).scalar() is None
    finally:
        engine.dispose()
    after_delete = _view(empty_db_url)

    assert migrate.downgrade(empty_db_url, "0004") == "0004"
    assert COLUMN_0005 not in _columns(empty_db_url)
    assert _refuses_dimension_4(empty_db_url, copies=True)
    assert _autovacuum_options(empty_db_url) == vacuum_often
    # revision 0004's view looks the DFT check up again: result 5 of the older Hamiltonian
    restored = _view(empty_db_url)
    assert [(r[6], r[25], r[26]) for r in restored] == [(1, 3, 5), (2, None, None)]
    assert [r[:25] for r in restored] == [r[:25] for r in after_delete]
    assert migrate.downgrade(empty_db_url, "0003") == "0003"
    assert _view(empty_db_url) == restored
    assert migrate.upgrade(empty_db_url, "0005") == "0005"
    assert _view(empty_db_url) == restored
