"""Wannier90 `seedname_hr.dat`: read into, and write out of, the DESIGN.md conventions.

hr.dat holds H_mn(R) = <w_m(r)|H|w_n(r − R)> in eV, every R written once with a degeneracy
weight (the Wigner–Seitz multiplicity) that must divide the element: H(k) = Σ_R e^{2πik·R}
H(R)/deg(R). Wannier functions sit at their centres, so with each orbital assigned to the atom
it was projected on, the R convention is DESIGN.md's as written.

What the file lacks comes from a companion: a WannierTools `wt.in` (lattice, atoms, PROJECTORS
per atom, SOC, Package, NumOccupied, E_FERMI) or a Wannier90 `seedname.win` (unit_cell_cart,
atoms_frac/atoms_cart, projections, spinors), found next to the file when not given; a POSCAR
may give the structure. Orbital order: explicit names (wt.in) or Wannier90's default order per l
(p: pz, px, py; d: dz2, dxz, dyz, dx2-y2, dxy; f: fz3, fxz2, fyz2, fz(x2-y2), fxyz,
fx(x2-3y2), fy(3x2-y2)); these real harmonics have positive coefficients like ours, so the map
is a permutation. Spin order: interleaved for Wannier90 with spinor projections (Quantum
ESPRESSO, VASP6), blocked (all ↑ then all ↓) for VASP(5) and WannierTools-written files; a wt.in
decides by its Package, a .win defaults to interleaved; `spin_order=` overrides.

The writer writes degeneracy 1 for every R, full precision, and a `.win` beside it with the
cell, atoms, projections and spinors, plus n_electrons and the Fermi level in the comment line,
so a written file reads back to the same Hamiltonian (to 1e-15 relative).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hamdb.errors import BasisError, InputError
from hamdb.io.common import (
    dense_from_hamiltonian,
    from_file_order,
    hamiltonian_from_dense,
    require_file,
    shell_permutation,
    shells_from_names,
    state_permutation,
    to_file_order,
)
from hamdb.io.wanniertools import WtInput, read_wt_in
from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian, SpinKind

if TYPE_CHECKING:
    from pymatgen.core import Structure

W90_ORDER: dict[int, tuple[str, ...]] = {
    0: ("s",),
    1: ("pz", "px", "py"),
    2: ("dz2", "dxz", "dyz", "dx2-y2", "dxy"),
    3: ("fz3", "fxz2", "fyz2", "fz(x2-y2)", "fxyz", "fx(x2-3y2)", "fy(3x2-y2)"),
}
_L_LETTER = {"s": 0, "p": 1, "d": 2, "f": 3}
_HEADER = re.compile(r"hamdb .*n_electrons=(\S+) fermi_level_ev=(\S+)")


def seedname(path: Path) -> str:
    """'wannier90' for 'wannier90_hr.dat' (the name of the companion .win)."""
    name = path.name
    return name[: -len("_hr.dat")] if name.endswith("_hr.dat") else path.stem


# -- reading ----------------------------------------------------------------------------------
def read_hr(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """(R (n_R, 3), H(R)/deg(R) (n_R, N, N) complex, comment line) in file order and units."""
    try:
        with path.open() as f:
            comment = f.readline()
            n_wann = int(f.readline().split()[0])
            n_r = int(f.readline().split()[0])
            tokens = f.read().split()
    except (OSError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a wannier90_hr.dat file ({exc})") from None
    try:
        deg = np.array(tokens[:n_r], dtype=float)
        data = np.array(tokens[n_r:], dtype=float)
    except ValueError as exc:
        raise InputError(f"{path}: non-numeric value in hr.dat ({exc})") from None
    per_r = n_wann * n_wann
    if deg.size != n_r or data.size != 7 * per_r * n_r:
        raise InputError(
            f"{path}: {data.size // 7} matrix lines, {n_r} R-points × {n_wann}² = {n_r * per_r} "
            "expected (truncated file?)"
        )
    if (deg <= 0).any():
        raise InputError(f"{path}: degeneracy weights must be positive")
    data = data.reshape(n_r, per_r, 7)
    translations = data[:, 0, :3].astype(np.int64)
    if not (data[:, :, :3] == translations[:, None, :]).all():
        raise InputError(f"{path}: R changes inside a block of {per_r} lines")
    m = data[:, :, 3].astype(np.int64) - 1
    n = data[:, :, 4].astype(np.int64) - 1
    if m.min() < 0 or m.max() >= n_wann or n.min() < 0 or n.max() >= n_wann:
        raise InputError(f"{path}: orbital index outside 1..{n_wann}")
    h = np.zeros((n_r, n_wann, n_wann), dtype=np.complex128)
    r_idx = np.repeat(np.arange(n_r), per_r).reshape(n_r, per_r)
    h[r_idx, m, n] = (data[:, :, 5] + 1j * data[:, :, 6]) / deg[:, None]
    return translations, h, comment


def expand_projection(spec: str) -> list[str]:
    """Orbital names of a .win projection such as 's;d', 'l=1', 'pz;px;py' (Wannier90 order)."""
    names: list[str] = []
    for part in re.split(r"[;,]", spec):
        part = part.strip().lower()
        if not part:
            continue
        if part.startswith("l="):
            names += W90_ORDER[int(part[2:])]
        elif part in _L_LETTER:
            names += W90_ORDER[_L_LETTER[part]]
        else:
            names.append(part)
    return names


def read_win(path: Path) -> tuple[Structure | None, dict[str, list[str]], bool | None]:
    """(structure or None, element -> orbital names, spinors or None) from a .win file."""
    from pymatgen.core import Lattice, Structure

    text = re.sub(r"[!#].*", "", path.read_text())
    blocks = {
        m.group(1).lower(): [ln.split() for ln in m.group(2).strip().splitlines() if ln.strip()]
        for m in re.finditer(r"(?is)begin\s+(\w+)(.*?)end\s+\1", text)
    }
    structure = None
    try:
        if "unit_cell_cart" in blocks:
            rows = blocks["unit_cell_cart"]
            scale = 1.0
            if len(rows[0]) == 1:
                scale = 0.529177210903 if rows[0][0].lower().startswith("bohr") else 1.0
                rows = rows[1:]
            lattice = Lattice(np.array(rows[:3], dtype=float) * scale)
            key = "atoms_frac" if "atoms_frac" in blocks else "atoms_cart"
            rows = blocks.get(key, [])
            cart_scale = 1.0
            if rows and len(rows[0]) == 1:
                cart_scale = 0.529177210903 if rows[0][0].lower().startswith("bohr") else 1.0
                rows = rows[1:]
            coords = np.array([r[1:4] for r in rows], dtype=float)
            species = [r[0] for r in rows]
            if key == "atoms_cart":
                structure = Structure(
                    lattice, species, coords * cart_scale, coords_are_cartesian=True
                )
            else:
                structure = Structure(lattice, species, coords)
    except (ValueError, IndexError, KeyError) as exc:
        raise InputError(f"{path}: malformed unit cell or atoms block ({exc})") from None
    projections: dict[str, list[str]] = {}
    for row in blocks.get("projections", []):
        element, _, spec = " ".join(row).partition(":")
        projections[element.strip()] = expand_projection(spec)
    m = re.search(r"(?im)^\s*spinors\s*[=:]?\s*(\S+)", text)
    spinors = None if m is None else m.group(1).lower().strip(".").startswith("t")
    return structure, projections, spinors


def _companion(path: Path, given: Path | str | None, names: Sequence[str]) -> Path | None:
    if given is not None:
        return require_file(Path(given))
    for name in names:
        candidate = path.parent / name
        if candidate.is_file():
            return candidate
    return None


def orbitals_to_basis(
    species: Sequence[str], per_atom: Sequence[Sequence[str]], name: str, source: Path
) -> tuple[BasisSet, list[np.ndarray]]:
    """BasisSet from each atom's orbital names (same shells for every atom of an element),
    and each atom's permutation ours -> file."""
    shells: dict[str, tuple[int, ...]] = {}
    perms: list[np.ndarray] = []
    for a, (element, names) in enumerate(zip(species, per_atom, strict=True)):
        try:
            ls, perm = shells_from_names(names)
        except InputError as exc:
            raise InputError(f"{source}: atom {a + 1} ({element}): {exc}") from None
        if shells.setdefault(element, ls) != ls:
            raise BasisError(
                f"{source}: atoms of {element} carry different orbitals "
                f"({shells[element]} vs {ls}); "
                "a basis has one set of shells per element"
            )
        perms.append(perm)
    return BasisSet(name, shells), perms


def read(
    path: Path | str,
    *,
    structure: Structure | Path | str | None = None,
    win: Path | str | None = None,
    wt_in: Path | str | None = None,
    projections: Mapping[str, Sequence[str] | str] | None = None,
    spin: SpinKind | None = None,
    spin_order: str | None = None,
    n_electrons: float | None = None,
    fermi_level_ev: float | None = None,
) -> Hamiltonian:
    """Read a wannier90_hr.dat (see the module docstring for companions and defaults).

    projections: element -> orbital names (list, or a .win spec such as "s;d"), overriding
    the companion's. spin: "soc" or "none" (default: from the companion, else num_wann vs the
    number of projected orbitals). n_electrons: default NumOccupied (× 2 without SOC).
    """
    path = require_file(Path(path))
    translations, h, comment = read_hr(path)
    wt: WtInput | None = None
    wt_path = _companion(path, wt_in, ["wt.in"] if win is None else [])
    if wt_path is not None:
        wt = read_wt_in(wt_path)
    win_path = _companion(path, win, [f"{seedname(path)}.win"] if wt is None else [])
    win_structure, win_proj, spinors = read_win(win_path) if win_path else (None, {}, None)

    if isinstance(structure, str | Path):
        from pymatgen.core import Structure as _Structure

        structure = _Structure.from_file(str(require_file(Path(structure))))
    if structure is None:
        structure = (
            wt.structure() if wt is not None and wt.frac_coords is not None else win_structure
        )
    if structure is None and (path.parent / "POSCAR").is_file():
        from pymatgen.core import Structure as _Structure

        structure = _Structure.from_file(str(path.parent / "POSCAR"))
    if structure is None:
        raise InputError(
            f"{path}: no structure; give --structure or put wt.in / {seedname(path)}.win beside it"
        )
    species = [site.specie.symbol for site in structure]

    if projections is not None:
        table = {
            el: expand_projection(v) if isinstance(v, str) else list(v)
            for el, v in projections.items()
        }
        per_atom = [_lookup(table, el, path) for el in species]
    elif wt is not None and wt.projectors:
        per_atom = wt.projectors
        if len(per_atom) != len(species):
            raise InputError(
                f"{wt.path}: PROJECTORS for {len(per_atom)} atoms, the structure has {len(species)}"
            )
    elif win_proj:
        per_atom = [_lookup(win_proj, el, path) for el in species]
    else:
        raise InputError(f"{path}: no projections; give projections= or a wt.in / .win beside it")
    formula = structure.composition.reduced_formula
    basis, perms = orbitals_to_basis(species, per_atom, f"wannier90:{formula}", path)

    n_orb = int(basis.orbital_counts(species).sum())
    n_wann = h.shape[1]
    if spin is None:
        declared = wt.soc if wt is not None else spinors
        spin = "soc" if (declared if declared is not None else n_wann == 2 * n_orb) else "none"
    if n_wann != n_orb * (2 if spin == "soc" else 1):
        raise BasisError(
            f"{path}: {n_wann} Wannier functions, but the projections give {n_orb} orbitals"
            f"{' × 2 spins' if spin == 'soc' else ''}"
        )
    m = _HEADER.search(comment)
    if spin_order is None:
        if "spin_order=" in comment:
            spin_order = comment.split("spin_order=")[1].split()[0]
        else:
            spin_order = wt.spin_order if wt is not None else "interleaved"
    perm = state_permutation(basis, species, perms, spin, spin_order)
    h = from_file_order(h, perm)
    if spin == "none":
        if np.abs(h.imag).max(initial=0.0) > 1e-6:
            raise InputError(
                f"{path}: complex hoppings in a spinless model; read it with spin='soc'?"
            )
        h = h.real.copy()
    if n_electrons is None:
        if m is not None:
            n_electrons = float(m.group(1))
        elif wt is not None and wt.num_occupied is not None:
            n_electrons = float(wt.num_occupied * (1 if spin == "soc" else 2))
    if fermi_level_ev is None:
        if m is not None and m.group(2) != "None":
            fermi_level_ev = float(m.group(2))
        elif wt is not None:
            fermi_level_ev = wt.e_fermi_ev
    origin: dict[str, Any] = {"format": "wannier90", "file": path.name}
    if wt is not None and wt.package:
        origin["code"] = wt.package
    return hamiltonian_from_dense(
        structure, basis, spin, translations, h, source=path,
        n_electrons=float(n_electrons or 0.0), fermi_level_ev=fermi_level_ev, origin=origin,
    )  # fmt: skip


def _lookup(table: Mapping[str, list[str]], element: str, path: Path) -> list[str]:
    try:
        return table[element]
    except KeyError:
        raise BasisError(f"{path}: no projections for element {element}") from None


# -- writing ----------------------------------------------------------------------------------
def write(ham: Hamiltonian, path: Path | str, *, spin_order: str = "interleaved") -> Path:
    """Write `ham` as seedname_hr.dat (Wannier90 orbital order, degeneracy 1) and seedname.win.

    The overlap is dropped: hr.dat describes orthogonal Wannier functions, so a non-orthogonal
    Hamiltonian is refused (orthogonalise it first, hamdb.topology does Löwdin).
    """
    path = Path(path)
    if ham.s is not None:
        raise InputError(
            f"{path}: hr.dat holds orthogonal models; this Hamiltonian has an overlap S"
        )
    species = list(ham.species)
    perms = [shell_permutation(ham.basis.shell_ls(el), W90_ORDER) for el in species]
    perm = state_permutation(ham.basis, species, perms, ham.spin, spin_order)
    translations, h, _ = dense_from_hamiltonian(ham)
    h = to_file_order(h, perm)
    n_r, n_wann = h.shape[0], h.shape[1]
    i = np.tile(np.arange(1, n_wann + 1), n_wann)
    j = np.repeat(np.arange(1, n_wann + 1), n_wann)
    with path.open("w") as f:
        f.write(
            f"written by hamdb n_electrons={ham.n_electrons!r} "
            f"fermi_level_ev={ham.fermi_level_ev!r} "
            f"spin_order={spin_order if ham.spin == 'soc' else 'none'}\n"
        )
        f.write(f"{n_wann}\n{n_r}\n")
        ones = ["1"] * n_r
        for start in range(0, n_r, 15):
            f.write(" ".join(f"{d:>4}" for d in ones[start : start + 15]) + "\n")
        for r in range(n_r):
            block = h[r].T.ravel()  # column j outer, row i inner, as Wannier90 writes
            rows = np.empty((n_wann * n_wann, 7), dtype=object)
            rows[:, 0:3] = translations[r]
            rows[:, 3], rows[:, 4] = i, j
            rows[:, 5], rows[:, 6] = block.real, block.imag
            np.savetxt(f, rows, fmt="%5d%5d%5d%5d%5d %23.16e %23.16e")
    _write_win(ham, path.parent / f"{seedname(path)}.win", n_wann)
    return path


def _write_win(ham: Hamiltonian, path: Path, n_wann: int) -> None:
    letters = "spdf"
    lines = [f"! written by hamdb for {ham.structure.composition.reduced_formula}",
             f"num_wann = {n_wann}", f"spinors = {'true' if ham.spin == 'soc' else 'false'}",
             "begin unit_cell_cart", "ang"]  # fmt: skip
    lines += [" ".join(repr(float(x)) for x in row) for row in ham.structure.lattice.matrix]
    lines += ["end unit_cell_cart", "begin atoms_frac"]
    lines += [
        f"{el} " + " ".join(repr(float(x)) for x in site.frac_coords)
        for el, site in zip(ham.species, ham.structure, strict=True)
    ]
    lines += ["end atoms_frac", "begin projections"]
    for el in sorted(set(ham.species)):
        lines.append(f"{el}: " + ";".join(letters[ell] for ell in ham.basis.shell_ls(el)))
    lines += ["end projections", ""]
    path.write_text("\n".join(lines))
