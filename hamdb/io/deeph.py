"""DeepH / DeepH-E3 processed folders, read and written.

A folder holds (as DeepH-pack's openmx_get_data.jl writes them): `lat.dat` (3×3, lattice
vectors as COLUMNS, Å), `site_positions.dat` (3 × n_atoms, Cartesian Å, atoms as columns),
`element.dat` (atomic numbers), `orbital_types.dat` (per atom, the l of each shell),
`info.json` ({"isspinful", "fermi_level" (eV), maybe "isorthogonal"}), `hamiltonians.h5` and
optionally `overlaps.h5` with one dataset per block named "[R1, R2, R3, i, j]" (atoms 1-based),
H_ij(R) = <φ_i(r − τ_i)|H|φ_j(r − τ_j − R)> in eV, shape (n_i, n_j), or (2n_i, 2n_j) complex
for spinful data with spin outermost inside the block ([[↑↑, ↑↓], [↓↑, ↓↓]] per atom pair,
"atom_blocked"). Orbitals inside a shell stay in OpenMX's order (p: x, y, z; d: 3z²−r²,
x²−y², xy, xz, yz), which DeepH-E3 itself rotates into e3nn's basis; the reader maps it to
DESIGN.md's, the writer back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from hamdb.errors import BasisError, InputError
from hamdb.io.common import require_file, shell_permutation, spin_permutation
from hamdb.io.openmx import OPENMX_ORDER
from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian

_KEY = re.compile(r"^\[\s*(-?\d+),\s*(-?\d+),\s*(-?\d+),\s*(\d+),\s*(\d+)\s*\]$")


def _load_txt(path: Path, ndmin: int = 1) -> np.ndarray:
    try:
        return np.loadtxt(require_file(path), ndmin=ndmin)
    except ValueError as exc:
        raise InputError(f"{path}: malformed ({exc})") from None


def _block_perms(ls: tuple[int, ...], n_spin: int) -> np.ndarray:
    """Within one atom's block: our state k = file state perm[k] (OpenMX order, spin blocks)."""
    orb = shell_permutation(ls, OPENMX_ORDER)
    if n_spin == 1:
        return orb
    n = len(orb)
    sp = spin_permutation(n, "atom_blocked", np.array([n]))
    ours = np.empty(2 * n, dtype=np.int64)
    ours[0::2], ours[1::2] = 2 * orb, 2 * orb + 1
    return sp[ours]


def read(path: Path | str, *, n_electrons: float | None = None) -> Hamiltonian:
    """Read a DeepH processed folder (or the hamiltonians.h5 inside one)."""
    import h5py
    from pymatgen.core import Lattice, Structure
    from pymatgen.core.periodic_table import Element

    folder = Path(path)
    if folder.name == "hamiltonians.h5":
        folder = folder.parent
    require_file(folder, "DeepH folder")
    lat = _load_txt(folder / "lat.dat", 2)
    positions = _load_txt(folder / "site_positions.dat", 2)
    numbers = _load_txt(folder / "element.dat").astype(int)
    if lat.shape != (3, 3) or positions.shape != (3, len(numbers)):
        raise InputError(
            f"{folder}: lat.dat {lat.shape} / site_positions.dat {positions.shape} do not "
            f"describe {len(numbers)} atoms (3×3 and 3×n expected)"
        )
    try:
        species = [Element.from_Z(int(z)).symbol for z in numbers]
    except ValueError as exc:
        raise BasisError(f"{folder / 'element.dat'}: unknown element ({exc})") from None
    orbital_lines = require_file(folder / "orbital_types.dat").read_text().split("\n")
    orbital_types = [tuple(int(x) for x in ln.split()) for ln in orbital_lines if ln.strip()]
    if len(orbital_types) != len(species):
        raise InputError(
            f"{folder / 'orbital_types.dat'}: {len(orbital_types)} lines for {len(species)} atoms"
        )
    shells: dict[str, tuple[int, ...]] = {}
    for el, ls in zip(species, orbital_types, strict=True):
        if shells.setdefault(el, ls) != ls:
            raise BasisError(f"{folder}: atoms of {el} carry different orbital types")
    try:
        info = json.loads(require_file(folder / "info.json").read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{folder / 'info.json'}: not JSON ({exc})") from None
    spinful = bool(info.get("isspinful", False))
    spin = "soc" if spinful else "none"
    n_spin = 2 if spinful else 1
    structure = Structure(Lattice(lat.T), species, positions.T, coords_are_cartesian=True)
    basis = BasisSet(f"deeph:{structure.composition.reduced_formula}", shells)
    counts = basis.orbital_counts(species)
    perms = {el: _block_perms(ls, n_spin) for el, ls in shells.items()}
    s_perms = {el: _block_perms(ls, 1) for el, ls in shells.items()}

    def blocks(
        h5: Path, spin_factor: int
    ) -> dict[tuple[int, int, tuple[int, int, int]], np.ndarray]:
        out: dict[tuple[int, int, tuple[int, int, int]], np.ndarray] = {}
        table = perms if spin_factor == 2 else s_perms
        try:
            with h5py.File(h5, "r") as f:
                for key in f:
                    m = _KEY.match(key)
                    if m is None:
                        raise InputError(f"{h5}: dataset name {key!r} is not '[R1, R2, R3, i, j]'")
                    r1, r2, r3, i, j = (int(x) for x in m.groups())
                    i, j = i - 1, j - 1
                    if not (0 <= i < len(species) and 0 <= j < len(species)):
                        raise InputError(
                            f"{h5}: block {key} names an atom outside 1..{len(species)}"
                        )
                    block = np.asarray(f[key][()])
                    expected = (int(counts[i]) * spin_factor, int(counts[j]) * spin_factor)
                    if block.shape != expected:
                        raise BasisError(
                            f"{h5}: block {key} has shape {block.shape}, "
                            f"orbital_types give {expected}"
                        )
                    if not np.isfinite(block).all():
                        raise InputError(f"{h5}: block {key} has non-finite values")
                    pi, pj = table[species[i]], table[species[j]]
                    out[(i, j, (r1, r2, r3))] = block[np.ix_(pi, pj)]
        except OSError as exc:
            raise InputError(f"{h5}: unreadable HDF5 file ({exc})") from None
        return out

    h_blocks = blocks(folder / "hamiltonians.h5", n_spin)
    s_blocks = blocks(folder / "overlaps.h5", 1) if (folder / "overlaps.h5").exists() else None
    if s_blocks is not None:
        for key in set(h_blocks) - set(s_blocks):
            i, j, _ = key
            s_blocks[key] = np.zeros((int(counts[i]), int(counts[j])))
    fermi = info.get("fermi_level")
    if n_electrons is None:
        n_electrons = info.get("n_electrons")
    return Hamiltonian.from_blocks(
        structure, basis, spin, h_blocks, s_blocks,  # type: ignore[arg-type]
        n_electrons=float(n_electrons or 0.0),
        fermi_level_ev=None if fermi is None else float(fermi),
        origin={"format": "deeph", "file": folder.name},
    )  # fmt: skip


def write(ham: Hamiltonian, path: Path | str) -> Path:
    """Write `ham` as a DeepH processed folder at `path` (created; files overwritten)."""
    import h5py

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    species = list(ham.species)
    inverse = {
        el: np.argsort(_block_perms(ham.basis.shell_ls(el), ham.n_spin)) for el in set(species)
    }
    s_inverse = {el: np.argsort(_block_perms(ham.basis.shell_ls(el), 1)) for el in set(species)}
    np.savetxt(folder / "lat.dat", ham.structure.lattice.matrix.T, fmt="%.17g")
    np.savetxt(folder / "site_positions.dat", ham.structure.cart_coords.T, fmt="%.17g")
    np.savetxt(folder / "element.dat", [site.specie.Z for site in ham.structure], fmt="%d")
    (folder / "orbital_types.dat").write_text(
        "".join(" ".join(str(ell) for ell in ham.basis.shell_ls(el)) + "\n" for el in species)
    )
    info: dict[str, Any] = {
        "isspinful": ham.spin == "soc",
        "isorthogonal": ham.s is None,
        "fermi_level": ham.fermi_level_ev,
        "n_electrons": ham.n_electrons,
    }
    (folder / "info.json").write_text(json.dumps(info, indent=4))
    rlat = 2 * np.pi * np.linalg.inv(ham.structure.lattice.matrix.T).T
    np.savetxt(folder / "rlat.dat", rlat, fmt="%.17g")
    with h5py.File(folder / "hamiltonians.h5", "w") as f:
        for e in range(ham.n_edges):
            i, j, r1, r2, r3 = (int(x) for x in ham.edges[e])
            block = ham.h_block(e)
            f[f"[{r1}, {r2}, {r3}, {i + 1}, {j + 1}]"] = block[
                np.ix_(inverse[species[i]], inverse[species[j]])
            ]
    overlap = folder / "overlaps.h5"
    if ham.s is not None:
        with h5py.File(overlap, "w") as f:
            for e in range(ham.n_edges):
                i, j, r1, r2, r3 = (int(x) for x in ham.edges[e])
                f[f"[{r1}, {r2}, {r3}, {i + 1}, {j + 1}]"] = ham.s_block(e)[
                    np.ix_(s_inverse[species[i]], s_inverse[species[j]])
                ]
    elif overlap.exists():
        overlap.unlink()
    return folder
