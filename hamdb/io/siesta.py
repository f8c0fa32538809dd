"""SIESTA .HSX / .TSHS files, read through sisl, into the DESIGN.md conventions.

sisl gives eV and Å, the orbitals of each atom with (l, m) and a CSR matrix per spin component
whose columns run over the auxiliary supercell: column c is orbital c mod n_o of the image shifted
by the integer lattice vector sc_off[c // n_o], so the element is <φ_i(r − τ_i)|H|φ_j(r − τ_j −
R)> with R = sc_off[c // n_o] (checked against sisl's own H(k) in the tests). Inside a shell
sisl/SIESTA order the real harmonics m = −l..l (py, pz, px; dxy, dyz, dz2, dxz, dx2−y2), the
order of DESIGN.md, but with the Condon–Shortley phase: SIESTA's orbital m is (−1)^m times
ours (found from the two-centre overlaps of the Bi file, see `condon_shortley_signs`); the
reader and the writer multiply by (−1)^m.

Spin components of a spin-orbit (and non-collinear) sisl matrix, as sisl documents them:
0 Re H↑↑, 1 Re H↓↓, 2 Re H↑↓, 3 Im H↑↓, 4 Im H↑↑, 5 Im H↓↓, 6 Re H↓↑, 7 Im H↓↑ (non-collinear:
only 0..3, with H↓↑ = H↑↓† elementwise); the last component is S for a non-orthogonal basis.
Written here into spinor index 2·orbital + s (interleaved, as sisl's own H(k)).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from hamdb.errors import BasisError, InputError
from hamdb.io.common import hamiltonian_from_dense, require_file
from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian

SUFFIXES = (".hsx", ".tshs")


def _shells(atom: Any, source: Path) -> tuple[int, ...]:
    """Shell l's of a sisl Atom; each shell's 2l+1 orbitals must come together, m = −l..l."""
    ls: list[int] = []
    orbitals = list(atom.orbitals)
    k = 0
    while k < len(orbitals):
        ell = int(getattr(orbitals[k], "l", -1))
        if ell < 0:
            raise BasisError(
                f"{source}: sisl gives no angular momentum for the orbitals of {atom.symbol}"
            )
        ms = [int(getattr(o, "m", 99)) for o in orbitals[k : k + 2 * ell + 1]]
        if ms != list(range(-ell, ell + 1)):
            raise BasisError(f"{source}: orbitals of {atom.symbol} are not m = -l..l shells ({ms})")
        ls.append(ell)
        k += 2 * ell + 1
    return tuple(ls)


def _electrons(path: Path) -> float | None:
    """'Total number of electrons' from a SIESTA output (*.out) beside the file, if any."""
    for out in sorted(path.parent.glob("*.out")):
        m = re.search(r"Total number of electrons:\s*([0-9.]+)", out.read_text(errors="replace"))
        if m:
            return float(m.group(1))
    return None


def read(
    path: Path | str,
    *,
    n_electrons: float | None = None,
    fermi_level_ev: float | None = None,
    basis_name: str | None = None,
    fdf: Path | str | None = None,
) -> Hamiltonian:
    """Read a SIESTA .HSX or .TSHS file with sisl.

    n_electrons: default from "Total number of electrons" in a SIESTA *.out beside the file.
    fermi_level_ev: default the file's own (sisl's read_fermi_level), when it has one.
    fdf: for a .TSHS, the run's .fdf that defines the basis (default: the .fdf beside it).
    """
    import sisl
    from pymatgen.core import Lattice, Structure

    path = require_file(Path(path))
    try:
        sile = sisl.get_sile(str(path))
        options: dict[str, Any] = {}
        if path.suffix.lower() == ".tshs":
            # a TSHS has no basis (atoms come back as orbital-less H): take it from the fdf
            fdf = (
                Path(fdf)
                if fdf is not None
                else next(iter(sorted(path.parent.glob("*.fdf"))), None)
            )
            if fdf is None:
                raise InputError(f"{path}: a .TSHS carries no basis; give fdf= (the run's .fdf)")
            options["geometry"] = sisl.get_sile(str(fdf)).read_geometry()
        h = sile.read_hamiltonian(**options)
    except InputError:
        raise
    except Exception as exc:  # sisl raises many kinds on a truncated or foreign file
        raise InputError(f"{path}: sisl cannot read it ({type(exc).__name__}: {exc})") from None
    geom = h.geometry
    species = [atom.symbol for atom in geom.atoms]
    shells: dict[str, tuple[int, ...]] = {}
    for atom in geom.atoms.atom:
        shells[atom.symbol] = _shells(atom, path)
    structure = Structure(
        Lattice(np.asarray(geom.cell)), species, np.asarray(geom.xyz), coords_are_cartesian=True
    )
    basis = BasisSet(basis_name or f"siesta:{structure.composition.reduced_formula}", shells)
    if int(sum(basis.orbital_counts(species))) != h.no:
        raise BasisError(
            f"{path}: {h.no} orbitals, the basis gives {int(sum(basis.orbital_counts(species)))}"
        )

    kind = h.spin.kind
    no = h.no
    sc_off = np.asarray(geom.lattice.sc_off, dtype=np.int64)
    n_sc = len(sc_off)

    def component(c: int) -> np.ndarray:
        dense = h.tocsr(c).toarray()
        return dense.reshape(no, n_sc, no).transpose(1, 0, 2)

    s = None if h.orthogonal else component(h.S_idx)
    if s is not None and _is_unit_overlap(s, sc_off):
        s = None  # an orthogonal basis stored as S = 1 (what .HSX files of TB models hold)
    if kind in (sisl.Spin.UNPOLARIZED,):
        stack, spin = component(0), "none"
    elif kind in (sisl.Spin.SPINORBIT, sisl.Spin.NONCOLINEAR):
        uu = component(0) + (1j * component(4) if kind == sisl.Spin.SPINORBIT else 0)
        dd = component(1) + (1j * component(5) if kind == sisl.Spin.SPINORBIT else 0)
        ud = component(2) + 1j * component(3)
        if kind == sisl.Spin.SPINORBIT:
            du = component(6) + 1j * component(7)
        else:  # non-collinear: one ↑↓ element per pair, the ↓↑ block is its Hermitian partner
            du = _hermitian_partner(ud, sc_off)
        stack = np.zeros((n_sc, 2 * no, 2 * no), dtype=np.complex128)
        stack[:, 0::2, 0::2], stack[:, 0::2, 1::2] = uu, ud
        stack[:, 1::2, 0::2], stack[:, 1::2, 1::2] = du, dd
        spin = "soc"
    else:
        raise InputError(
            f"{path}: spin kind {h.spin} (collinear polarised) is not supported; "
            "hamdb keeps none|soc"
        )
    signs = condon_shortley_signs(basis, species)
    stack = stack * np.repeat(signs, 2 if spin == "soc" else 1)[None, :, None]
    stack = stack * np.repeat(signs, 2 if spin == "soc" else 1)[None, None, :]
    if s is not None:
        s = s * signs[None, :, None] * signs[None, None, :]
    if fermi_level_ev is None:
        try:
            fermi_level_ev = float(sile.read_fermi_level())
        except Exception:  # not every SIESTA file records it
            fermi_level_ev = None
    if n_electrons is None:
        n_electrons = _electrons(path)
    return hamiltonian_from_dense(
        structure, basis, spin, sc_off, stack, s, source=path,  # type: ignore[arg-type]
        n_electrons=float(n_electrons or 0.0), fermi_level_ev=fermi_level_ev,
        origin={"format": "siesta", "code": "siesta", "file": path.name},
    )  # fmt: skip


def condon_shortley_signs(basis: BasisSet, species: list[str]) -> np.ndarray:
    """(−1)^m for every orbital of the cell: SIESTA's real harmonics are ours times (−1)^m.

    Found, not assumed: in the Bi(111) HSX the overlap between an s orbital and the p or d
    orbitals of a neighbour follows the direction cosines of the bond (as positive-coefficient
    harmonics must) only after this factor (tests/io/test_siesta.py checks it), i.e. SIESTA's
    functions keep the Condon–Shortley phase (−y, z, −x for l=1).
    """
    per_element = {
        el: np.array([(-1.0) ** abs(m) for ell in basis.shell_ls(el) for m in range(-ell, ell + 1)])
        for el in set(species)
    }
    return np.concatenate([per_element[el] for el in species])


def _is_unit_overlap(s: np.ndarray, sc_off: np.ndarray) -> bool:
    home = (sc_off == 0).all(axis=1)
    unit = np.zeros_like(s)
    unit[home] = np.eye(s.shape[1])
    return bool(np.array_equal(s, unit))


def _hermitian_partner(ud: np.ndarray, sc_off: np.ndarray) -> np.ndarray:
    """B(R) = A(−R)† for a stack A over the supercell offsets (zero where −R is absent)."""
    index = {tuple(r): k for k, r in enumerate(sc_off.tolist())}
    out = np.zeros_like(ud)
    for k, r in enumerate(sc_off.tolist()):
        minus = index.get(tuple(-x for x in r))
        if minus is not None:
            out[k] = ud[minus].conj().T
    return out


def to_sisl(ham: Hamiltonian) -> Any:
    """The same Hamiltonian as a sisl.Hamiltonian (eV, Å, SIESTA spin components)."""
    import sisl

    from hamdb.io.common import dense_from_hamiltonian

    translations, h, s = dense_from_hamiltonian(ham)
    signs = condon_shortley_signs(ham.basis, ham.species)
    spinor_signs = np.repeat(signs, ham.n_spin)
    h = h * spinor_signs[None, :, None] * spinor_signs[None, None, :]
    if s is None:  # .HSX always carries S: an orthogonal basis is written as S = 1
        s = np.zeros((len(translations), ham.n_orbitals, ham.n_orbitals))
        s[(translations == 0).all(axis=1)] = np.eye(ham.n_orbitals)
    else:
        s = s * signs[None, :, None] * signs[None, None, :]
    atoms = []
    for el in ham.species:
        orbitals = [
            sisl.AtomicOrbital(
                n=2 + ell, l=ell, m=m, zeta=1 + ham.basis.shell_ls(el)[:k].count(ell)
            )
            for k, ell in enumerate(ham.basis.shell_ls(el))
            for m in range(-ell, ell + 1)
        ]
        atoms.append(sisl.Atom(el, orbitals))
    nsc = 2 * np.abs(translations).max(axis=0) + 1
    geom = sisl.Geometry(
        ham.structure.cart_coords,
        atoms,
        lattice=sisl.Lattice(ham.structure.lattice.matrix, nsc=nsc),
    )
    spin = "spin-orbit" if ham.spin == "soc" else "unpolarized"
    out = sisl.Hamiltonian(geom, spin=spin, orthogonal=False, dtype=np.float64)
    no = ham.n_orbitals
    sc_index = [geom.lattice.sc_index(r) for r in translations]
    for r, isc in enumerate(sc_index):
        cols = isc * no
        if ham.spin == "soc":
            m = h[r]
            uu, dd, ud, du = m[0::2, 0::2], m[1::2, 1::2], m[0::2, 1::2], m[1::2, 0::2]
            parts = [uu.real, dd.real, ud.real, ud.imag, uu.imag, dd.imag, du.real, du.imag]
        else:
            parts = [h[r]]
        parts.append(s[r])
        nz = np.nonzero(np.any([p != 0 for p in parts], axis=0))
        for c, p in enumerate(parts):
            out[nz[0], nz[1] + cols, c] = p[nz]
    return out


def write(ham: Hamiltonian, path: Path | str) -> Path:
    """Write a .HSX through sisl (an .HSX keeps the basis; a .TSHS would lose it)."""
    path = Path(path)
    if path.suffix.lower() != ".hsx":
        raise InputError(f"{path}: hamdb writes SIESTA Hamiltonians as .HSX (it keeps the basis)")
    to_sisl(ham).write(str(path))
    return path
