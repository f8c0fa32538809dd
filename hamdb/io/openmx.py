"""OpenMX Hamiltonians: WannierTools' sparse H.dat/S.dat export and HamGNN's graph_data.npz.

OpenMX works in Hartree and Bohr with its own real-orbital order inside a shell
(p: x, y, z; d: 3z²−r², x²−y², xy, xz, yz), which OPENMX_ORDER maps onto DESIGN.md's order.
Both exports keep OpenMX's numbers, so both readers convert Hartree -> eV and Bohr -> Å.

Sparse H.dat/S.dat (WannierTools, `Package = 'OPENMX'`): lines "R1 R2 R3 m n Re Im" with spin
blocked (all ↑ orbitals of the cell, then all ↓), S given with spin as S⊗1, orbitals and atoms
named by the PROJECTORS and ATOM_POSITIONS of the wt.in beside them. OpenMX writes the ↓↑ block
as the elementwise conjugate of the ↑↓ block, H↓↑(R) = conj(H↑↓(R)), which is not Hermitian;
the Hermitian partner is H↓↑(R) = H↑↓(−R)†, which the reader rebuilds from the ↑↓ block (the
anti-Hermitian part of the file, ~0.06 Hartree for the MoTe2 example, is reported in
origin["openmx_spin_fix_ev"]). The pair may be given as a folder, as H.dat, or as the
HS.tar.gz WannierTools ships (read without unpacking).

graph_data.npz (HamGNN): np.savez(graph={index: torch_geometric Data}) with per graph z, pos
(Bohr), cell (1, 3, 3) Bohr, edge_index (2, E) source -> target, cell_shift (E, 3) integer R
of the target, nbr_shift (E, 3) Bohr, Hon/Son (n_atoms, nao_max²) on-site and Hoff/Soff
(E, nao_max²) off-site blocks in Hartree, each an atom's orbitals scattered into fixed slots of
a nao_max×nao_max matrix (3 s, 2 p, 1 or 2 d, 1 f shells, as HamGNN's basis_def tables). The
block of edge (i -> j, R) is <φ_i(r − τ_i)|H|φ_j(r − τ_j − R)>, ours. The npz does not say
which shells an element has: give `pao={"Mo": "s3p2d2", ...}` (OpenMX's PAO suffix). Loading
uses pickle: read only files you trust.
"""

from __future__ import annotations

import pickle
import re
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hamdb.errors import BasisError, InputError
from hamdb.io.common import (
    BOHR_ANGSTROM,
    HARTREE_EV,
    from_file_order,
    hamiltonian_from_dense,
    require_file,
    shell_permutation,
    state_permutation,
)
from hamdb.io.wannier90 import orbitals_to_basis
from hamdb.io.wanniertools import read_sparse, read_wt_in
from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian

if TYPE_CHECKING:
    from pymatgen.core import Structure

OPENMX_ORDER: dict[int, tuple[str, ...]] = {
    0: ("s",),
    1: ("px", "py", "pz"),
    2: ("dz2", "dx2-y2", "dxy", "dxz", "dyz"),
}
# Slots of an atom's shells in HamGNN's padded nao_max × nao_max blocks: shells per l.
NAO_MAX_SHELLS: dict[int, tuple[int, ...]] = {13: (2, 2, 1), 14: (3, 2, 1), 19: (3, 2, 2)}


# -- sparse H.dat / S.dat ---------------------------------------------------------------------
def _sparse_sources(path: Path) -> tuple[Any, Any, Path]:
    """(H source, S source, folder of wt.in): file paths or in-memory members of a tarball."""
    if path.is_dir():
        return path / "H.dat", path / "S.dat", path
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        try:
            with tarfile.open(path) as tar:
                members = {
                    Path(m.name).name: m for m in tar.getmembers()
                    if m.isfile() and not Path(m.name).name.startswith("._")
                }  # fmt: skip
                if "H.dat" not in members:
                    raise InputError(f"{path}: no H.dat inside the archive")
                data = {
                    name: tar.extractfile(members[name]).read()  # type: ignore[union-attr]
                    for name in ("H.dat", "S.dat") if name in members
                }  # fmt: skip
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InputError(f"{path}: unreadable archive ({exc})") from None
        return data["H.dat"], data.get("S.dat"), path.parent
    return path, path.parent / "S.dat", path.parent


def _read_sparse_any(source: Path | bytes, label: Path) -> tuple[np.ndarray, np.ndarray, int]:
    if isinstance(source, bytes):
        return read_sparse(label, content=source)
    return read_sparse(source)


def read_sparse_pair(
    path: Path | str,
    *,
    wt_in: Path | str | None = None,
    structure: Structure | None = None,
    n_electrons: float | None = None,
    valence_electrons: Mapping[str, float] | None = None,
    fermi_level_ev: float | None = None,
) -> Hamiltonian:
    """Read OpenMX's H.dat (+ S.dat) as WannierTools takes them (see the module docstring).

    n_electrons: electrons filling the bands; or valence_electrons per element (OpenMX's
    pseudopotential valence, e.g. {"Mo": 14, "Te": 16} for Mo_PBE19/Te_PBE19).
    """
    path = require_file(Path(path))
    h_src, s_src, folder = _sparse_sources(path)
    wt = read_wt_in(
        require_file(Path(wt_in) if wt_in else folder / "wt.in", "wt.in beside the H.dat")
    )
    if structure is None:
        structure = wt.structure()
    species = [site.specie.symbol for site in structure]
    if not wt.projectors:
        raise InputError(f"{wt.path}: no PROJECTORS card: cannot tell which orbitals each atom has")
    basis, perms = orbitals_to_basis(
        species, wt.projectors, f"openmx:{_pao_name(wt.projectors, species)}", path
    )
    if valence_electrons:
        basis = BasisSet(basis.name, basis.shells, valence_electrons)
    translations, h, n_states = _read_sparse_any(h_src, path)
    n_orb = int(basis.orbital_counts(species).sum())
    spin = "soc" if n_states == 2 * n_orb else "none"
    if n_states != n_orb * (2 if spin == "soc" else 1):
        raise BasisError(f"{path}: {n_states} states, the PROJECTORS give {n_orb} orbitals")
    h = h * HARTREE_EV
    fix = 0.0
    if spin == "soc":
        h, fix = _hermitian_spin_blocks(h, translations)
    s = None
    if s_src is not None and (isinstance(s_src, bytes) or Path(s_src).is_file()):
        s_translations, s_full, s_states = _read_sparse_any(s_src, path)
        if s_states != n_states:
            raise InputError(f"{path}: S.dat has {s_states} states, H.dat {n_states}")
        s = _align(s_full, s_translations, translations)
        if spin == "soc":
            s = s[:, :n_orb, :n_orb]
        s = s.real.copy()
    perm = state_permutation(basis, species, perms, spin, "blocked")
    h = from_file_order(h, perm)
    if s is not None:
        s = from_file_order(s, state_permutation(basis, species, perms, "none"))
    if spin == "none":
        h = h.real.copy()
    if n_electrons is None and valence_electrons:
        n_electrons = basis.n_valence(species)
    origin = {"format": "openmx", "code": "openmx", "file": path.name, "openmx_spin_fix_ev": fix}
    return hamiltonian_from_dense(
        structure, basis, spin, translations, h, s, source=path,
        n_electrons=float(n_electrons or 0.0), fermi_level_ev=fermi_level_ev, origin=origin,
    )  # fmt: skip


def _pao_name(projectors: Sequence[Sequence[str]], species: Sequence[str]) -> str:
    """'Mo-s3p2d2,Te-s3p2d2' style name of the per-element shells (what OpenMX calls a PAO)."""
    seen: dict[str, str] = {}
    for el, names in zip(species, projectors, strict=True):
        counts = {
            c: sum(1 for n in names if n.lower().startswith(c)) // w
            for c, w in (("s", 1), ("p", 3), ("d", 5), ("f", 7))
        }
        seen.setdefault(el, "".join(f"{c}{k}" for c, k in counts.items() if k))
    return ",".join(f"{el}-{pao}" for el, pao in sorted(seen.items()))


def _align(m: np.ndarray, m_translations: np.ndarray, translations: np.ndarray) -> np.ndarray:
    """m re-indexed onto `translations` (zero where m has no such R)."""
    index = {tuple(r): k for k, r in enumerate(m_translations.tolist())}
    out = np.zeros((len(translations), *m.shape[1:]), dtype=m.dtype)
    for k, r in enumerate(translations.tolist()):
        if tuple(r) in index:
            out[k] = m[index[tuple(r)]]
    return out


def _hermitian_spin_blocks(h: np.ndarray, translations: np.ndarray) -> tuple[np.ndarray, float]:
    """Rebuild H↓↑(R) = H↑↓(−R)† in a blocked spinor stack; return it and the largest change."""
    n = h.shape[1] // 2
    index = {tuple(r): k for k, r in enumerate(translations.tolist())}
    minus = np.array([index.get(tuple(-np.asarray(r)), -1) for r in translations.tolist()])
    ud = h[:, :n, n:]
    new_du = np.where(
        (minus >= 0)[:, None, None], ud[np.maximum(minus, 0)].conj().transpose(0, 2, 1), 0.0
    )
    fix = float(np.abs(new_du - h[:, n:, :n]).max(initial=0.0))
    out = h.copy()
    out[:, n:, :n] = new_du
    return out, fix


# -- HamGNN graph_data.npz --------------------------------------------------------------------
def parse_pao(spec: str) -> tuple[int, ...]:
    """Shell l's of an OpenMX PAO suffix such as 's3p2d2' (all s, then p, then d, then f)."""
    shells: list[int] = []
    for letter, count in re.findall(r"([spdf])(\d+)", spec.split("-")[-1]):
        shells += ["spdf".index(letter)] * int(count)
    if not shells:
        raise InputError(f"PAO spec {spec!r} names no shells (expected e.g. 's3p2d2')")
    return tuple(shells)


def slot_indices(shell_ls: Sequence[int], nao_max: int) -> np.ndarray:
    """Positions of an atom's orbitals (OpenMX order) inside HamGNN's padded block."""
    try:
        capacity = NAO_MAX_SHELLS[nao_max]
    except KeyError:
        raise InputError(
            f"nao_max {nao_max} is not one of HamGNN's {sorted(NAO_MAX_SHELLS)}"
        ) from None
    widths = [c * (2 * ell + 1) for ell, c in enumerate(capacity)]
    starts = np.concatenate([[0], np.cumsum(widths)])
    used = [0] * len(capacity)
    slots: list[int] = []
    for ell in shell_ls:
        if ell >= len(capacity) or used[ell] >= capacity[ell]:
            raise BasisError(
                f"shells {tuple(shell_ls)} do not fit HamGNN's nao_max={nao_max} layout"
            )
        base = int(starts[ell]) + used[ell] * (2 * ell + 1)
        slots += range(base, base + 2 * ell + 1)
        used[ell] += 1
    return np.array(slots, dtype=np.int64)


def _graph_field(graph: Any, key: str) -> np.ndarray:
    value = graph[key] if isinstance(graph, Mapping) else getattr(graph, key, None)
    if value is None:
        raise KeyError(key)
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def read_graph_npz(
    path: Path | str,
    *,
    pao: Mapping[str, str] | None = None,
    basis: BasisSet | None = None,
    index: int | None = None,
    n_electrons: float | None = None,
) -> Hamiltonian:
    """One graph of a HamGNN graph_data.npz as a spinless Hamiltonian (see the module docstring).

    pao: element -> OpenMX PAO suffix ("s3p2d2"); or a BasisSet whose shells are in OpenMX
    order. index: which graph (default: the only one, else an error).
    """
    from pymatgen.core import Lattice, Structure

    path = require_file(Path(path))
    try:
        with np.load(path, allow_pickle=True) as data:
            graphs = data["graph"].item()
    except (OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        raise InputError(f"{path}: not a HamGNN graph_data.npz ({exc})") from None
    if index is None:
        if len(graphs) != 1:
            raise InputError(f"{path}: holds {len(graphs)} graphs; choose one with index=")
        index = next(iter(graphs))
    if index not in graphs:
        raise InputError(f"{path}: no graph {index}")
    g = graphs[index]
    try:
        z = _graph_field(g, "z").astype(np.int64)
        pos = _graph_field(g, "pos").astype(float) * BOHR_ANGSTROM
        cell = _graph_field(g, "cell").astype(float).reshape(3, 3) * BOHR_ANGSTROM
        edge_index = _graph_field(g, "edge_index").astype(np.int64)
        cell_shift = _graph_field(g, "cell_shift").astype(np.int64)
        hon, hoff = _graph_field(g, "Hon"), _graph_field(g, "Hoff")
        son = soff = None
        if _has(g, "Son"):
            son, soff = _graph_field(g, "Son"), _graph_field(g, "Soff")
    except KeyError as exc:
        raise InputError(f"{path}: graph {index} lacks the field {exc.args[0]!r}") from None
    from pymatgen.core.periodic_table import Element

    species = [Element.from_Z(int(x)).symbol for x in z]
    if basis is None:
        if pao is None:
            raise InputError(
                f"{path}: the npz does not say which shells each element has; give pao="
            )
        missing = sorted(set(species) - set(pao))
        if missing:
            raise BasisError(f"{path}: no PAO given for element {missing[0]}")
        basis = BasisSet(
            "openmx:" + ",".join(f"{el}-{pao[el]}" for el in sorted(set(species))),
            {el: parse_pao(pao[el]) for el in set(species)},
        )
    structure = Structure(Lattice(cell), species, pos, coords_are_cartesian=True)
    nao2 = hon.shape[1]
    nao_max = round(float(np.sqrt(nao2)))
    if nao_max * nao_max != nao2 or hoff.shape[1:] != (nao2,) or hon.shape[0] != len(z):
        raise InputError(f"{path}: Hon/Hoff shapes {hon.shape}/{hoff.shape} are not (n, nao_max²)")
    if edge_index.shape != (2, hoff.shape[0]) or cell_shift.shape != (hoff.shape[0], 3):
        raise InputError(f"{path}: edge_index/cell_shift do not match {hoff.shape[0]} Hoff blocks")
    slots = {el: slot_indices(basis.shell_ls(el), nao_max) for el in set(species)}
    perms = {el: shell_permutation(basis.shell_ls(el), OPENMX_ORDER) for el in set(species)}

    def block(flat: np.ndarray, i: int, j: int, scale: float) -> np.ndarray:
        full = flat.reshape(nao_max, nao_max)
        a, b = species[i], species[j]
        m = full[np.ix_(slots[a], slots[b])] * scale
        return m[np.ix_(perms[a], perms[b])]

    keys = [(i, i, (0, 0, 0)) for i in range(len(z))]
    keys += [
        (int(i), int(j), tuple(int(x) for x in r))
        for (i, j), r in zip(edge_index.T, cell_shift, strict=True)
    ]
    h_rows = list(hon) + list(hoff)
    h_blocks = {k: block(f, k[0], k[1], HARTREE_EV) for k, f in zip(keys, h_rows, strict=True)}
    s_blocks = None
    if son is not None and soff is not None:
        s_blocks = {
            k: block(f, k[0], k[1], 1.0) for k, f in zip(keys, list(son) + list(soff), strict=True)
        }
    for what, rows in (("H", h_rows), ("S", [] if son is None else list(son) + list(soff))):
        if rows and not np.isfinite(np.asarray(rows, dtype=float)).all():
            raise InputError(f"{path}: {what} blocks of graph {index} have non-finite values")
    if n_electrons is None and basis.valence_electrons:
        n_electrons = basis.n_valence(species)
    return Hamiltonian.from_blocks(
        structure, basis, "none", h_blocks, s_blocks,  # type: ignore[arg-type]
        n_electrons=float(n_electrons or 0.0),
        origin={"format": "openmx", "file": path.name, "graph": index},
    )  # fmt: skip


def _has(graph: Any, key: str) -> bool:
    if isinstance(graph, Mapping):
        return key in graph
    return getattr(graph, key, None) is not None


def write_graph_npz(ham: Hamiltonian, path: Path | str) -> Path:
    """Write a spinless Hamiltonian as a one-graph HamGNN graph_data.npz (Hartree, Bohr).

    Shells must fit HamGNN's slot layout (at most 3 s, 2 p, 2 d shells, in that order).
    """
    import torch
    from torch_geometric.data import Data

    path = Path(path)
    if ham.spin != "none":
        raise InputError(
            f"{path}: HamGNN's spinless graph_data.npz cannot hold a {ham.spin} Hamiltonian"
        )
    species = list(ham.species)
    # HamGNN's two OpenMX layouts: nao_max 14 holds s3p2d1, 19 holds s3p2d2
    two_d = any(ham.basis.shell_ls(el).count(2) > 1 for el in set(species))
    nao_max = 19 if two_d else 14
    slots = {el: slot_indices(ham.basis.shell_ls(el), nao_max) for el in set(species)}
    perms = {el: shell_permutation(ham.basis.shell_ls(el), OPENMX_ORDER) for el in set(species)}
    inverse = {el: np.argsort(p) for el, p in perms.items()}

    def padded(block: np.ndarray, i: int, j: int, scale: float) -> np.ndarray:
        a, b = species[i], species[j]
        file_block = block[np.ix_(inverse[a], inverse[b])] / scale
        out = np.zeros((nao_max, nao_max))
        out[np.ix_(slots[a], slots[b])] = file_block
        return out.reshape(-1)

    edges = ham.edges
    onsite = (edges[:, 0] == edges[:, 1]) & (edges[:, 2:] == 0).all(axis=1)
    on_order = np.flatnonzero(onsite)[np.argsort(edges[onsite, 0])]
    off = np.flatnonzero(~onsite)
    hon = np.array([padded(ham.h_block(e), edges[e, 0], edges[e, 0], HARTREE_EV) for e in on_order])
    hoff = np.array(
        [padded(ham.h_block(e), edges[e, 0], edges[e, 1], HARTREE_EV) for e in off]
    ).reshape(-1, nao_max**2)
    key_of = {tuple(edges[e]): k for k, e in enumerate(off)}
    inv_edge = [key_of[(edges[e, 1], edges[e, 0], *(-edges[e, 2:]))] for e in off]
    cell_bohr = ham.structure.lattice.matrix / BOHR_ANGSTROM
    fields: dict[str, Any] = {
        "z": torch.tensor([site.specie.Z for site in ham.structure], dtype=torch.long),
        "pos": torch.tensor(ham.structure.cart_coords / BOHR_ANGSTROM, dtype=torch.float64),
        "cell": torch.tensor(cell_bohr[None], dtype=torch.float64),
        "node_counts": torch.tensor([len(species)], dtype=torch.long),
        "edge_index": torch.tensor(edges[off, :2].T.astype(np.int64)),
        "inv_edge_idx": torch.tensor(np.array(inv_edge, dtype=np.int64)),
        "cell_shift": torch.tensor(edges[off, 2:].astype(np.int64)),
        "nbr_shift": torch.tensor(edges[off, 2:].astype(float) @ cell_bohr),
        "Hon": torch.tensor(hon),
        "Hoff": torch.tensor(hoff),
        "hamiltonian": torch.tensor(np.concatenate([hon, hoff])),
    }
    if ham.s is not None:
        son = np.array([padded(ham.s_block(e), edges[e, 0], edges[e, 0], 1.0) for e in on_order])
        soff = np.array([padded(ham.s_block(e), edges[e, 0], edges[e, 1], 1.0) for e in off])
        soff = soff.reshape(-1, nao_max**2)
        fields["Son"], fields["Soff"] = torch.tensor(son), torch.tensor(soff)
        fields["overlap"] = torch.tensor(np.concatenate([son, soff]))
    np.savez(path, graph={0: Data(**fields)})
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def read(path: Path | str, **options: Any) -> Hamiltonian:
    """OpenMX reader: a HamGNN .npz, or WannierTools' sparse H.dat/S.dat (file, folder, tarball)."""
    path = Path(path)
    if path.suffix == ".npz":
        return read_graph_npz(path, **options)
    return read_sparse_pair(path, **options)


def write(ham: Hamiltonian, path: Path | str, **options: Any) -> Path:
    """OpenMX writer: HamGNN graph_data.npz (spinless)."""
    return write_graph_npz(ham, path, **options)
