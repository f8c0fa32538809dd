"""store verify / gc against real SQLite and PostgreSQL databases (file first, row second)."""

from __future__ import annotations

import json
import os
import time

import numpy as np
from click.testing import CliRunner

from hamdb.cli.main import cli
from hamdb.db.models import BasisSetRow, HamiltonianRow, StructureRow
from hamdb.store import HamiltonianStore
from hamdb.store.maintenance import gc_store, verify_store


def arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "edges": np.array([[0, 0, 0, 0, 0]], dtype=np.int32),
        "offsets": np.array([0, 4], dtype=np.int64),
        "h": rng.normal(size=4) + 1j * rng.normal(size=4),
    }


def add_hamiltonian(session, store: HamiltonianStore, seed: int, method: str) -> HamiltonianRow:
    """The write order of DESIGN.md §3: file (fsync, rename) first, then the row."""
    uri, sha = store.put(arrays(seed), {"spin": "soc", "units": "eV"})
    structure = StructureRow(
        reduced_formula="Bi",
        spacegroup_number=1,
        n_sites=1,
        elements=["Bi"],
        elements_key="-Bi-",
        structure_json={},
    )
    basis = session.query(BasisSetRow).filter_by(name="b").one_or_none() or BasisSetRow(
        name="b", shells={"Bi": [1]}, valence={"Bi": 5}, sha256="0" * 64
    )
    row = HamiltonianRow(
        structure=structure,
        basis_set=basis,
        kind="dft",
        spin="soc",
        method=method,
        uri=uri,
        sha256=sha,
        n_orbitals=2,
        n_edges=1,
        n_electrons=5.0,
    )
    session.add(row)
    session.commit()
    return row


def age(store: HamiltonianStore, uri: str, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(store.path(uri), (then, then))


def test_verify_passes_then_catches_a_flipped_byte_and_a_missing_file(project, session):
    store = HamiltonianStore(project.store_path, compression=None)
    good = add_hamiltonian(session, store, 1, "m1")
    bad = add_hamiltonian(session, store, 2, "m2")
    gone = add_hamiltonian(session, store, 3, "m3")
    report = verify_store(session, store)
    assert report.ok and report.files_checked == 3 and report.rows_checked == 3

    path = store.path(bad.uri)
    raw = bytearray(path.read_bytes())
    where = raw.find(arrays(2)["h"].tobytes())
    raw[where] ^= 0x10
    path.write_bytes(bytes(raw))
    store.path(gone.uri).unlink()

    report = verify_store(session, store)
    problems = {(p.kind, p.reference.row_id) for p in report.problems}
    assert problems == {("mismatch", bad.id), ("missing", gone.id)}
    assert good.id not in {p.reference.row_id for p in report.problems}
    assert all(str(p.reference.uri) in str(p) for p in report.problems)


def test_gc_keeps_referenced_removes_orphans_and_respects_grace(project, session):
    store = HamiltonianStore(project.store_path)
    kept = add_hamiltonian(session, store, 1, "m1")
    # A crash between file and row: put() ran, the row never came.
    orphan_uri, _ = store.put(arrays(9), {})
    young_uri, _ = store.put(arrays(10), {})
    age(store, orphan_uri, 7200)
    age(store, kept.uri, 7200)
    stale_temp = store.path(kept.uri).parent / f".{'a' * 64}.h5.tmp-1-deadbeef"
    stale_temp.write_bytes(b"half-written")
    then = time.time() - 7200
    os.utime(stale_temp, (then, then))

    dry = gc_store(session, store, dry_run=True)
    assert dry.removed == [orphan_uri] and dry.kept_young == [young_uri]
    assert store.exists(orphan_uri) and stale_temp.exists()

    report = gc_store(session, store)
    assert report.removed == [orphan_uri] and len(report.temp_removed) == 1
    assert not store.exists(orphan_uri) and not stale_temp.exists()
    assert store.exists(kept.uri) and store.exists(young_uri)
    # Every row still has its file: no row without a file, ever.
    assert verify_store(session, store).ok

    gc_store(session, store, grace_s=0)
    assert sorted(store.iter_files()) == [kept.uri]


def test_put_of_a_stored_file_protects_it_from_gc(project, session):
    store = HamiltonianStore(project.store_path)
    uri, _ = store.put(arrays(4), {})
    age(store, uri, 7200)
    store.put(arrays(4), {})  # a second writer about to insert a row for the same arrays
    assert gc_store(session, store).removed == []


def test_cli_verify_and_gc(project, session):
    store = HamiltonianStore(project.store_path, compression=None)
    row = add_hamiltonian(session, store, 5, "m1")
    orphan, _ = store.put(arrays(6), {})
    runner = CliRunner()
    base = ["--project", str(project.root)]

    result = runner.invoke(cli, [*base, "store", "verify", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True

    result = runner.invoke(cli, [*base, "store", "gc", "--grace", "0", "--dry-run", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["removed"] == [orphan]
    assert store.exists(orphan)
    result = runner.invoke(cli, [*base, "store", "gc", "--grace", "0"])
    assert result.exit_code == 0 and not store.exists(orphan)

    store.path(row.uri).unlink()
    result = runner.invoke(cli, [*base, "store", "verify"])
    assert result.exit_code == 1
    assert "missing" in result.output and row.uri in result.output
