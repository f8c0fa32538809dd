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


def test_predictions_are_stored_in_single_precision_with_lzf(session, store, synthetic) -> None:
    import h5py

    from hamdb.db.models import ModelRow, ModelVersionRow

    ham = synthetic("soc", True)
    with session.begin():
        model = ModelRow(name="m")
        session.add(model)
        session.flush()
        version = ModelVersionRow(
            model_id=model.id, version=1, weights_uri="x", weights_sha256="0" * 64, config={}
        )
        session.add(version)
        session.flush()
        pred = save_hamiltonian(
            session, store, ham, kind="predicted", method="model:m@1", model_version_id=version.id
        )
        dft = save_hamiltonian(session, store, ham, kind="dft", method="test-lcao")
    with h5py.File(store.path(pred.uri)) as f:
        assert f["h"].dtype == np.complex64 and f["h"].compression == "lzf"
        assert f.attrs["dtype"] == "complex64" and f["s"].dtype == np.float64
    back = load_hamiltonian(session, store, pred.id, verify=True)
    assert np.abs(back.h - ham.h).max() <= 1e-6 * np.abs(ham.h).max()
    assert np.array_equal(back.s, ham.s)
    exact = load_hamiltonian(session, store, dft.id, verify=True)
    assert exact.h.dtype == np.complex128 and np.array_equal(exact.h, ham.h)


def test_rows_sharing_a_file_keep_their_own_electron_count(session, store, synthetic) -> None:
    """Content addressing hashes the arrays only: equal arrays with another electron count
    (or Fermi level) share the file, and each row loads with its own."""
    ham = synthetic("none")
    charged = ham.with_h(ham.h, n_electrons=ham.n_electrons - 1, fermi_level_ev=-0.5)
    with session.begin():
        a = save_hamiltonian(session, store, ham, kind="dft", method="a")
        b = save_hamiltonian(session, store, charged, kind="dft", method="charged")
    assert a.uri == b.uri
    assert load_hamiltonian(session, store, a.id).n_electrons == ham.n_electrons
    back = load_hamiltonian(session, store, b.id)
    assert back.n_electrons == ham.n_electrons - 1 and back.fermi_level_ev == -0.5
