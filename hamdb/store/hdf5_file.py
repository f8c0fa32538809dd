"""Write and read one HDF5 file of named numpy arrays plus scalar/JSON attributes.

The store (store.py) decides names and atomicity; this module only knows the file format:
one dataset per array at the root, stored little-endian, chunked and compressed (gzip with the
shuffle filter, or lzf) when non-empty, and one HDF5 attribute per metadata item so that
`h5dump`/`h5ls` show them as they are. Attribute values are str, int, float, bool, None, or a
JSON-able dict/list; dicts and lists are written as JSON strings and their keys listed in the
attribute `_json_attrs`, None as an HDF5 empty attribute, so that `read_arrays` gives back the
same Python values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hamdb.errors import StoreError

JSON_ATTRS_KEY = "_json_attrs"
COMPRESSIONS = ("gzip", "lzf", None)
#: One filter for every array, or one per array name (names not listed: uncompressed).
Compression = str | None | Mapping[str, str | None]
#: Elements per chunk of a compressed array (along its first axis): h5py's automatic chunks
#: are ~40 KB for a 1-D array, and per-chunk filter overhead then costs ~25% of the write.
CHUNK_ELEMENTS = 2**18
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_array_name(name: str) -> None:
    """Array and attribute names are plain identifiers (no '/', no leading '_' clash)."""
    if not isinstance(name, str) or not _NAME.match(name) or name == JSON_ATTRS_KEY:
        raise StoreError(f"invalid array/attribute name {name!r}: use letters, digits and '_'")


def little_endian(array: np.ndarray) -> np.ndarray:
    """C-contiguous, little-endian copy (or the array itself when it already is)."""
    array = np.asarray(array)
    if array.dtype.kind not in "biufc":
        raise StoreError(f"array dtype {array.dtype} is not numeric; the store holds numbers only")
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    # np.require keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d).
    return np.require(array, requirements="C")


def _encode_attr(key: str, value: Any) -> tuple[Any, bool]:
    """(HDF5 attribute value, is_json) for one metadata item."""
    if value is None:
        return h5py.Empty("f8"), False
    if isinstance(value, bool | np.bool_):
        return np.bool_(value), False
    if isinstance(value, int | np.integer):
        return np.int64(value), False
    if isinstance(value, float | np.floating):
        return np.float64(value), False
    if isinstance(value, str):
        return value, False
    if isinstance(value, dict | list | tuple):
        try:
            return json.dumps(value, sort_keys=True), True
        except (TypeError, ValueError) as exc:
            raise StoreError(f"attribute {key!r} is not JSON-serialisable: {exc}") from None
    raise StoreError(
        f"attribute {key!r} has type {type(value).__name__}; use str, int, float, bool, None, "
        "or a JSON-able dict/list"
    )


def _decode_attr(value: Any) -> Any:
    if isinstance(value, h5py.Empty):
        return None
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def check_compression(compression: Compression) -> str | dict[str, str | None] | None:
    """`compression` as write_arrays uses it (a mapping becomes a dict); StoreError for an
    unknown filter."""
    if isinstance(compression, Mapping):
        per_array = dict(compression)
        for filt in per_array.values():
            check_compression(filt)
        return per_array
    if compression not in COMPRESSIONS:
        raise StoreError(f"unknown compression {compression!r}; use one of {COMPRESSIONS}")
    return compression


def write_arrays(
    path: Path,
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any],
    *,
    compression: Compression = "gzip",
) -> None:
    """Write `arrays` and `attrs` to a new HDF5 file at `path` (overwriting it).

    compression: one filter for all arrays, or a mapping array name -> filter (arrays not
    named are stored uncompressed), e.g. {"h": "lzf"}: compress only what pays for its time.
    Not atomic by itself: the store writes to a temporary name and renames.
    """
    filters = check_compression(compression)
    with h5py.File(path, "w", libver="latest") as f:
        for name in sorted(arrays):
            check_array_name(name)
            data = little_endian(arrays[name])
            options: dict[str, Any] = {}
            filt = filters.get(name) if isinstance(filters, dict) else filters
            if data.ndim > 0 and data.size > 0 and filt is not None:
                rows = max(1, min(data.shape[0], CHUNK_ELEMENTS // max(1, data[:1].size)))
                options = {"chunks": (rows, *data.shape[1:]), "compression": filt}
                if filt == "gzip":
                    options.update(compression_opts=4, shuffle=True)
            f.create_dataset(name, data=data, **options)
        json_keys = []
        for key in sorted(attrs):
            check_array_name(key)
            value, is_json = _encode_attr(key, attrs[key])
            f.attrs[key] = value
            if is_json:
                json_keys.append(key)
        if json_keys:
            f.attrs[JSON_ATTRS_KEY] = json.dumps(json_keys)


def read_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read every root dataset and attribute of the file at `path`.

    Raises StoreError naming the file when it is missing or not a readable HDF5 file.
    """
    try:
        with h5py.File(path, "r") as f:
            arrays = {name: f[name][()] for name in f}
            raw = {key: f.attrs[key] for key in f.attrs}
    except FileNotFoundError:
        raise StoreError(f"{path}: missing from the store") from None
    except OSError as exc:
        raise StoreError(f"{path}: unreadable HDF5 file ({exc})") from None
    json_keys = set(json.loads(_decode_attr(raw.pop(JSON_ATTRS_KEY, "[]"))))
    attrs = {
        key: json.loads(_decode_attr(value)) if key in json_keys else _decode_attr(value)
        for key, value in raw.items()
    }
    return {name: np.asarray(value) for name, value in arrays.items()}, attrs
