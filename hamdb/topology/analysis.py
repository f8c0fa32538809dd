"""`analyse`: gap, Z2 by WCC flow and Fu–Kane parity of one Hamiltonian, as one report.

The pipeline and the CLI call only this. Policy, in one place:
* a metal (gap below `metal_gap_ev`) is reported with its gap and gets no Z2;
* the Z2 reported is the WCC one, and only when every plane converged;
* where parity also applies (centrosymmetric), the two must agree: a disagreement is a
  recorded failure (`agreement = False`, `z2 = None`, `error` says both answers), never a pick.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from hamdb.errors import TopologyError
from hamdb.topology.gap import band_gap
from hamdb.topology.kspace import BandProblem, detect_dimension
from hamdb.topology.parity import ParityResult, parity_z2
from hamdb.topology.wcc import PlaneResult, WccSettings, indices_3d, z2_2d, z2_3d

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from hamdb.physics.hamiltonian import Hamiltonian

#: Bumped when a change of the algorithm changes answers: part of the settings hash.
#: 2: graded line grids (hamdb.topology.lines), k_start 8, overlap filter s_min.
#: 3: gap edges refined with Newton probes, settled on the full quadratic (cross terms).
ENGINE_VERSION = 3


@dataclass(frozen=True)
class TopologySettings(WccSettings):
    """Every knob of the analysis; its hash keys stored results (`settings_hash`).

    The WCC-flow controls are inherited from `WccSettings` (Z2Pack's names); on top:
    metal_gap_ev: a gap below this is a metal (no Z2); mesh_spacing: gap mesh spacing (1/Å);
    hermitian_tol: largest |H(R) − H(−R)†| (eV) accepted as round-off; s_min: overlap filter,
    directions of S(k) with eigenvalue ≤ s_min·max are dropped (hamdb.physics.orthogonal;
    0 = exact, right for DFT; ~1e-3 for a predicted H in a near-dependent basis such as dzp).
    """

    metal_gap_ev: float = 1e-3
    mesh_spacing: float = 0.2
    hermitian_tol: float = 1e-4
    s_min: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TopologySettings:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TopologyError(f"unknown topology settings {unknown}; known: {sorted(known)}")
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "engine_version": ENGINE_VERSION}

    def sha256(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def wcc(self) -> WccSettings:
        names = {f.name for f in fields(WccSettings)}
        return WccSettings(**{k: v for k, v in asdict(self).items() if k in names})


@dataclass(frozen=True)
class TopologyReport:
    """What `analyse` found. Energies in eV, times in s.

    z2: [ν] (2D) or [ν0, ν1, ν2, ν3] (3D), None for a metal, a non-converged flow or a
    WCC/parity disagreement. wcc_z2 / parity_z2: each method's own answer (None if not run,
    not applicable or not converged). agreement: None when only one method gave an answer.
    n_dropped: most states the overlap filter (settings s_min > 0) dropped at one k-point.
    """

    dim: int
    gap_ev: float
    direct_gap_ev: float
    is_metal: bool
    z2: list[int] | None
    converged: bool
    method: str
    n_occupied: int
    parity_z2: list[int] | None
    agreement: bool | None
    timing_s: dict[str, float]
    settings: dict[str, Any]
    wcc_z2: list[int] | None = None
    error: str | None = None
    vacuum_axis: int | None = None
    n_dropped: int = 0
    planes: tuple[PlaneResult, ...] = field(default=(), repr=False)
    parity: ParityResult | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (planes summarised, not their WCCs)."""
        return {
            "dim": self.dim,
            "gap_ev": self.gap_ev,
            "direct_gap_ev": self.direct_gap_ev,
            "is_metal": self.is_metal,
            "z2": self.z2,
            "converged": self.converged,
            "method": self.method,
            "n_occupied": self.n_occupied,
            "wcc_z2": self.wcc_z2,
            "parity_z2": self.parity_z2,
            "agreement": self.agreement,
            "error": self.error,
            "vacuum_axis": self.vacuum_axis,
            "n_dropped": self.n_dropped,
            "timing_s": dict(self.timing_s),
            "settings": dict(self.settings),
            "planes": [
                {
                    "k_fixed": [p.fixed_axis + 1, p.fixed_value],
                    "z2": p.z2,
                    "lines": len(p.t),
                    "n_kpoints": p.n_kpoints,
                    "converged": p.converged,
                    "messages": p.messages,
                }
                for p in self.planes
            ],
        }


def resolve_dimension(ham: Hamiltonian, dim: int | None) -> tuple[int, int | None]:
    """(dim, vacuum axis): detected, or forced by `dim` (a forced 2D uses the k3 = 0 plane)."""
    detected, vacuum = detect_dimension(ham)
    if dim is None or dim == detected:
        return detected, vacuum
    if dim == 2:
        return 2, 2
    if dim == 3:
        return 3, None
    raise TopologyError(f"dimension must be 2 or 3, not {dim}")


def analyse(
    H: Hamiltonian,
    *,
    occupied: int | None = None,
    dim: int | None = None,
    methods: Iterable[str] = ("wcc", "parity"),
    settings: TopologySettings | Mapping[str, Any] | None = None,
) -> TopologyReport:
    """Gap, Z2 (WCC flow) and parity cross-check of one SOC Hamiltonian.

    occupied: occupied bands (default H.n_electrons); dim: 2 or 3 (default detected: 2 when
    one lattice vector carries no hopping); methods: any of "wcc", "parity".
    Raises TopologyError for input that has no answer (spinless, odd occupied count, too few
    bands, singular S) and HamiltonianError for an invalid H (non-Hermitian, non-finite).
    """
    # The work is many small matrices: threaded BLAS only adds spin-waits (10x slower on a busy
    # 2-core machine). Parallelism comes from screening workers instead.
    with _blas_controller().limit(limits=1, user_api="blas"):
        return _analyse(H, occupied, dim, methods, settings)


@functools.cache
def _blas_controller() -> Any:
    """threadpoolctl's view of the loaded BLAS, found once (a fresh search per call costs
    0.2 ms, a tenth of a small model's whole analysis); numpy loads BLAS at import."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _analyse(
    H: Hamiltonian,
    occupied: int | None,
    dim: int | None,
    methods: Iterable[str],
    settings: TopologySettings | Mapping[str, Any] | None,
) -> TopologyReport:
    s = settings if isinstance(settings, TopologySettings) else TopologySettings.from_dict(settings)
    methods = tuple(methods)
    bad = sorted(set(methods) - {"wcc", "parity"})
    if bad or not methods:
        raise TopologyError(f"methods must be 'wcc' and/or 'parity', got {list(methods)}")
    timing: dict[str, float] = {}
    start = time.perf_counter()
    problem = BandProblem.from_hamiltonian(H, occupied, s.hermitian_tol, s.s_min)
    dim, vacuum = resolve_dimension(H, dim)
    periodic = [a for a in range(3) if a != vacuum]
    recip = np.asarray(H.structure.lattice.reciprocal_lattice.abc, dtype=float)
    t0 = time.perf_counter()
    gap = band_gap(problem, recip, periodic, spacing=s.mesh_spacing, structure=H.structure)
    timing["gap"] = time.perf_counter() - t0

    planes: list[PlaneResult] = []
    wcc_z2: list[int] | None = None
    wcc_ok = False
    notes: list[str] = []
    is_metal = gap.gap_ev < s.metal_gap_ev
    if "wcc" in methods and not is_metal:
        t0 = time.perf_counter()
        planes = z2_2d(problem, vacuum, s.wcc()) if dim == 2 else z2_3d(problem, s.wcc())  # type: ignore[arg-type]
        timing["wcc"] = time.perf_counter() - t0
        for p in planes:
            gap = gap.tightened(*p.band_extrema[1:])
            notes += p.messages
        is_metal = gap.gap_ev < s.metal_gap_ev
        if dim == 2:
            wcc_z2 = None if planes[0].z2 is None else [planes[0].z2]
        else:
            wcc_z2, why = indices_3d(planes)
            if why:
                notes.append(why)
        wcc_ok = wcc_z2 is not None and all(p.converged for p in planes)

    parity: ParityResult | None = None
    if "parity" in methods and not is_metal:
        t0 = time.perf_counter()
        parity = parity_z2(H, problem, dim, vacuum, gap.direct_gap_ev)
        timing["parity"] = time.perf_counter() - t0
    parity_answer = parity.z2 if parity is not None and parity.applicable else None

    error = None
    agreement: bool | None = None
    if is_metal:
        z2, converged, method = None, False, "none"
        error = f"metal: gap {gap.gap_ev:.4g} eV < {s.metal_gap_ev:g} eV"
        wcc_z2 = None
    elif "wcc" in methods:
        converged = wcc_ok
        z2 = wcc_z2 if wcc_ok else None
        method = "wcc"
        if not wcc_ok:
            error = "WCC flow not converged: " + "; ".join(notes or ["no Z2"])
        if wcc_ok and parity_answer is not None:
            agreement = wcc_z2 == parity_answer
            method = "wcc+parity"
            if not agreement:
                z2 = None
                error = f"WCC flow gives {wcc_z2} but parity gives {parity_answer}"
    else:
        converged = parity_answer is not None
        z2, method = parity_answer, "parity"
        if parity is not None and not parity.applicable:
            error = f"parity not applicable: {parity.reason}"
    timing["total"] = time.perf_counter() - start
    return TopologyReport(
        dim=dim,
        gap_ev=float(gap.gap_ev),
        direct_gap_ev=float(gap.direct_gap_ev),
        is_metal=bool(is_metal),
        z2=z2,
        converged=bool(converged),
        method=method,
        n_occupied=problem.n_occupied,
        parity_z2=parity_answer,
        agreement=agreement,
        timing_s=timing,
        settings=s.as_dict(),
        wcc_z2=wcc_z2,
        error=error,
        vacuum_axis=vacuum,
        n_dropped=problem.max_dropped,
        planes=tuple(planes),
        parity=parity,
    )
