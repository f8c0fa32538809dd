"""The content-addressed HDF5 store: bitwise round trip, hashing, atomic write, verify."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hamdb.errors import StoreError
from hamdb.store import HamiltonianStore, sha256_of_arrays, sha_of_uri


def soc_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """A small block-sparse SOC layout: 2 atoms, 3 edges, 2 orbitals/atom (4 spinors)."""
    rng = np.random.default_rng(seed)
    edges = np.array([[0, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, -1]], dtype=np.int32)
    offsets = np.arange(4, dtype=np.int64) * 16
    h = rng.normal(size=48) + 1j * rng.normal(size=48)
    s = rng.normal(size=12)
    return {
        "edges": edges,
        "offsets": offsets,
        "h": h,
        "s": s,
        "s_offsets": np.arange(4, dtype=np.int64) * 4,
    }


ATTRS = {
    "format_version": 1,
    "units": "eV",
    "spin": "soc",
    "basis": {"Bi": [0, 1]},
    "n_electrons": 10.0,
    "fermi_level_ev": None,
    "predicted": False,
}


@pytest.mark.parametrize("compression", ["gzip", "lzf", None])
def test_round_trip_is_bitwise(tmp_path, compression):
    store = HamiltonianStore(tmp_path, compression=compression)
    arrays = soc_arrays()
    uri, sha = store.put(arrays, ATTRS)
    assert sha == sha256_of_arrays(arrays) == sha_of_uri(uri)
    assert store.path(uri) == tmp_path / sha[:2] / f"{sha}.h5"
    back, attrs = store.get(uri, verify=True)
    assert sorted(back) == sorted(arrays)
    for name, value in arrays.items():
        assert back[name].dtype == value.dtype
        assert back[name].shape == value.shape
        assert back[name].tobytes() == value.tobytes()
    assert attrs == ATTRS
    assert list(store.iter_files()) == [uri]


def test_hash_ignores_order_and_byte_order_but_not_dtype_shape_or_name():
    arrays = soc_arrays()
    reordered = dict(reversed(list(arrays.items())))
    big_endian = {k: v.astype(v.dtype.newbyteorder(">")) for k, v in arrays.items()}
    assert sha256_of_arrays(reordered) == sha256_of_arrays(arrays)
    assert sha256_of_arrays(big_endian) == sha256_of_arrays(arrays)
    base = sha256_of_arrays(arrays)
    assert sha256_of_arrays({**arrays, "s": arrays["s"].astype(np.float32)}) != base
    assert sha256_of_arrays({**arrays, "s": arrays["s"].reshape(3, 4)}) != base
    renamed = {("t" if k == "s" else k): v for k, v in arrays.items()}
    assert sha256_of_arrays(renamed) != base


@settings(max_examples=30, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.float64, np.complex128, np.int32, np.float32]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    )
)
def test_any_numeric_array_round_trips(tmp_path_factory, array):
    store = HamiltonianStore(tmp_path_factory.mktemp("store"))
    uri, _ = store.put({"a": array}, {})
    back, _ = store.get(uri, verify=True)
    assert back["a"].dtype == array.dtype and back["a"].shape == array.shape
    assert back["a"].tobytes() == array.tobytes()


def test_put_of_an_existing_sha_is_a_no_op(tmp_path):
    store = HamiltonianStore(tmp_path)
    uri, sha = store.put(soc_arrays(), ATTRS)
    before = store.path(uri).read_bytes()
    uri2, sha2 = store.put(soc_arrays(), {**ATTRS, "units": "Ry"})
    assert (uri2, sha2) == (uri, sha)
    assert store.path(uri).read_bytes() == before
    assert list(store.iter_files()) == [uri]
    assert list(store.iter_temp_files()) == []


def test_flipped_data_byte_is_caught_by_verify(tmp_path):
    # Uncompressed, so the array bytes sit verbatim in the file and one can be flipped.
    store = HamiltonianStore(tmp_path, compression=None)
    arrays = soc_arrays()
    uri, _ = store.put(arrays, ATTRS)
    path = store.path(uri)
    raw = bytearray(path.read_bytes())
    where = raw.find(arrays["s"].tobytes())
    assert where >= 0
    raw[where + 3] ^= 0x01
    path.write_bytes(bytes(raw))
    store.get(uri)  # still readable without verification ...
    with pytest.raises(StoreError, match=str(path)):
        store.get(uri, verify=True)  # ... but the hash names the file


def test_flipped_byte_in_compressed_file_is_an_error_naming_the_file(tmp_path):
    store = HamiltonianStore(tmp_path)
    uri, _ = store.put({"h": np.linspace(0, 1, 4000)}, {})
    path = store.path(uri)
    raw = bytearray(path.read_bytes())
    caught = 0
    for where in range(len(raw) // 2, len(raw), 97):
        flipped = bytearray(raw)
        flipped[where] ^= 0xFF
        path.write_bytes(bytes(flipped))
        try:
            store.get(uri, verify=True)
        except StoreError as exc:
            assert str(path) in str(exc)
            caught += 1
    assert caught > 0


def test_bad_uris_names_and_values_are_refused(tmp_path):
    store = HamiltonianStore(tmp_path)
    with pytest.raises(StoreError):
        store.path("../etc/passwd")
    with pytest.raises(StoreError):
        store.put({"a/b": np.zeros(2)}, {})
    with pytest.raises(StoreError):
        store.put({"a": np.array(["x"])}, {})
    with pytest.raises(StoreError):
        store.put({"a": np.zeros(2)}, {"when": object()})
    with pytest.raises(StoreError, match="missing"):
        store.get("ab/" + "ab" + "0" * 62 + ".h5")
    assert list(store.iter_files()) == []


def test_failed_write_leaves_no_file(tmp_path):
    store = HamiltonianStore(tmp_path)
    with pytest.raises(StoreError):
        store.put({"a": np.zeros(3)}, {"bad": {1, 2}})
    assert list(store.iter_files()) == []
    assert list(store.iter_temp_files()) == []


def test_put_many_stores_all_durably_once_each(tmp_path):
    store = HamiltonianStore(tmp_path)
    first, _ = store.put(soc_arrays(1), ATTRS)
    items = [(soc_arrays(s), ATTRS, None) for s in (1, 2, 3, 2)]  # 1 stored, 2 twice
    given = sha256_of_arrays(soc_arrays(3))
    items[2] = (soc_arrays(3), ATTRS, given)
    out = store.put_many(items, compression="lzf")
    assert [sha for _, sha in out] == [sha256_of_arrays(a) for a, _, _ in items]
    assert out[0][0] == first and out[1] == out[3] and out[2][1] == given
    assert sorted(store.iter_files()) == sorted({uri for uri, _ in out})
    assert list(store.iter_temp_files()) == []
    for uri, _ in out:
        arrays, _ = store.get(uri, verify=True)
        assert arrays["h"].dtype == np.complex128


def test_put_many_failing_midway_renames_nothing(tmp_path):
    """A batch is all or nothing on disk: no file of it is final until every one is written,
    so no row can ever be inserted for a half-written batch."""
    store = HamiltonianStore(tmp_path)
    items = [(soc_arrays(1), ATTRS, None), ({"a": np.zeros(3)}, {"bad": {1, 2}}, None)]
    with pytest.raises(StoreError):
        store.put_many(items)
    assert list(store.iter_files()) == []
    assert list(store.iter_temp_files()) == []


def test_put_keeps_its_compression_per_call(tmp_path):
    import h5py

    store = HamiltonianStore(tmp_path)  # gzip by default
    gz, _ = store.put(soc_arrays(1), ATTRS)
    lzf, _ = store.put(soc_arrays(2), ATTRS, compression="lzf")
    with h5py.File(store.path(gz)) as f, h5py.File(store.path(lzf)) as g:
        assert f["h"].compression == "gzip" and g["h"].compression == "lzf"


def test_per_array_compression_round_trips_and_verifies(tmp_path):
    """{"h": "lzf"}: h compressed, every other array contiguous; same content, same sha."""
    import h5py

    store = HamiltonianStore(tmp_path)
    arrays = soc_arrays(4)
    uri, sha = store.put(arrays, ATTRS, compression={"h": "lzf"})
    assert sha == sha256_of_arrays(arrays)
    with h5py.File(store.path(uri)) as f:
        assert f["h"].compression == "lzf"
        assert all(f[n].compression is None for n in ("s", "edges", "offsets", "s_offsets"))
    back, _ = store.get(uri, verify=True)
    for name, value in arrays.items():
        assert back[name].tobytes() == value.tobytes()


def test_unknown_filter_in_a_mapping_writes_nothing(tmp_path):
    store = HamiltonianStore(tmp_path)
    with pytest.raises(StoreError, match="unknown compression 'zstd'"):
        store.put(soc_arrays(5), ATTRS, compression={"h": "lzf", "s": "zstd"})
    assert list(store.iter_files()) == [] and list(store.iter_temp_files()) == []
    with pytest.raises(StoreError, match="unknown compression"):
        HamiltonianStore(tmp_path, compression="zstd")
