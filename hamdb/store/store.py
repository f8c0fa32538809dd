"""The content-addressed, write-once HDF5 store of Hamiltonians (DESIGN.md §3).

A file is named by the sha256 of its *canonical array bytes*, not of the HDF5 bytes (HDF5
files carry timestamps and allocation details that differ between writes of the same data):

    for each array name in sorted order:
        name (utf-8) NUL dtype.str NUL shape as "d0,d1,..." NUL
        then the array's bytes, C order, little-endian

and lives at `<root>/<sha[:2]>/<sha>.h5`. Its *uri* is that path relative to the root
(`"ab/ab12….h5"`), so a store moved or mounted elsewhere keeps its uris.

Writes are atomic and durable: the file is written under a temporary name in the same folder,
fsync'ed, renamed onto its final name, and the folder fsync'ed (`put_many`: all files written
and fsync'ed, then renamed, then each folder fsync'ed once). Only after `put` returns may a
database row point at the file (file first, row second); a crash in between leaves an orphan
file that `hamdb store gc` removes, never a row without a file. Writing arrays whose sha is
already stored is a no-op (the first file's attributes stay: attributes are descriptive, the
arrays are the identity), which also makes concurrent writers of the same data safe.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hamdb.errors import StoreError
from hamdb.store.hdf5_file import (
    Compression,
    check_array_name,
    check_compression,
    little_endian,
    read_arrays,
    write_arrays,
)

SUFFIX = ".h5"
TEMP_MARK = ".tmp-"
_URI = re.compile(r"^([0-9a-f]{2})/([0-9a-f]{64})\.h5$")


def sha256_of_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """Hex sha256 of the canonical bytes of `arrays` (see the module docstring)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        check_array_name(name)
        data = little_endian(arrays[name])
        shape = ",".join(str(n) for n in data.shape)
        digest.update(f"{name}\0{data.dtype.str}\0{shape}\0".encode())
        digest.update(memoryview(data).cast("B") if data.size else b"")
    return digest.hexdigest()


def uri_for(sha256: str) -> str:
    """The store uri of the file holding arrays with this sha256."""
    return f"{sha256[:2]}/{sha256}{SUFFIX}"


def sha_of_uri(uri: str) -> str:
    """The sha256 a uri names; StoreError if it is not a store uri."""
    match = _URI.match(uri)
    if match is None or match.group(2)[:2] != match.group(1):
        raise StoreError(f"{uri!r} is not a store uri ('<sha[:2]>/<sha256>.h5')")
    return match.group(2)


def _fsync_dir(path: Path) -> None:
    _fsync_file(path)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Default:
    """The store's own compression (a sentinel: None means "no compression")."""


DEFAULT = _Default()


class HamiltonianStore:
    """A folder of immutable HDF5 files named by the hash of their arrays.

    The store is generic (named numeric arrays + attributes); hamdb.io converts a
    `Hamiltonian` to and from the arrays of DESIGN.md §3 (edges, offsets, h, s, s_offsets).
    """

    def __init__(self, root: Path | str, *, compression: Compression = "gzip") -> None:
        self.root = Path(root)
        check_compression(compression)
        self.compression = compression

    def __repr__(self) -> str:
        return f"HamiltonianStore({str(self.root)!r}, compression={self.compression!r})"

    sha256_of_arrays = staticmethod(sha256_of_arrays)

    def path(self, uri: str) -> Path:
        """Absolute path of the file a uri names (whether or not it exists)."""
        sha_of_uri(uri)
        return self.root / uri

    def exists(self, uri: str) -> bool:
        return self.path(uri).is_file()

    def put(
        self,
        arrays: Mapping[str, np.ndarray],
        attrs: Mapping[str, Any],
        *,
        sha256: str | None = None,
        compression: Compression | _Default = DEFAULT,
    ) -> tuple[str, str]:
        """Store `arrays` with `attrs`; return (uri, sha256). Durable when it returns.

        sha256: the caller's `sha256_of_arrays(arrays)` if it has it (hashed once, not twice);
        compression: this file's filter (or {array name: filter}) instead of the store's.
        """
        return self.put_many([(arrays, attrs, sha256)], compression=compression)[0]

    def put_many(
        self,
        items: Sequence[tuple[Mapping[str, np.ndarray], Mapping[str, Any], str | None]],
        *,
        compression: Compression | _Default = DEFAULT,
    ) -> list[tuple[str, str]]:
        """Store many (arrays, attrs, sha256 or None); return their (uri, sha256) in order.

        Every file is written under a temporary name and fsync'ed, then all are renamed and
        each folder fsync'ed once: all durable when this returns, so rows may point at them.
        """
        if isinstance(compression, _Default):
            compression = self.compression
        check_compression(compression)  # before any file is written
        out: list[tuple[str, str]] = []
        pending: dict[str, tuple[Path, Path]] = {}  # sha -> (temp, final), one per content
        try:
            for arrays, attrs, sha in items:
                if not arrays:
                    raise StoreError("refusing to store an empty set of arrays")
                sha = sha or sha256_of_arrays(arrays)
                uri = uri_for(sha)
                out.append((uri, sha))
                final = self.root / uri
                if sha in pending:
                    continue
                if final.is_file():
                    # Refresh the mtime so a concurrent `gc` (which spares young files) leaves
                    # it for the row the caller is about to insert.
                    os.utime(final)
                    continue
                folder = final.parent
                if not folder.is_dir():
                    folder.mkdir(parents=True, exist_ok=True)
                    _fsync_dir(folder.parent)
                temp = folder / f".{sha}{SUFFIX}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
                pending[sha] = (temp, final)
                write_arrays(temp, arrays, attrs, compression=compression)
                _fsync_file(temp)
            for temp, final in pending.values():
                os.replace(temp, final)
        except BaseException:
            for temp, _ in pending.values():
                temp.unlink(missing_ok=True)
            raise
        for folder in sorted({final.parent for _, final in pending.values()}):
            _fsync_dir(folder)
        return out

    def get(self, uri: str, verify: bool = False) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, attrs) of the file `uri`; with verify=True re-hash against the uri's sha."""
        path = self.path(uri)
        arrays, attrs = read_arrays(path)
        if verify:
            expected = sha_of_uri(uri)
            actual = sha256_of_arrays(arrays)
            if actual != expected:
                raise StoreError(f"{path}: content hash {actual[:12]}… does not match its name")
        return arrays, attrs

    def iter_files(self) -> Iterator[str]:
        """Uris of every complete file in the store (temporary files excluded), sorted."""
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if not (folder.is_dir() and re.fullmatch(r"[0-9a-f]{2}", folder.name)):
                continue
            for file in sorted(folder.glob(f"*{SUFFIX}")):
                uri = f"{folder.name}/{file.name}"
                if _URI.match(uri):
                    yield uri

    def iter_temp_files(self, older_than_s: float = 0.0) -> Iterator[Path]:
        """Leftover temporary files (from a writer that died) at least `older_than_s` old."""
        if not self.root.is_dir():
            return
        now = time.time()
        for file in sorted(self.root.glob(f"??/.*{SUFFIX}{TEMP_MARK}*")):
            try:
                if now - file.stat().st_mtime >= older_than_s:
                    yield file
            except FileNotFoundError:  # its writer just renamed or removed it
                continue

    def age_s(self, uri: str) -> float:
        """Seconds since the file was written or last re-put."""
        return time.time() - self.path(uri).stat().st_mtime
