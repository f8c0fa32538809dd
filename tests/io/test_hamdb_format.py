"""hamdb's own format: bitwise round trips through arrays, .h5 files and the store."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from hamdb.errors import HamiltonianError, InputError
from hamdb.io.hamdb_format import from_arrays, read_h5, to_arrays, write_h5
from hamdb.store.store import HamiltonianStore


def _bitwise(a, b) -> None:
    arrays_a, attrs_a = to_arrays(a)
    arrays_b, attrs_b = to_arrays(b)
    assert sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:
        assert arrays_a[name].dtype == arrays_b[name].dtype, name
        assert arrays_a[name].tobytes() == arrays_b[name].tobytes(), name
    assert attrs_a == attrs_b


@pytest.mark.parametrize(("spin", "overlap"), [("none", False), ("soc", True), ("none", True)])
def test_arrays_round_trip_is_bitwise(synthetic, spin, overlap) -> None:
    ham = synthetic(spin, overlap)
    arrays, attrs = to_arrays(ham)
    assert arrays["edges"].dtype == np.int32 and arrays["offsets"].dtype == np.int64
    assert ("s" in arrays) == overlap
    assert attrs["spin"] == spin and attrs["units"] == "eV" and attrs["fermi_level_ev"] == 0.25
    _bitwise(ham, from_arrays(arrays, attrs))


@pytest.mark.parametrize("spin", ["none", "soc"])
def test_h5_file_round_trip_is_bitwise(synthetic, tmp_path: Path, spin) -> None:
    ham = synthetic(spin, True)
    back = read_h5(write_h5(ham, tmp_path / "h.h5"))
    _bitwise(ham, back)
    assert back.structure == ham.structure and back.origin == ham.origin


def test_store_round_trip_is_bitwise(synthetic, tmp_path: Path) -> None:
    ham = synthetic("soc", True)
    store = HamiltonianStore(tmp_path / "store")
    uri, _ = store.put(*to_arrays(ham))
    _bitwise(ham, from_arrays(*store.get(uri, verify=True)))


def test_missing_array_names_the_source(synthetic) -> None:
    arrays, attrs = to_arrays(synthetic())
    del arrays["offsets"]
    with pytest.raises(HamiltonianError, match=r"somefile.*offsets"):
        from_arrays(arrays, attrs, source="somefile")


def test_offsets_not_matching_the_basis(synthetic) -> None:
    arrays, attrs = to_arrays(synthetic())
    arrays["offsets"] = arrays["offsets"].copy()
    arrays["offsets"][1:] += 1
    with pytest.raises(HamiltonianError, match="offsets do not match the basis"):
        from_arrays(arrays, attrs, source="x.h5")


def test_basis_of_another_element_is_refused(synthetic) -> None:
    arrays, attrs = to_arrays(synthetic())
    attrs["basis"] = {"name": "b", "shells": {"Ga": [0]}, "valence_electrons": {}}
    with pytest.raises(HamiltonianError, match=r"x.h5.*no shells for element As"):
        from_arrays(arrays, attrs, source="x.h5")


def test_newer_format_version_is_refused(synthetic) -> None:
    arrays, attrs = to_arrays(synthetic())
    attrs["format_version"] = 99
    with pytest.raises(HamiltonianError, match="newer than this hamdb"):
        from_arrays(arrays, attrs, source="x.h5")


def test_truncated_file_names_the_file(synthetic, tmp_path: Path) -> None:
    path = write_h5(synthetic("soc"), tmp_path / "h.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=str(path)):
        read_h5(path)


def test_wrong_flat_length(synthetic, tmp_path: Path) -> None:
    path = write_h5(synthetic(), tmp_path / "h.h5")
    with h5py.File(path, "a") as f:
        h = f["h"][()]
        del f["h"]
        f["h"] = h[:-3]
    with pytest.raises(HamiltonianError, match=r"h has .* values"):
        read_h5(path)


def test_reading_checks_hermiticity_and_names_the_edge(synthetic, tmp_path: Path) -> None:
    ham = synthetic("none")
    bad = ham.with_h(ham.h.copy())
    bad.h[bad.offsets[2]] += 0.01
    path = write_h5(bad, tmp_path / "bad.h5")
    with pytest.raises(HamiltonianError, match=rf"{path}: .*edge \(i="):
        read_h5(path)
    assert read_h5(path, herm_tol=None).n_edges == ham.n_edges
