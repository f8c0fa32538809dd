"""GPAW LCAO (PBE, dzp) + second-variation spin-orbit Hamiltonians H(R), S(R) of a crystal.

One run, for a pymatgen Structure:

1. **SCF**: PBE LCAO in GPAW's dzp basis on a Γ-centred k-mesh chosen from a k-point density
   (symmetry on: the density is what is wanted, the irreducible zone suffices).
2. **Full-zone pass**: on a Γ-centred mesh large enough for the basis cut-off, on the converged
   potential, GPAW's own LCAO matrices at every k, assembled from GPAW's pieces exactly as
   `DirectLCAO.calculate_hamiltonian_matrix` does (`_KMatrices`): H(k), S(k) and the projector
   overlaps P_Mi(k). No further GPAW run is needed.
3. **SOC projection** (`hamdb.dft.gpaw_soc`): GPAW's PAW spin-orbit term projected into the
   LCAO basis with the same projector overlaps, H_soc(k) = H(k)⊗σ0 + V_so(k).
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

The exact S(R) alone (no SCF, e.g. for a predicted H) is `compute_overlap`, evaluated by
`hamdb.dft.gpaw_overlap` from GPAW's two-centre tables.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from hamdb.dft.gpaw_basis import BOHR_ANGSTROM, cell_orbital_map, gpaw_basis
from hamdb.dft.gpaw_soc import HARTREE_EV, project_soc, soc_operators, spinor_matrix
from hamdb.errors import DFTError
from hamdb.physics.hamiltonian import Hamiltonian

if TYPE_CHECKING:
    from pymatgen.core import Structure

MIN_DISTANCE_ANGSTROM = 0.5  # closer atoms are a broken structure, not a material
K_CHUNK = 128  # k-points (plus their −k partners) per batch of the full-zone pass (memory)


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
        raise DFTError(
            "structure is disordered (partial occupancies): GPAW needs one species per site"
        )
    dmat = structure.distance_matrix + np.eye(len(structure)) * 1e9
    images = _self_image_distance(structure)
    dmin = min(float(dmat.min()), images)
    if dmin < MIN_DISTANCE_ANGSTROM:
        raise DFTError(
            f"atoms overlap: two sites are {dmin:.3f} Å apart (< {MIN_DISTANCE_ANGSTROM} Å)"
        )
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
    n = [math.ceil(radius * np.linalg.norm(b)) + 1 for b in recip]
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
        [
            np.nonzero(np.linalg.norm(cart[a] + Lc - cart[i], axis=1) < rc[i] + rp[a] + margin)[0]
            for a in range(nat)
        ]
        for i in range(nat)
    ]
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


def prepare(structure: Structure, settings: LcaoSettings) -> tuple[Any, tuple[int, int, int]]:
    """An initialised (not yet converged) GPAW calculator and its SCF mesh: setups and basis
    are loaded, so the basis layout and the full-zone mesh can be checked before the SCF."""
    validate_structure(structure, settings)
    mesh = kmesh_from_density(structure, settings.kdensity)
    atoms = _atoms(structure)
    atoms.calc = _gpaw_calculator(settings, mesh)
    atoms.calc.initialize(atoms)
    return atoms.calc, mesh


def run_scf(calc: Any, settings: LcaoSettings) -> None:
    """Converge the SCF of a prepared calculator (DFTError if it does not converge)."""
    from gpaw import KohnShamConvergenceError

    try:
        calc.get_potential_energy()
    except KohnShamConvergenceError:
        raise DFTError(f"SCF did not converge in {settings.maxiter} iterations") from None
    # Later fixed-density runs must reuse this very grid (they recompute it from h otherwise).
    calc.parameters["h"] = None


class _KMatrices:
    """GPAW's LCAO matrices at arbitrary k on the converged SCF potential, without a new run.

    The pieces are GPAW's own: the real-space potential matrices per cell displacement
    (`calculate_potential_matrices`, k-independent), the two-centre integrals S, T and
    projector overlaps P at the requested k (`ManyTCICalculator`), and the PAW corrections
    dH (`hamiltonian.dH_asp`), dS (`setups[a].dO_ii`), assembled exactly as GPAW's
    `DirectLCAO.calculate_hamiltonian_matrix` does, in GPAW's phase convention.
    """

    def __init__(self, calc: Any, soc_aH: dict[int, np.ndarray] | None) -> None:
        """soc_aH None: overlap only (no converged potential needed)."""
        from gpaw.utilities import unpack_hermitian

        wfs, ham = calc.wfs, calc.hamiltonian
        self.wfs = wfs
        self.nao = wfs.setups.nao
        self.dS_aii = {a: wfs.setups[a].dO_ii for a in range(len(wfs.setups))}
        self.soc_aH = soc_aH
        self.soc_s = 0.0  # wall time of the SOC projection P (σ·L) P†
        if soc_aH is not None:
            if wfs.dtype != complex:
                raise DFTError("the SCF ran at Γ only (real wave functions): raise --kdensity")
            self.vt_xMM = wfs.basis_functions.calculate_potential_matrices(ham.vt_sG[0])
            self.sdisp_xc = wfs.basis_functions.sdisp_xc
            self.dH_aii = {a: unpack_hermitian(ham.dH_asp[a][0]) for a in range(len(wfs.setups))}

    def __call__(
        self, kpts: np.ndarray, partners: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(k-points, M_g(k) spinor H⊗σ0 + V_so in eV or None, S_g(k)), GPAW's phase, at
        `kpts` and at −k for those with `partners` True.

        The two-centre integrals are the expensive part; S(R), T(R), P(R) are real, so at −k
        they are the complex conjugates of those at k (time reversal of the integrals, not an
        assumption about the Hamiltonian) and are not computed twice.
        """
        wfs, nao = self.wfs, self.nao
        manytci = wfs.tciexpansions.get_manytci_calculator(
            wfs.setups, wfs.gd, wfs.spos_ac, np.asarray(kpts, float), complex, wfs.timer
        )
        S, T = manytci.O_qMM_T_qMM(wfs.gd.comm, 0, nao, False)
        P_a = {a: np.asarray(P) for a, P in manytci.P_aqMi(list(range(len(wfs.setups)))).items()}
        kpts = np.concatenate([kpts, -kpts[partners]])
        S = np.concatenate([S, S[partners].conj()])
        T = np.concatenate([T, T[partners].conj()])
        P_a = {a: np.concatenate([P, P[partners].conj()]) for a, P in P_a.items()}
        for a, P in P_a.items():
            S += P @ self.dS_aii[a] @ P.conj().transpose(0, 2, 1)
        if self.soc_aH is None:
            return kpts, None, S
        phase = np.exp(2j * np.pi * kpts @ self.sdisp_xc[1:].T)
        X = 0.5 * self.vt_xMM[0] + np.einsum("kx,xMN->kMN", phase, self.vt_xMM[1:], optimize=True)
        for a, P in P_a.items():
            X += 0.5 * P @ self.dH_aii[a] @ P.conj().transpose(0, 2, 1)
        t0 = time.perf_counter()
        up_up, up_down = project_soc(P_a, self.soc_aH)
        self.soc_s += time.perf_counter() - t0
        H = (X + X.conj().transpose(0, 2, 1) + T) * HARTREE_EV
        M = spinor_matrix(H, up_up, up_down)
        return kpts, M, S


def _full_zone(
    matrices: _KMatrices, mesh: Sequence[int], pairs: dict, slices: list[slice]
) -> tuple[dict, dict]:
    """H(R) (spinor; empty in overlap-only mode) and S(R) per pair by the inverse Bloch
    transform over the Γ-centred mesh, k-points (with their −k partners) in chunks."""
    N = np.asarray(mesh)
    index = np.array(np.meshgrid(*[np.arange(n) for n in mesh], indexing="ij")).reshape(3, -1).T
    nk = len(index)
    # each pair {k, −k} once: k itself where its linear index is not above that of −k
    lin = np.ravel_multi_index(index.T, mesh)
    lin_neg = np.ravel_multi_index(((-index) % N).T, mesh)
    canonical = lin <= lin_neg
    grid, has_partner = index[canonical] / N, (lin < lin_neg)[canonical]
    n = [sl.stop - sl.start for sl in slices]
    with_h = matrices.soc_aH is not None
    acc_h = (
        {p: np.zeros((len(R), 2 * n[p[0]], 2 * n[p[1]]), complex) for p, R in pairs.items()}
        if with_h
        else {}
    )
    acc_s = {p: np.zeros((len(R), n[p[0]], n[p[1]]), complex) for p, R in pairs.items()}
    for start in range(0, len(grid), K_CHUNK):
        chunk = slice(start, start + K_CHUNK)
        kpts, M, S = matrices(grid[chunk], has_partner[chunk])
        for (i, j), R in pairs.items():
            phase = np.exp(2j * np.pi * (kpts @ R.T)).T / nk  # (nR, nk), GPAW's e^{-ikR} undone
            si, sj = slices[i], slices[j]
            blk = S[:, si, sj]
            acc_s[(i, j)] += (phase @ blk.reshape(len(kpts), -1)).reshape(acc_s[(i, j)].shape)
            if M is not None:
                blk = M[:, 2 * si.start : 2 * si.stop, 2 * sj.start : 2 * sj.stop]
                acc_h[(i, j)] += (phase @ blk.reshape(len(kpts), -1)).reshape(acc_h[(i, j)].shape)
    return acc_h, acc_s


def _projector_cutoffs(calc: Any) -> list[float]:
    return [max(pt.get_cutoff() for pt in s.pt_j) * BOHR_ANGSTROM for s in calc.wfs.setups]


def _orbital_cutoffs(calc: Any) -> list[float]:
    return [max(bf.rc for bf in s.basis.bf_j) * BOHR_ANGSTROM for s in calc.wfs.setups]


def _layout(
    structure: Structure, calc: Any, settings: LcaoSettings, frac: np.ndarray
) -> tuple[Any, list[slice], dict, tuple]:
    """(basis, per-site orbital slices, needed R per pair, full-zone mesh) checked against GPAW,
    for atoms at fractional positions `frac` (GPAW's wrapped ones: see `_wrap_shifts`)."""
    species = [s.specie.symbol for s in structure]
    basis = gpaw_basis(species, settings.basis, settings.xc)
    starts = np.concatenate([[0], np.cumsum(basis.orbital_counts(species))])
    slices = [slice(int(starts[i]), int(starts[i + 1])) for i in range(len(species))]
    if int(starts[-1]) != calc.wfs.setups.nao:
        raise DFTError(f"GPAW has {calc.wfs.setups.nao} orbitals, basis {basis.name} {starts[-1]}")
    pairs = needed_translations(
        frac,
        structure.lattice.matrix,
        _orbital_cutoffs(calc),
        _projector_cutoffs(calc),
    )
    mesh = tuple(settings.mesh) if settings.mesh else required_mesh(pairs)
    check_mesh(pairs, mesh)
    return basis, slices, pairs, mesh


def _wrap_shifts(structure: Structure, spos: np.ndarray) -> np.ndarray:
    """Integer L_i with τ_i = spos_i + L_i: GPAW works with positions wrapped into the cell.

    GPAW's blocks H^w_ij(R_w) refer to the wrapped positions; for the structure's own
    positions H_ij(R) = H^w_ij(R + L_j − L_i) (translate r by L_i), so R = R_w − L_j + L_i.
    """
    shift = structure.frac_coords - spos
    L = np.rint(shift).astype(int)
    if np.abs(shift - L).max() > 1e-6:
        raise DFTError("GPAW's atomic positions are not the structure's up to lattice vectors")
    return L


def _blocks(
    structure: Structure,
    basis: Any,
    slices: list[slice],
    pairs: dict,
    acc_h: dict,
    acc_s: dict,
    shifts: np.ndarray,
) -> tuple[dict, dict, dict]:
    """(non-SOC H, SOC H, S) blocks per (i, j, R) in DESIGN orbital order and signs, with R
    for the structure's own positions (`shifts` from `_wrap_shifts`)."""
    species = [s.specie.symbol for s in structure]
    index, sign = cell_orbital_map(species, basis)
    h_none, h_soc, s_blocks = {}, {}, {}
    for (i, j), R in pairs.items():
        oi = index[slices[i]] - slices[i].start
        oj = index[slices[j]] - slices[j].start
        sij = np.outer(sign[slices[i]], sign[slices[j]])
        si2 = np.stack([2 * oi, 2 * oi + 1], 1).ravel()
        sj2 = np.stack([2 * oj, 2 * oj + 1], 1).ravel()
        sij2 = np.kron(sij, np.ones((2, 2)))
        for r, Rv in enumerate(R - shifts[j] + shifts[i]):
            key = (i, j, tuple(int(x) for x in Rv))
            s_blocks[key] = (acc_s[(i, j)][r][np.ix_(oi, oj)] * sij).real
            if acc_h:
                hs = acc_h[(i, j)][r][np.ix_(si2, sj2)] * sij2
                h_soc[key] = hs
                # the spin average: V_so is traceless in spin, so this is exactly H(R)
                h_none[key] = 0.5 * (hs[0::2, 0::2] + hs[1::2, 1::2])
    worst = max((float(np.abs(b.imag).max()) for b in h_none.values()), default=0.0)
    if worst > 1e-6:
        raise DFTError(f"non-SOC H(R) has imaginary parts up to {worst:.1e} eV (phase convention?)")
    return {k: b.real for k, b in h_none.items()}, h_soc, s_blocks


def compute(structure: Structure, settings: LcaoSettings | None = None) -> LcaoResult:
    """SCF + full-zone pass + SOC projection: the non-SOC and SOC canonical Hamiltonians."""
    import gpaw
    from gpaw.spinorbit import soc_eigenstates

    settings = settings or LcaoSettings()
    timings = Timings()
    t0 = time.perf_counter()
    calc, scf_mesh = prepare(structure, settings)
    _, _, _, mesh = _layout(structure, calc, settings, structure.frac_coords % 1.0)
    run_scf(calc, settings)
    timings.scf_s = time.perf_counter() - t0
    spos = calc.wfs.spos_ac.copy()
    shifts = _wrap_shifts(structure, spos)
    basis, slices, pairs, _ = _layout(structure, calc, replace(settings, mesh=mesh), spos)

    t0 = time.perf_counter()
    matrices = _KMatrices(calc, soc_operators(calc))
    efermi_soc = float(soc_eigenstates(calc).fermi_level)
    t1 = time.perf_counter()
    acc_h, acc_s = _full_zone(matrices, mesh, pairs, slices)
    t2 = time.perf_counter()
    timings.soc_s = (t1 - t0) + matrices.soc_s
    timings.full_zone_s = (t2 - t1) - matrices.soc_s

    h_none, h_soc, s_blocks = _blocks(structure, basis, slices, pairs, acc_h, acc_s, shifts)
    origin = {
        "code": "gpaw",
        "version": gpaw.__version__,
        "method": settings.method,
        "settings": {**settings.as_dict(), "scf_mesh": list(scf_mesh), "mesh": list(mesh)},
    }
    common = {"n_electrons": float(calc.wfs.nvalence), "origin": origin}
    ham_none = Hamiltonian.from_blocks(
        structure,
        basis,
        "none",
        h_none,
        s_blocks,
        fermi_level_ev=float(calc.get_fermi_level()),
        **common,
    )
    ham_soc = Hamiltonian.from_blocks(
        structure, basis, "soc", h_soc, s_blocks, fermi_level_ev=efermi_soc, **common
    )
    timings.transform_s = time.perf_counter() - t2
    return LcaoResult(ham_none, ham_soc, scf_mesh, mesh, timings, calc)  # type: ignore[arg-type]


def compute_overlap(structure: Structure, settings: LcaoSettings | None = None) -> Hamiltonian:
    """The exact PAW overlap S(R) of GPAW's basis for `structure`, without an SCF.

    Returned as a spinless Hamiltonian whose H blocks are zero (only `s` is meaningful), on the
    edges a DFT run would have: e.g. to attach the true S to a predicted H. Computed from
    GPAW's two-centre tables, cached per element set (`hamdb.dft.gpaw_overlap`).
    """
    from hamdb.dft.gpaw_overlap import exact_overlap

    settings = settings or LcaoSettings()
    validate_structure(structure, settings)
    overlap = exact_overlap(structure, settings.basis, settings.xc, settings.grid_spacing)
    return Hamiltonian(
        structure,
        overlap.basis,
        "none",
        overlap.edges,
        overlap.s_offsets,
        np.zeros_like(overlap.s),
        overlap.s,
        overlap.s_offsets,
        n_electrons=overlap.basis.n_valence([s.specie.symbol for s in structure]),
        origin={"code": "gpaw", "overlap_only": True, "settings": settings.as_dict()},
    )


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
