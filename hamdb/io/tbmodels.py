"""TBmodels' HDF5 model files, read and written with h5py (no TBmodels import needed).

A TBmodels file holds `uc` (lattice rows, Å), `pos` (fractional position of every state),
`occ` (occupied states), `size`, `dim`, `sparse`, `type_tag` and a group `hop` with one
(R, mat) pair per stored translation. TBmodels keeps only one of each pair ±R and half the
on-site term: H(k) = Σ_R hop[R] e^{2πik·R} + h.c. (tbmodels.Model.hamilton), so the full
H(R) = hop[R] + hop[−R]†. Its `mat` is in eV with states at their `pos`, the R convention of
DESIGN.md (convention 2 of PythTB, a lattice gauge).

What the file lacks: elements (give `species=`, one per distinct position in order of first
appearance) and orbital characters (give `orbitals={"In": "s;p", "As": "p"}` in Wannier90's
per-shell order; by default every state of a site counts as an s orbital, which bands do not
mind but symmetry analysis does). Spin: `spin="soc"` reads the states as spinors, blocked (all
↑ then all ↓, how Wannier90-from-VASP models arrive) unless `spin_order="interleaved"`;
without it, a file whose second half of positions repeats the first is taken as blocked SOC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hamdb.errors import BasisError, InputError
from hamdb.io.common import (
    dense_from_hamiltonian,
    from_file_order,
    hamiltonian_from_dense,
    require_file,
    shells_from_names,
    spinor_permutation,
    to_file_order,
)
from hamdb.io.wannier90 import W90_ORDER, expand_projection
from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian, SpinKind

TYPE_TAG = "tbmodels.model"


def _read_raw(path: Path) -> tuple[np.ndarray, np.ndarray, int | None, dict[tuple, np.ndarray]]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            tag = f["type_tag"][()] if "type_tag" in f else b""
            tag = tag.decode() if isinstance(tag, bytes) else str(tag)
            if tag != TYPE_TAG:
                raise InputError(f"{path}: not a TBmodels model file (type_tag {tag!r})")
            if bool(f["sparse"][()]) if "sparse" in f else False:
                raise InputError(f"{path}: sparse TBmodels files are not supported; save it dense")
            uc = np.asarray(f["uc"][()], dtype=float)
            pos = np.asarray(f["pos"][()], dtype=float)
            occ = int(f["occ"][()]) if "occ" in f and f["occ"].shape == () else None
            hop: dict[tuple, np.ndarray] = {}
            for key in f["hop"]:
                r = tuple(int(x) for x in f["hop"][key]["R"][()])
                hop[r] = hop.get(r, 0) + np.asarray(f["hop"][key]["mat"][()], dtype=np.complex128)
    except (OSError, KeyError) as exc:
        raise InputError(f"{path}: unreadable TBmodels file ({exc})") from None
    if uc.shape != (3, 3) or pos.ndim != 2 or pos.shape[1] != 3:
        raise InputError(f"{path}: only 3D TBmodels models are supported (uc {uc.shape})")
    for r, mat in hop.items():
        if mat.shape != (len(pos), len(pos)):
            raise InputError(f"{path}: hopping at R={r} has shape {mat.shape}, size is {len(pos)}")
    return uc, pos, occ, hop


def read(
    path: Path | str,
    *,
    species: Sequence[str] | None = None,
    orbitals: Mapping[str, str | Sequence[str]] | None = None,
    spin: SpinKind | None = None,
    spin_order: str = "blocked",
    n_electrons: float | None = None,
) -> Hamiltonian:
    """Read a TBmodels HDF5 file (see the module docstring for the options)."""
    from pymatgen.core import Lattice, Structure

    path = require_file(Path(path))
    uc, pos, occ, hop = _read_raw(path)
    n_states = len(pos)
    if spin is None:
        half = n_states // 2
        repeats = n_states % 2 == 0 and np.allclose(pos[:half], pos[half:], atol=1e-8)
        spin = "soc" if repeats and spin_order == "blocked" else "none"
    if spin == "soc":
        if n_states % 2:
            raise BasisError(f"{path}: {n_states} states cannot be spinors")
        orbital_pos = pos[: n_states // 2] if spin_order == "blocked" else pos[0::2]
    else:
        orbital_pos = pos
    # sites: distinct positions (mod 1) in order of first appearance
    wrapped = np.round(np.mod(orbital_pos, 1.0), 6) % 1.0
    uniq, first, site_of = np.unique(wrapped, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    site_of = rank[site_of.reshape(-1)]
    site_pos = uniq[order]
    if species is None:
        raise InputError(
            f"{path}: TBmodels files carry no elements; give species= for the "
            f"{len(site_pos)} sites at {site_pos.tolist()}"
        )
    if len(species) != len(site_pos):
        raise BasisError(f"{path}: {len(species)} species given for {len(site_pos)} sites")
    try:
        structure = Structure(Lattice(uc), list(species), site_pos)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    shells: dict[str, tuple[int, ...]] = {}
    local: list[np.ndarray] = []
    for a, el in enumerate(species):
        n_site = int((site_of == a).sum())
        spec = (orbitals or {}).get(el)
        names = (
            ["s"] * n_site
            if spec is None
            else (expand_projection(spec) if isinstance(spec, str) else list(spec))
        )
        if len(names) != n_site:
            raise BasisError(f"{path}: site {a} ({el}) has {n_site} orbitals, {len(names)} named")
        ls, perm = shells_from_names(names)
        if shells.setdefault(el, ls) != ls:
            raise BasisError(f"{path}: sites of {el} carry different orbitals")
        local.append(perm)
    basis = BasisSet(f"tbmodels:{structure.composition.reduced_formula}", shells)
    file_orbitals = [np.flatnonzero(site_of == a) for a in range(len(species))]
    orbital_perm = np.concatenate([file_orbitals[a][local[a]] for a in range(len(species))])
    perm = spinor_permutation(orbital_perm, spin, spin_order)

    translations = sorted(set(hop) | {tuple(-x for x in r) for r in hop})
    full = np.zeros((len(translations), n_states, n_states), dtype=np.complex128)
    for k, r in enumerate(translations):
        minus = tuple(-x for x in r)
        if r in hop:
            full[k] += hop[r]
        if minus in hop:
            full[k] += hop[minus].conj().T
    full = from_file_order(full, perm)
    if spin == "none":
        full = full.real.copy() if np.abs(full.imag).max(initial=0.0) < 1e-12 else full
        if np.iscomplexobj(full):
            raise InputError(f"{path}: complex hoppings in a spinless model; give spin='soc'")
    if n_electrons is None and occ is not None:
        n_electrons = float(occ * (1 if spin == "soc" else 2))
    return hamiltonian_from_dense(
        structure, basis, spin, np.array(translations), full, source=path,
        n_electrons=float(n_electrons or 0.0), origin={"format": "tbmodels", "file": path.name},
    )  # fmt: skip


def write(ham: Hamiltonian, path: Path | str, *, spin_order: str = "blocked") -> Path:
    """Write `ham` as a dense TBmodels HDF5 file (Wannier90 orbital order per shell)."""
    import h5py

    from hamdb.io.common import shell_permutation, state_permutation

    path = Path(path)
    if ham.s is not None:
        raise InputError(f"{path}: TBmodels models are orthogonal; this Hamiltonian has an overlap")
    species = list(ham.species)
    perms = [shell_permutation(ham.basis.shell_ls(el), W90_ORDER) for el in species]
    perm = state_permutation(ham.basis, species, perms, ham.spin, spin_order)
    translations, h, _ = dense_from_hamiltonian(ham)
    h = to_file_order(h, perm)
    frac = np.asarray(ham.structure.frac_coords, dtype=float)
    orbital_pos = np.repeat(frac, ham.orbital_counts, axis=0)
    if ham.spin == "soc":
        orbital_pos = (
            np.concatenate([orbital_pos, orbital_pos])
            if spin_order == "blocked"
            else np.repeat(orbital_pos, 2, axis=0)
        )
    index = {tuple(int(x) for x in r): k for k, r in enumerate(translations)}
    with h5py.File(path, "w") as f:
        f["type_tag"] = TYPE_TAG
        f["dim"] = 3
        f["size"] = ham.n_states
        f["sparse"] = False
        f["occ"] = round(ham.n_electrons / (1 if ham.spin == "soc" else 2))
        f["uc"] = np.asarray(ham.structure.lattice.matrix)
        f["pos"] = orbital_pos
        group = f.create_group("hop")
        count = 0
        for r, k in index.items():
            minus = tuple(-x for x in r)
            if r < minus:  # the −R partner carries it
                continue
            mat = h[k] / 2 if r == minus else h[k]
            sub = group.create_group(str(count))
            sub["R"] = np.array(r, dtype=np.int64)
            sub["mat"] = np.asarray(mat, dtype=np.complex128)
            count += 1
    return path
