"""hamdb's own format: a `Hamiltonian` as the arrays and attributes of DESIGN.md §3.

`to_arrays` / `from_arrays` are what the content-addressed store keeps (the store hashes the
arrays); `write_h5` / `read_h5` are the same content as one standalone .h5 file a user can hand
around. The round trip is bitwise: the arrays are stored as they are, and the structure, basis
and origin travel as JSON, whose floats Python writes with repr (exact round trip).

Arrays: edges int32 (n_edges, 5); offsets int64 (n_edges + 1); h float64 | complex128 (or
float32 | complex64 for predictions, stated in attrs["dtype"]); s float64 and s_offsets int64 when
the basis is non-orthogonal. Attributes: format_version, units "eV", spin, basis (dict),
n_electrons, fermi_level_ev (None if unknown), structure (pymatgen dict), origin (dict), dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hamdb.errors import HamiltonianError, InputError, StoreError
from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian

FORMAT_VERSION = 1
HERMITICITY_TOL_EV = 1e-5  # text formats print 6–7 digits; the same bound as a float32 model
REQUIRED_ARRAYS = ("edges", "offsets", "h")
REQUIRED_ATTRS = ("format_version", "units", "spin", "basis", "structure")


def to_arrays(ham: Hamiltonian) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, attrs) of DESIGN.md §3 for `ham` (arrays are the Hamiltonian's own, no copy)."""
    arrays: dict[str, np.ndarray] = {
        "edges": np.ascontiguousarray(ham.edges, dtype=np.int32),
        "offsets": np.ascontiguousarray(ham.offsets, dtype=np.int64),
        "h": np.ascontiguousarray(ham.h),
    }
    if ham.s is not None and ham.s_offsets is not None:
        arrays["s"] = np.ascontiguousarray(ham.s)
        arrays["s_offsets"] = np.ascontiguousarray(ham.s_offsets, dtype=np.int64)
    attrs: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "units": "eV",
        "spin": ham.spin,
        "basis": ham.basis.as_dict(),
        "n_electrons": float(ham.n_electrons),
        "fermi_level_ev": None if ham.fermi_level_ev is None else float(ham.fermi_level_ev),
        "structure": ham.structure.as_dict(),
        "origin": dict(ham.origin),
        "dtype": str(np.asarray(ham.h).dtype),
    }
    return arrays, attrs


def from_arrays(
    arrays: dict[str, np.ndarray], attrs: dict[str, Any], *, source: str | Path = "arrays"
) -> Hamiltonian:
    """The `Hamiltonian` stored in (arrays, attrs); HamiltonianError naming `source` if the
    content is incomplete or inconsistent (shapes against the basis, offsets)."""
    from pymatgen.core import Structure

    missing = [n for n in REQUIRED_ARRAYS if n not in arrays] + [
        a for a in REQUIRED_ATTRS if a not in attrs
    ]
    if missing:
        raise HamiltonianError(f"{source}: not a hamdb Hamiltonian, missing {', '.join(missing)}")
    if int(attrs["format_version"]) > FORMAT_VERSION:
        raise HamiltonianError(
            f"{source}: format_version {attrs['format_version']} is newer than this hamdb "
            f"({FORMAT_VERSION}); upgrade hamdb"
        )
    if attrs["units"] != "eV":
        raise HamiltonianError(f"{source}: units {attrs['units']!r}, expected 'eV'")
    try:
        structure = Structure.from_dict(attrs["structure"])
        basis = BasisSet.from_dict(attrs["basis"])
    except (KeyError, TypeError, ValueError) as exc:
        raise HamiltonianError(
            f"{source}: unreadable structure or basis attribute ({exc})"
        ) from None
    ham = Hamiltonian(
        structure,
        basis,
        attrs["spin"],
        arrays["edges"],
        arrays["offsets"],
        arrays["h"],
        arrays.get("s"),
        arrays.get("s_offsets"),
        n_electrons=float(attrs.get("n_electrons") or 0.0),
        fermi_level_ev=attrs.get("fermi_level_ev"),
        origin=dict(attrs.get("origin") or {}),
    )
    check_layout(ham, source)
    return ham


def check_layout(ham: Hamiltonian, source: str | Path) -> None:
    """Offsets consistent with the basis and the flat arrays (cheap, vectorised)."""
    try:
        counts = ham.orbital_counts
    except InputError as exc:
        raise HamiltonianError(f"{source}: {exc}") from None
    edges = ham.edges
    if edges.size and (edges[:, :2].min() < 0 or edges[:, :2].max() >= len(counts)):
        raise HamiltonianError(f"{source}: edge site index outside 0..{len(counts) - 1}")
    sizes = counts[edges[:, 0]] * counts[edges[:, 1]]
    for what, flat, offsets, ns in (
        ("h", ham.h, ham.offsets, ham.n_spin),
        ("s", ham.s, ham.s_offsets, 1),
    ):
        if flat is None or offsets is None:
            continue
        expected = np.concatenate([[0], np.cumsum(sizes * ns * ns)])
        if offsets.shape != expected.shape or not np.array_equal(offsets, expected):
            bad = int(np.argmax(offsets != expected)) if offsets.shape == expected.shape else -1
            where = f"at edge {bad - 1}" if bad > 0 else f"(length {offsets.shape[0]})"
            raise HamiltonianError(f"{source}: {what} offsets do not match the basis {where}")
        if flat.ndim != 1 or flat.shape[0] != expected[-1]:
            raise HamiltonianError(
                f"{source}: {what} has {flat.size} values, the blocks need {int(expected[-1])}"
            )


def write_h5(ham: Hamiltonian, path: Path | str, *, compression: str | None = "gzip") -> Path:
    """Write `ham` as one standalone .h5 file (same content as a store file)."""
    from hamdb.store.hdf5_file import write_arrays

    path = Path(path)
    arrays, attrs = to_arrays(ham)
    write_arrays(path, arrays, attrs, compression=compression)
    return path


def read_h5(path: Path | str, *, herm_tol: float | None = HERMITICITY_TOL_EV) -> Hamiltonian:
    """Read a standalone hamdb .h5 file (or a store file) and check it (DESIGN.md §3: shapes,
    finiteness, hermiticity within herm_tol eV; None skips the physics checks)."""
    from hamdb.store.hdf5_file import read_arrays

    path = Path(path)
    try:
        arrays, attrs = read_arrays(path)
    except StoreError as exc:
        raise InputError(str(exc).replace("missing from the store", "no such file")) from None
    ham = from_arrays(arrays, attrs, source=path)
    if herm_tol is not None:
        checked(ham, path, herm_tol)
    return ham


def checked(
    ham: Hamiltonian, source: str | Path, herm_tol: float = HERMITICITY_TOL_EV
) -> Hamiltonian:
    """`ham` after hamdb.physics.checks.check_hamiltonian, its error prefixed by `source`."""
    from hamdb.physics.checks import check_hamiltonian

    try:
        check_hamiltonian(ham, herm_tol=herm_tol)
    except HamiltonianError as exc:
        raise HamiltonianError(f"{source}: {exc}") from None
    return ham
