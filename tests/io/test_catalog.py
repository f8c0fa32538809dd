"""save_hamiltonian / load_hamiltonian on real SQLite and PostgreSQL databases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from hamdb.db.models import BasisSetRow, HamiltonianRow, StructureRow
from hamdb.errors import BasisError, HamiltonianError, InputError
from hamdb.io.catalog import load_hamiltonian, save_hamiltonian
from hamdb.io.hamdb_format import to_arrays
from hamdb.physics.basis import BasisSet
from hamdb.store.store import HamiltonianStore


@pytest.fixture
def store(project) -> HamiltonianStore:
    return HamiltonianStore(project.store_path)


def _count(session, row_type) -> int:
    return int(session.scalar(select(func.count()).select_from(row_type)))


def test_save_then_load_is_bitwise(session, store, synthetic) -> None:
    ham = synthetic("soc", True)
    with session.begin():
        row = save_hamiltonian(session, store, ham, kind="dft", method="test-lcao")
    assert row.id is not None and row.spin == "soc" and row.n_orbitals == ham.n_orbitals
    assert store.exists(row.uri)
    back = load_hamiltonian(session, store, row.id, verify=True)
    a, b = to_arrays(ham)[0], to_arrays(back)[0]
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    structure = session.get(StructureRow, row.structure_id)
    assert structure is not None and structure.reduced_formula == "GaAs"
    basis = session.get(BasisSetRow, row.basis_set_id)
    assert basis.name == "test-spd" and basis.shells == {"Ga": [0, 0, 1, 2], "As": [0, 1]}


def test_same_structure_is_matched(session, store, synthetic) -> None:
    with session.begin():
        first = save_hamiltonian(session, store, synthetic("none"), kind="dft", method="a")
        second = save_hamiltonian(session, store, synthetic("soc"), kind="dft", method="a")
    assert first.structure_id == second.structure_id
    assert _count(session, StructureRow) == 1 and _count(session, BasisSetRow) == 1


def test_non_hermitian_stores_nothing(session, store, synthetic) -> None:
    ham = synthetic("none")
    bad = ham.with_h(ham.h.copy())
    bad.h[bad.offsets[1]] += 0.1
    with session.begin(), pytest.raises(HamiltonianError, match=r"hermit|Hermit"):
        save_hamiltonian(session, store, bad, kind="dft", method="bad")
    assert _count(session, HamiltonianRow) == 0 and _count(session, StructureRow) == 0
    assert list(store.iter_files()) == []


def test_nan_stores_nothing(session, store, synthetic) -> None:
    ham = synthetic("none")
    bad = ham.with_h(np.where(np.arange(ham.h.size) == 3, np.nan, ham.h))
    with session.begin(), pytest.raises(HamiltonianError, match="non-finite"):
        save_hamiltonian(session, store, bad, kind="dft", method="bad")
    assert list(store.iter_files()) == [] and _count(session, HamiltonianRow) == 0


def test_predicted_needs_a_model_version(session, store, synthetic) -> None:
    with session.begin(), pytest.raises(InputError, match="model version"):
        save_hamiltonian(session, store, synthetic(), kind="predicted", method="m")
    with session.begin(), pytest.raises(InputError, match="kind must be"):
        save_hamiltonian(session, store, synthetic(), kind="guess", method="m")


def test_basis_name_means_one_definition(session, store, synthetic) -> None:
    ham = synthetic("none")
    other = ham.__class__(
        ham.structure, BasisSet("test-spd", {"Ga": (0, 0, 1, 2), "As": (0, 1)}, {"Ga": 13}),
        ham.spin, ham.edges, ham.offsets, ham.h,
    )  # fmt: skip
    with session.begin():
        save_hamiltonian(session, store, ham, kind="dft", method="a")
    with session.begin(), pytest.raises(BasisError, match=r"already gives Ga 3\.0"):
        save_hamiltonian(session, store, other, kind="dft", method="b")


def test_unknown_id(session, store) -> None:
    with pytest.raises(InputError, match="no Hamiltonian with id 999"):
        load_hamiltonian(session, store, 999)


def test_real_file_through_the_catalog(session, store, topology_testdata: Path, mesh_gap) -> None:
    from hamdb.io import siesta

    ham = siesta.read(topology_testdata / "sisl-files" / "Bi_hexagonal" / "Bi_hexagonal.HSX")
    with session.begin():
        row = save_hamiltonian(session, store, ham, kind="dft", method="siesta-szp")
    back = load_hamiltonian(session, store, row.id)
    assert back.n_electrons == 30 and back.s is not None
    assert np.array_equal(back.h, ham.h)


def test_same_content_under_two_methods(session, store, synthetic) -> None:
    ham = synthetic("none")
    with session.begin():
        a = save_hamiltonian(session, store, ham, kind="dft", method="a")
        b = save_hamiltonian(session, store, ham, kind="dft", method="b")
    assert a.structure_id == b.structure_id and a.uri == b.uri and a.id != b.id
    assert len(list(store.iter_files())) == 1
