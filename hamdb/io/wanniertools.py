"""WannierTools' input file `wt.in` and its sparse H(R)/S(R) text files.

wt.in carries what an hr.dat lacks: the lattice, the atoms, the orbitals (PROJECTORS) of every
atom in hr.dat order, whether the model has SOC, the code that wrote the Hamiltonian (which fixes
its spin layout) and the number of occupied bands. WannierTools keeps spinor states blocked
(all ↑ orbitals, then all ↓); it reorders files from Quantum ESPRESSO and VASP6 (interleaved)
and takes VASP(5) and OpenMX files as they are (blocked) — see its readHmnR.f90.

Sparse files (`Is_Sparse_Hr = T`): a comment line, the number of non-zero lines, the number of
states, then lines "R1 R2 R3 m n Re Im" (1-based m, n), in the units of the writing code.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hamdb.errors import InputError

if TYPE_CHECKING:
    from pymatgen.core import Structure

# Packages whose hr.dat interleaves spin (WannierTools reorders them); the rest are blocked.
INTERLEAVED_PACKAGES = ("qe", "quantumespresso", "quantum-espresso", "pwscf", "vasp6")


@dataclass
class WtInput:
    """What hamdb needs from a wt.in."""

    path: Path
    package: str = ""
    hr_file: str = "wannier90_hr.dat"
    overlap_file: str | None = None
    sparse: bool = False
    soc: bool = False
    num_occupied: int | None = None
    e_fermi_ev: float | None = None
    lattice_angstrom: np.ndarray | None = None
    species: list[str] = field(default_factory=list)
    frac_coords: np.ndarray | None = None
    projectors: list[list[str]] = field(default_factory=list)

    @property
    def spin_order(self) -> str:
        """The spin layout of the hr file this wt.in describes (by its Package)."""
        return "interleaved" if self.package.lower() in INTERLEAVED_PACKAGES else "blocked"

    def structure(self) -> Structure:
        from pymatgen.core import Lattice, Structure

        if self.lattice_angstrom is None or self.frac_coords is None:
            raise InputError(f"{self.path}: no LATTICE / ATOM_POSITIONS cards")
        return Structure(Lattice(self.lattice_angstrom), self.species, self.frac_coords)


def _value(raw: str) -> str:
    return raw.split("!")[0].strip().strip("'\"").strip()


def read_wt_in(path: Path | str) -> WtInput:
    """Parse the cards of a wt.in that hamdb uses; InputError naming the file if malformed."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    wt = WtInput(path)
    try:
        _parse(wt, lines)
    except (ValueError, IndexError) as exc:
        raise InputError(f"{path}: malformed wt.in ({exc})") from None
    return wt


def _parse(wt: WtInput, lines: list[str]) -> None:
    keys: dict[str, str] = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z_0-9]+)\s*=\s*(.+)$", line)
        if m:
            keys[m.group(1).lower()] = _value(m.group(2))
    wt.package = keys.get("package", "")
    wt.hr_file = keys.get("hrfile", wt.hr_file)
    wt.overlap_file = keys.get("overlapfile")
    wt.sparse = keys.get("is_sparse_hr", "F").upper().startswith(("T", ".T"))
    wt.soc = int(float(keys.get("soc", "0"))) > 0
    if "numoccupied" in keys:
        wt.num_occupied = int(keys["numoccupied"])
    if "e_fermi" in keys:
        wt.e_fermi_ev = float(keys["e_fermi"])
    cards = {line.split("!")[0].strip().upper(): k for k, line in enumerate(lines)}
    if "LATTICE" in cards:
        k = cards["LATTICE"]
        unit = lines[k + 1].split()[0].lower()
        lat = np.array([[float(x) for x in lines[k + 2 + r].split()[:3]] for r in range(3)])
        wt.lattice_angstrom = lat * (0.529177210903 if unit.startswith("bohr") else 1.0)
    if "ATOM_POSITIONS" in cards:
        k = cards["ATOM_POSITIONS"]
        n = int(lines[k + 1].split()[0])
        cartesian = lines[k + 2].split()[0].lower().startswith("c")
        rows = [lines[k + 3 + a].split() for a in range(n)]
        wt.species = [r[0] for r in rows]
        coords = np.array([[float(x) for x in r[1:4]] for r in rows])
        if cartesian:
            if wt.lattice_angstrom is None:
                raise ValueError("Cartesian ATOM_POSITIONS before a LATTICE card")
            coords = coords @ np.linalg.inv(wt.lattice_angstrom)
        wt.frac_coords = coords
    if "PROJECTORS" in cards:
        k = cards["PROJECTORS"]
        counts: list[int] = []
        for token in lines[k + 1].split("!")[0].split():
            times, _, n_proj = token.partition("*")
            counts += [int(n_proj)] * int(times) if n_proj else [int(times)]
        for a, count in enumerate(counts):
            row = lines[k + 2 + a].split("!")[0].split()
            if len(row) - 1 != count:
                raise ValueError(f"atom {a + 1} lists {len(row) - 1} projectors, not {count}")
            wt.projectors.append(row[1:])


def read_sparse(
    path: Path | str, content: bytes | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """(R (n_R, 3), M(R) (n_R, N, N) complex, N) from a WannierTools sparse file, as stored
    (file units, file orbital order). `content`: the file's bytes when already in memory (a
    tarball member); `path` then only names it in errors."""
    path = Path(path)
    try:
        f = io.StringIO(content.decode()) if content is not None else path.open()
        with f:
            f.readline()
            n_lines = int(f.readline().split("!")[0].split()[0])
            n_states = int(f.readline().split("!")[0].split()[0])
            data = np.array(f.read().split(), dtype=float)
    except (OSError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a WannierTools sparse file ({exc})") from None
    if data.size != 7 * n_lines:
        raise InputError(
            f"{path}: {data.size} numbers after the header, {n_lines} lines of 7 expected "
            "(truncated file?)"
        )
    data = data.reshape(n_lines, 7)
    idx = data[:, :5].astype(np.int64)
    if idx[:, 3:5].min(initial=1) < 1 or idx[:, 3:5].max(initial=0) > n_states:
        raise InputError(f"{path}: orbital index outside 1..{n_states}")
    translations, r_of = np.unique(idx[:, :3], axis=0, return_inverse=True)
    m = np.zeros((len(translations), n_states, n_states), dtype=np.complex128)
    m[r_of.reshape(-1), idx[:, 3] - 1, idx[:, 4] - 1] = data[:, 5] + 1j * data[:, 6]
    return translations, m, n_states
