"""One entry point for every Hamiltonian format: `read_hamiltonian` and `write_hamiltonian`.

Format names (the CLI's --format): hamdb, openmx (OpenMX via WannierTools' sparse H.dat/S.dat,
or HamGNN's graph_data.npz), deeph (DeepH-E3 processed folder), wannier90 (seedname_hr.dat),
siesta (.HSX/.TSHS through sisl), tbmodels (TBmodels .hdf5). Each module converts into the
DESIGN.md conventions on reading and out of them on writing; options are the module's keyword
arguments (see each `read` / `write`). `guess_format` decides from the file name, and for .h5 /
.hdf5 files (used by both hamdb and TBmodels) from the file's own marker.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from hamdb.errors import InputError
from hamdb.physics.hamiltonian import Hamiltonian

MODULES = {
    "hamdb": "hamdb.io.hamdb_format",
    "openmx": "hamdb.io.openmx",
    "deeph": "hamdb.io.deeph",
    "wannier90": "hamdb.io.wannier90",
    "siesta": "hamdb.io.siesta",
    "tbmodels": "hamdb.io.tbmodels",
}
FORMATS: tuple[str, ...] = tuple(MODULES)
WRITABLE: tuple[str, ...] = ("hamdb", "openmx", "deeph", "wannier90", "siesta", "tbmodels")


def guess_format(path: Path | str) -> str:
    """The format of `path` from its name (and, for .h5, its marker); InputError if unclear."""
    path = Path(path)
    name = path.name.lower()
    if path.is_dir():
        if (path / "hamiltonians.h5").exists():
            return "deeph"
        if (path / "H.dat").exists():
            return "openmx"
        if any(path.glob("*_hr.dat")):
            return "wannier90"
    elif name.endswith("_hr.dat"):
        return "wannier90"
    elif name.endswith((".hsx", ".tshs")):
        return "siesta"
    elif name.endswith(".npz") or name in ("h.dat", "hs.tar.gz"):
        return "openmx"
    elif name == "hamiltonians.h5":
        return "deeph"
    elif name.endswith((".h5", ".hdf5")) and path.is_file():
        return _h5_flavour(path)
    raise InputError(
        f"{path}: cannot tell the format from the name; give --format ({', '.join(FORMATS)})"
    )


def _h5_flavour(path: Path) -> str:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "format_version" in f.attrs and "edges" in f:
                return "hamdb"
            if "type_tag" in f and "hop" in f:
                return "tbmodels"
    except OSError as exc:
        raise InputError(f"{path}: unreadable HDF5 file ({exc})") from None
    raise InputError(f"{path}: an HDF5 file of neither hamdb nor TBmodels; give --format")


def _module(fmt: str) -> Any:
    try:
        return importlib.import_module(MODULES[fmt])
    except KeyError:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}") from None


def read_hamiltonian(path: Path | str, format: str | None = None, **options: Any) -> Hamiltonian:
    """Read a Hamiltonian file of any supported format into the canonical `Hamiltonian`."""
    fmt = format or guess_format(path)
    module = _module(fmt)
    reader = module.read_h5 if fmt == "hamdb" else module.read
    try:
        return reader(path, **options)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise InputError(f"{path}: the {fmt} reader {str(exc).split(' ', 1)[1]}") from None


def write_hamiltonian(ham: Hamiltonian, path: Path | str, format: str, **options: Any) -> Path:
    """Write `ham` in `format`; returns the path written (a folder for deeph)."""
    module = _module(format)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if format == "hamdb":
        return module.write_h5(ham, path, **options)
    return Path(module.write(ham, path, **options))
