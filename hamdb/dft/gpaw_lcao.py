"""GPAW LCAO (PBE, dzp) + second-variation spin-orbit Hamiltonians H(R), S(R) of a crystal.

One run, for a pymatgen Structure:

1. **SCF**: PBE LCAO in GPAW's dzp basis on a Γ-centred k-mesh chosen from a k-point density
   (symmetry on: the density is what is wanted, the irreducible zone suffices).
2. **Full-zone pass**: on a Γ-centred mesh large enough for the basis cut-off (no symmetry), at
   fixed density, GPAW's own LCAO matrices per k: H(k) (`calculate_hamiltonian_matrix`), S(k)
   (`S_qMM`) and the projector overlaps P_Mi(k) (`P_aqMi`).
3. **SOC projection**: GPAW's PAW spin-orbit term (`gpaw.spinorbit.soc`: ⟨φ_i|(1/r) dV/dr L|φ_j⟩
   α²/4 per atom, on the converged density) projected into the LCAO basis,
   V_so(k)_{μs,νs'} = Σ_a Σ_ij P_μi (σ·L)^{ss'}_ij P*_νj, the same form GPAW uses for its PAW
   corrections dH, dS. H_soc(k) = H(k)⊗σ0 + V_so(k), spinor index 2·orbital + s.
4. **Inverse Bloch transform** over the mesh to the R images each atom pair needs.

Conventions, found by test and checked by every `check_eigenvalues` (the two traps the issue
names): GPAW's LCAO matrices are H_g(k) = Σ_R e^{−2πi k·R} H(R) with H(R) in DESIGN.md's
convention, i.e. the Bloch phase has the opposite sign; so H(R) = (1/N_k) Σ_k e^{+2πi k·R} H_g(k).
The projector products are P dX P† with GPAW's `P_aqMi` as stored (not conjugated) in that same
convention. GPAW's real harmonics are DESIGN's order and signs for l ≤ 3 (see gpaw_basis).

Which R a pair (i, j) needs: H_ij(R) is non-zero only if the orbital spheres overlap
(|τ_j + R − τ_i| < rc_i + rc_j) or both touch one projector sphere of some atom a (the PAW
corrections are three-centre); rc are GPAW's own spline cut-offs. The mesh must map these R to
distinct residues mod N (else the transform aliases): a smaller mesh raises DFTError naming the
mesh needed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hamdb.dft.gpaw_basis import BOHR_ANGSTROM, cell_orbital_map, gpaw_basis
from hamdb.errors import DFTError
from hamdb.physics.hamiltonian import Hamiltonian

if TYPE_CHECKING:
    from pymatgen.core import Structure

HARTREE_EV = 27.211386024367243
METHOD = "gpaw-lcao-pbe-dzp"
MIN_DISTANCE_ANGSTROM = 0.5  # closer atoms are a broken structure, not a material
K_CHUNK = 128  # k-points per fixed-density GPAW run of the full-zone pass (bounds memory)


@dataclass(frozen=True)
class LcaoSettings:
    """What a run depends on; recorded in the Hamiltonian's origin and the row's settings.

    kdensity: SCF k-points per Å⁻¹ of reciprocal length (2π included): N_c = ⌈kdensity·|b_c|⌉.
    grid_spacing: real-space grid spacing h (Å). width_ev: Fermi-Dirac smearing (eV).
    mesh: full-zone mesh for H(R); None picks the smallest one the basis cut-off allows.
    """

    kdensity: float = 2.5
    basis: str = "dzp"
    xc: str = "PBE"
    grid_spacing: float = 0.2
    width_ev: float = 0.05
    maxiter: int = 80
    mesh: tuple[int, int, int] | None = None

    @property
    def method(self) -> str:
        return f"gpaw-lcao-{self.xc.lower()}-{self.basis}"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mesh"] = list(self.mesh) if self.mesh else None
        return data


@dataclass
class Timings:
    """Wall seconds of the stages of one run."""

    scf_s: float = 0.0
    full_zone_s: float = 0.0
    soc_s: float = 0.0
    transform_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


@dataclass
class LcaoResult:
    """The two canonical Hamiltonians of one run plus what a check or benchmark needs."""

    h_none: Hamiltonian
    h_soc: Hamiltonian
    scf_mesh: tuple[int, int, int]
    mesh: tuple[int, int, int]
    timings: Timings
    calc: Any = field(repr=False, default=None)  # the converged GPAW calculator (SCF)


# -- structure handling ----------------------------------------------------------------------
def validate_structure(structure: Structure, settings: LcaoSettings | None = None) -> None:
    """Raise DFTError for what GPAW would fail on late or silently: overlapping atoms, no setups."""
    settings = settings or LcaoSettings()
    if len(structure) == 0:
        raise DFTError("structure has no atoms")
    if not structure.is_ordered:
        raise DFTError("structure is disordered (partial occupancies): GPAW needs one species per site")
    dmat = structure.distance_matrix + np.eye(len(structure)) * 1e9
    images = _self_image_distance(structure)
    dmin = min(float(dmat.min()), images)
    if dmin < MIN_DISTANCE_ANGSTROM:
        raise DFTError(f"atoms overlap: two sites are {dmin:.3f} Å apart (< {MIN_DISTANCE_ANGSTROM} Å)")
    gpaw_basis([s.specie.symbol for s in structure], settings.basis, settings.xc)


def _self_image_distance(structure: Structure) -> float:
    """Shortest lattice vector (Å): an atom and its own periodic image."""
    cell = structure.lattice.matrix
    best = math.inf
    for n in np.ndindex(3, 3, 3):
        v = np.array(n) - 1
        if v.any():
            best = min(best, float(np.linalg.norm(v @ cell)))
    return best


def kmesh_from_density(structure: Structure, kdensity: float) -> tuple[int, int, int]:
    """Γ-centred mesh with N_c = max(1, ⌈kdensity · |b_c|⌉), b including 2π (Å⁻¹)."""
    b = np.linalg.norm(structure.lattice.reciprocal_lattice.matrix, axis=1)
    return tuple(max(1, math.ceil(kdensity * x - 1e-9)) for x in b)  # type: ignore[return-value]


def _atoms(structure: Structure) -> Any:
    from ase import Atoms

    return Atoms(
        symbols=[s.specie.symbol for s in structure],
        cell=structure.lattice.matrix,
        scaled_positions=structure.frac_coords,
        pbc=True,
    )


# -- which R each pair needs -----------------------------------------------------------------
def _translations(cell: np.ndarray, radius: float) -> np.ndarray:
    """All integer R with |R·cell| possibly ≤ radius (a box from the reciprocal norms)."""
    recip = np.linalg.inv(cell).T  # rows b_c / 2π
    n = [int(math.ceil(radius * np.linalg.norm(b))) + 1 for b in recip]
    grid = np.array(np.meshgrid(*[np.arange(-m, m + 1) for m in n], indexing="ij"))
    return grid.reshape(3, -1).T


def needed_translations(
    frac: np.ndarray,
    cell: np.ndarray,
    orbital_rc: Sequence[float],
    projector_rc: Sequence[float],
    margin: float = 1e-3,
) -> dict[tuple[int, int], np.ndarray]:
    """{(i, j): R array} of the translations where H_ij(R) or S_ij(R) can be non-zero (Å radii).

    Direct: |τ_j + R − τ_i| < rc_i + rc_j. Through the PAW projectors of atom a at τ_a + L:
    |τ_a + L − τ_i| < rc_i + rp_a and |τ_a + L − τ_j − R| < rc_j + rp_a, i.e. R = L − L' with
    (a, L) ∈ A_i, (a, L') ∈ A_j.
    """
    nat = len(frac)
    rc = np.asarray(orbital_rc, float)
    rp = np.asarray(projector_rc, float)
    reach = 2 * rc.max() + 2 * rp.max() + margin
    L = _translations(cell, reach)
    cart = frac @ cell
    Lc = L @ cell
    # touch[i][a] = L indices where atom a's projector sphere at τ_a + L meets orbital sphere i
    touch = [
        [np.nonzero(np.linalg.norm(cart[a] + Lc - cart[i], axis=1) < rc[i] + rp[a] + margin)[0]
         for a in range(nat)]
        for i in range(nat)
    ]  # fmt: skip
    result: dict[tuple[int, int], np.ndarray] = {}
    for i in range(nat):
        for j in range(nat):
            d = np.linalg.norm(cart[j] + Lc - cart[i], axis=1)
            sets = [L[d < rc[i] + rc[j] + margin]]
            for a in range(nat):
                li, lj = L[touch[i][a]], L[touch[j][a]]
                if len(li) and len(lj):
                    sets.append((li[:, None, :] - lj[None, :, :]).reshape(-1, 3))
            result[(i, j)] = np.unique(np.concatenate(sets), axis=0)
    return result


def required_mesh(pairs: dict[tuple[int, int], np.ndarray]) -> tuple[int, int, int]:
    """The smallest mesh whose per-direction size exceeds every pair's span of R."""
    span = np.zeros(3, dtype=int)
    for R in pairs.values():
        span = np.maximum(span, R.max(axis=0) - R.min(axis=0) + 1)
    return tuple(int(x) for x in span)  # type: ignore[return-value]


def check_mesh(pairs: dict[tuple[int, int], np.ndarray], mesh: Sequence[int]) -> None:
    """DFTError if two R a pair needs coincide modulo the mesh (the transform would alias them)."""
    N = np.asarray(mesh)
    for (i, j), R in pairs.items():
        if len(np.unique(R % N, axis=0)) < len(R):
            need = required_mesh(pairs)
            raise DFTError(
                f"k-mesh {'x'.join(map(str, mesh))} is too small for the basis cut-off: atoms "
                f"{i}, {j} need {len(R)} distinct R images; use at least {'x'.join(map(str, need))}"
            )


# -- the run --------------------------------------------------------------------------------
def _gpaw_calculator(settings: LcaoSettings, mesh: Sequence[int]) -> Any:
    from gpaw.old.calculator import GPAW

    return GPAW(
        mode="lcao",
        basis=settings.basis,
        xc=settings.xc,
        h=settings.grid_spacing,
        kpts={"size": tuple(mesh), "gamma": True},
        nbands="nao",
        occupations={"name": "fermi-dirac", "width": settings.width_ev},
        maxiter=settings.maxiter,
        txt=None,
    )


def run_scf(structure: Structure, settings: LcaoSettings) -> tuple[Any, tuple[int, int, int]]:
    """Converged GPAW calculator of the structure (DFTError if the SCF does not converge)."""
    from gpaw import KohnShamConvergenceError

    validate_structure(structure, settings)
    mesh = kmesh_from_density(structure, settings.kdensity)
    atoms = _atoms(structure)
    atoms.calc = _gpaw_calculator(settings, mesh)
    try:
        atoms.get_potential_energy()
    except KohnShamConvergenceError:
        raise DFTError(f"SCF did not converge in {settings.maxiter} iterations") from None
    return atoms.calc, mesh


def soc_operators(calc: Any) -> dict[int, np.ndarray]:
    """{atom: (2, 2, ni, ni)} PAW spin-orbit matrices (σ·L)^{ss'}_ij in eV (GPAW's `soc`)."""
    from gpaw.spinorbit import soc

    out = {}
    for a, D_sp in calc.density.D_asp.items():
        dVL = soc(calc.wfs.setups[a], calc.hamiltonian.xc, D_sp)
        H = np.empty((2, 2, *dVL.shape[1:]), complex)
        H[0, 0] = dVL[2]
        H[0, 1] = dVL[0] - 1j * dVL[1]
        H[1, 0] = dVL[0] + 1j * dVL[1]
        H[1, 1] = -dVL[2]
        out[a] = H * HARTREE_EV
    return out


def _k_matrices(fz: Any, soc_aH: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kpts, M_g(k) spinor H⊗σ0 + V_so in eV, S_g(k)) of a fixed-density calculator, GPAW phase."""
    from gpaw.utilities.tools import tri2full

    wfs, ham = fz.wfs, fz.hamiltonian
    vt_xMM = wfs.basis_functions.calculate_potential_matrices(ham.vt_sG[0])
    nao = wfs.setups.nao
    nk = len(wfs.kpt_u)
    M = np.zeros((nk, 2 * nao, 2 * nao), complex)
    S = np.empty((nk, nao, nao), complex)
    for n, kpt in enumerate(wfs.kpt_u):
        H = np.array(wfs.eigensolver.calculate_hamiltonian_matrix(ham, wfs, kpt, vt_xMM, root=-1), complex)
        tri2full(H)
        s = np.array(wfs.S_qMM[kpt.q], complex)
        tri2full(s)
        S[n] = s
        H *= HARTREE_EV
        M[n, 0::2, 0::2] = H
        M[n, 1::2, 1::2] = H
        for a, Hso in soc_aH.items():
            P = wfs.P_aqMi[a][kpt.q]
            for s1 in range(2):
                for s2 in range(2):
                    M[n, s1::2, s2::2] += P @ Hso[s1, s2] @ P.conj().T
    return wfs.kd.ibzk_kc.copy(), M, S


def _full_zone(
    calc: Any, mesh: Sequence[int], soc_aH: dict[int, np.ndarray], pairs: dict, slices: list[slice]
) -> tuple[dict, dict]:
    """Accumulate H(R) (spinor) and S(R) per pair over the mesh, in chunks of fixed-density runs."""
    grid = np.array(np.meshgrid(*[np.arange(n) / n for n in mesh], indexing="ij")).reshape(3, -1).T
    nk = len(grid)
    acc_h = {p: np.zeros((len(R), 2 * (slices[p[0]].stop - slices[p[0]].start),
                          2 * (slices[p[1]].stop - slices[p[1]].start)), complex)
             for p, R in pairs.items()}  # fmt: skip
    acc_s = {p: np.zeros((len(R), slices[p[0]].stop - slices[p[0]].start,
                          slices[p[1]].stop - slices[p[1]].start), complex)
             for p, R in pairs.items()}  # fmt: skip
    for start in range(0, nk, K_CHUNK):
        chunk = grid[start : start + K_CHUNK]
        fz = calc.fixed_density(kpts=chunk, symmetry="off", txt=None)
        kpts, M, S = _k_matrices(fz, soc_aH)
        if not np.allclose(kpts, chunk, atol=1e-10):
            raise DFTError("GPAW reordered the k-points of the full-zone pass")
        for (i, j), R in pairs.items():
            phase = np.exp(2j * np.pi * (kpts @ R.T)).T / nk  # (nR, nk), GPAW's e^{-ikR} undone
            si, sj = slices[i], slices[j]
            ssi = slice(2 * si.start, 2 * si.stop)
            ssj = slice(2 * sj.start, 2 * sj.stop)
            blk = M[:, ssi, ssj]
            acc_h[(i, j)] += (phase @ blk.reshape(len(kpts), -1)).reshape(acc_h[(i, j)].shape)
            blk = S[:, si, sj]
            acc_s[(i, j)] += (phase @ blk.reshape(len(kpts), -1)).reshape(acc_s[(i, j)].shape)
    return acc_h, acc_s


def _projector_cutoffs(calc: Any) -> list[float]:
    return [max(pt.get_cutoff() for pt in s.pt_j) * BOHR_ANGSTROM for s in calc.wfs.setups]


def _orbital_cutoffs(calc: Any) -> list[float]:
    return [max(bf.rc for bf in s.basis.bf_j) * BOHR_ANGSTROM for s in calc.wfs.setups]


def compute(structure: Structure, settings: LcaoSettings | None = None) -> LcaoResult:
    """SCF + full-zone pass + SOC projection: the non-SOC and SOC canonical Hamiltonians."""
    import gpaw
    from gpaw.spinorbit import soc_eigenstates

    settings = settings or LcaoSettings()
    timings = Timings()
    t0 = time.perf_counter()
    calc, scf_mesh = run_scf(structure, settings)
    timings.scf_s = time.perf_counter() - t0

    species = [s.specie.symbol for s in structure]
    basis = gpaw_basis(species, settings.basis, settings.xc)
    counts = basis.orbital_counts(species)
    starts = np.concatenate([[0], np.cumsum(counts)])
    slices = [slice(int(starts[i]), int(starts[i + 1])) for i in range(len(species))]
    if int(starts[-1]) != calc.wfs.setups.nao:
        raise DFTError(f"GPAW has {calc.wfs.setups.nao} orbitals, basis {basis.name} {starts[-1]}")
    pairs = needed_translations(
        structure.frac_coords, structure.lattice.matrix, _orbital_cutoffs(calc), _projector_cutoffs(calc)
    )
    mesh = tuple(settings.mesh) if settings.mesh else required_mesh(pairs)
    check_mesh(pairs, mesh)

    t0 = time.perf_counter()
    soc_aH = soc_operators(calc)
    timings.soc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    acc_h, acc_s = _full_zone(calc, mesh, soc_aH, pairs, slices)
    timings.full_zone_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    index, sign = cell_orbital_map(species, basis)
    h_none, h_soc, s_blocks = {}, {}, {}
    for (i, j), R in pairs.items():
        oi = index[slices[i]] - starts[i]
        oj = index[slices[j]] - starts[j]
        gi, gj = sign[slices[i]], sign[slices[j]]
        si2 = np.stack([2 * oi, 2 * oi + 1], 1).ravel()
        sj2 = np.stack([2 * oj, 2 * oj + 1], 1).ravel()
        for r, Rv in enumerate(R):
            key = (i, j, tuple(int(x) for x in Rv))
            hs = acc_h[(i, j)][r][np.ix_(si2, sj2)] * np.outer(np.repeat(gi, 2), np.repeat(gj, 2))
            sb = acc_s[(i, j)][r][np.ix_(oi, oj)] * np.outer(gi, gj)
            h_soc[key] = hs
            h_none[key] = 0.5 * (hs[0::2, 0::2] + hs[1::2, 1::2]).real
            s_blocks[key] = sb.real
    timings.soc_s += 0.0
    nel = float(calc.wfs.nvalence)
    efermi = float(calc.get_fermi_level())
    efermi_soc = float(soc_eigenstates(calc).fermi_level)
    origin = {
        "code": "gpaw",
        "version": gpaw.__version__,
        "method": settings.method,
        "settings": {**settings.as_dict(), "scf_mesh": list(scf_mesh), "mesh": list(mesh)},
    }
    common = {"n_electrons": nel, "origin": origin}
    ham_none = Hamiltonian.from_blocks(structure, basis, "none", h_none, s_blocks,
                                       fermi_level_ev=efermi, **common)  # fmt: skip
    ham_soc = Hamiltonian.from_blocks(structure, basis, "soc", h_soc, s_blocks,
                                      fermi_level_ev=efermi_soc, **common)  # fmt: skip
    timings.transform_s = time.perf_counter() - t0
    return LcaoResult(ham_none, ham_soc, scf_mesh, mesh, timings, calc)  # type: ignore[arg-type]


# -- validation -----------------------------------------------------------------------------
def gpaw_eigenvalues(calc: Any, kpts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GPAW's own eigenvalues (eV) at fractional `kpts`: (nk, nao) without SOC, (nk, 2nao) with.

    A fixed-density run at those k-points; SOC from `gpaw.spinorbit.soc_eigenstates` over all
    bands (second variation in the full LCAO space).
    """
    from gpaw.spinorbit import soc_eigenstates

    fz = calc.fixed_density(kpts=np.asarray(kpts), symmetry="off", txt=None)
    eig = np.array([fz.get_eigenvalues(kpt=k) for k in range(len(kpts))])
    eig_soc = soc_eigenstates(fz).eigenvalues()
    return eig, np.asarray(eig_soc)


def off_mesh_kpoints(n: int = 3, seed: int = 0) -> np.ndarray:
    """A few fixed pseudo-random fractional k-points, off any small Γ-centred mesh."""
    return np.random.default_rng(seed).uniform(-0.5, 0.5, size=(n, 3))


def check_eigenvalues(result: LcaoResult, kpts: np.ndarray | None = None) -> dict[str, float]:
    """Max |ε_hamdb − ε_gpaw| (eV) at off-mesh k for the non-SOC and the SOC Hamiltonian."""
    from hamdb.physics.bands import eigenvalues

    kpts = off_mesh_kpoints() if kpts is None else np.asarray(kpts)
    ref, ref_soc = gpaw_eigenvalues(result.calc, kpts)
    ours = eigenvalues(result.h_none, kpts)
    ours_soc = eigenvalues(result.h_soc, kpts)
    return {
        "max_dev_none_ev": float(np.abs(np.sort(ours, axis=1) - np.sort(ref, axis=1)).max()),
        "max_dev_soc_ev": float(np.abs(np.sort(ours_soc, axis=1) - np.sort(ref_soc, axis=1)).max()),
    }
