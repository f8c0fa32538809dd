"""Bands: eigenvalues on k-paths and meshes, band gaps, occupations and the Fermi level.

Eigenvalues solve H(k) c = E S(k) c (S = 1 for an orthogonal basis; S⊗σ0 for SOC), with H(k)
and S(k) from `hamdb.physics.bloch`. Orthogonal bases use numpy's batched Hermitian solver on a
chunk of k-points at once; non-orthogonal ones call LAPACK's generalized solver per k-point
(the Bloch sum itself is batched either way). An S(k) that is not positive definite (a broken
overlap, or a basis that is numerically linearly dependent) raises a HamiltonianError naming
the k-point and the smallest eigenvalue of S(k). With s_min > 0 a nearly dependent basis is
solved in the well-conditioned directions of S(k) only (canonical orthogonalisation,
hamdb.physics.orthogonal), batched like the orthogonal case.

Energies in eV; k-points fractional in the reciprocal basis of the Hamiltonian's own cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg

from hamdb.errors import HamiltonianError
from hamdb.physics.bloch import Gauge, iter_bloch
from hamdb.physics.orthogonal import orthonormal_system, to_original_basis

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from hamdb.physics.hamiltonian import Hamiltonian


# -- k-points -------------------------------------------------------------------------------
@dataclass(frozen=True)
class KPath:
    """A band-structure path in the reciprocal basis of a given cell.

    kpts: (nk, 3) fractional k-points of *that* cell (not of a standardised one).
    distance: (nk,) cumulative path length in 1/Å (2π included), flat across jumps.
    labels: (index, label) of the high-symmetry points ("GAMMA" written Γ).
    segments: (start, stop) index ranges of the continuous pieces of the path.
    """

    kpts: np.ndarray
    distance: np.ndarray
    labels: tuple[tuple[int, str], ...]
    segments: tuple[tuple[int, int], ...]


def kpath(structure: Structure, reference_distance: float = 0.025, symprec: float = 1e-3) -> KPath:
    """The seekpath (HPKOT) path of `structure`, expressed in `structure`'s own reciprocal basis.

    seekpath standardises (and may rotate) the cell; its Cartesian k-points are rotated back
    (k_ours = Rᵀ k_std with seekpath's `rotation_matrix`) and written in the fractional basis
    of the given lattice, so they are valid for a Hamiltonian of exactly this cell (also a
    supercell). reference_distance: spacing in 1/Å (seekpath's meaning, 2π included).
    """
    from seekpath import get_explicit_k_path

    cell = (
        np.asarray(structure.lattice.matrix),
        np.asarray(structure.frac_coords),
        [site.specie.Z for site in structure],
    )
    result = get_explicit_k_path(cell, reference_distance=reference_distance, symprec=symprec)
    rotation = np.asarray(result["rotation_matrix"])
    k_cart = np.asarray(result["explicit_kpoints_abs"]) @ rotation
    kpts = k_cart @ np.asarray(structure.lattice.matrix).T / (2 * np.pi)
    labels = tuple(
        (n, "Γ" if name == "GAMMA" else name)
        for n, name in enumerate(result["explicit_kpoints_labels"])
        if name
    )
    segments = tuple((int(a), int(b)) for a, b in result["explicit_segments"])
    return KPath(kpts, np.asarray(result["explicit_kpoints_linearcoord"], float), labels, segments)


def kmesh(mesh: tuple[int, int, int], shift: tuple[float, float, float] = (0, 0, 0)) -> np.ndarray:
    """A Γ-centred (shift 0) Monkhorst–Pack-style mesh, (n1·n2·n3, 3) fractional in [0, 1).

    shift is in units of the mesh spacing (0.5 gives the classic even-mesh MP offset).
    """
    axes = [(np.arange(n) + s) / n for n, s in zip(mesh, shift, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    return grid.reshape(-1, 3)


# -- eigenvalues ------------------------------------------------------------------------------
def _not_positive_definite(s_k: np.ndarray, kpts: np.ndarray, offset: int) -> HamiltonianError:
    smallest = np.linalg.eigvalsh(s_k).min(axis=1)
    n = int(np.argmin(smallest))
    k = ", ".join(f"{x:.4f}" for x in kpts[n])
    return HamiltonianError(
        f"S(k) is not positive definite at k = ({k}) (k-point {offset + n}): smallest "
        f"eigenvalue {smallest[n]:.3g}"
    )


def eigensystem(
    ham: Hamiltonian,
    kpts: np.ndarray,
    vectors: bool = True,
    gauge: Gauge = "lattice",
    s_min: float = 0.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Eigenvalues (nk, N) in eV, ascending, and eigenvectors (nk, N, N) (columns) or None.

    With an overlap the eigenvectors are S-orthonormal (c† S c = 1). gauge selects the Bloch
    phase convention of the eigenvectors (see hamdb.physics.bloch); eigenvalues do not depend
    on it. s_min > 0 (with an overlap) solves only in the directions of S(k) with eigenvalue
    above s_min·max (hamdb.physics.orthogonal): the states of the dropped directions are not
    bands, so at each k the last n_dropped eigenvalues are NaN and their vectors zero.
    """
    k_all = np.asarray(kpts, dtype=float).reshape(-1, 3)
    nk, n = len(k_all), ham.n_states
    energies = np.empty((nk, n))
    states = np.empty((nk, n, n), dtype=np.complex128) if vectors else None
    for sl, h_k, s_k in iter_bloch(ham, k_all, gauge):
        if s_k is not None and s_min > 0:
            energies[sl], out_vectors = _filtered(h_k, s_k, ham.n_spin, s_min, vectors)
            if vectors:
                states[sl] = out_vectors  # type: ignore[index]
            continue
        if s_k is None:
            if vectors:
                energies[sl], states[sl] = np.linalg.eigh(h_k)  # type: ignore[index]
            else:
                energies[sl] = np.linalg.eigvalsh(h_k)
            continue
        for m in range(h_k.shape[0]):
            try:
                out = scipy.linalg.eigh(
                    h_k[m], s_k[m], eigvals_only=not vectors, check_finite=False
                )
            except np.linalg.LinAlgError:
                raise _not_positive_definite(s_k, k_all[sl], sl.start) from None
            if vectors:
                energies[sl.start + m], states[sl.start + m] = out  # type: ignore[index]
            else:
                energies[sl.start + m] = out
    return energies, states


def _filtered(
    h_k: np.ndarray, s_k: np.ndarray, n_spin: int, s_min: float, vectors: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Eigenvalues (NaN for dropped states) and original-basis vectors of a filtered chunk."""
    h_prime, x, n_dropped = orthonormal_system(h_k, s_k, n_spin, s_min)
    n = h_k.shape[-1]
    not_band = np.arange(n)[None, :] >= (n - n_dropped)[:, None]
    if not vectors:
        w = np.linalg.eigvalsh(h_prime)
        w[not_band] = np.nan
        return w, None
    w, y = np.linalg.eigh(h_prime)
    c = to_original_basis(x, y, n_spin)
    w[not_band] = np.nan
    c[np.broadcast_to(not_band[:, None, :], c.shape)] = 0.0
    return w, c


def eigenvalues(ham: Hamiltonian, kpts: np.ndarray, s_min: float = 0.0) -> np.ndarray:
    """Band energies (nk, n_states) in eV at fractional k-points, ascending at each k.

    s_min > 0: filtered overlap (see `eigensystem`); dropped states are NaN at the end.
    """
    return eigensystem(ham, kpts, vectors=False, s_min=s_min)[0]


# -- occupations ------------------------------------------------------------------------------
def electrons_per_band(ham: Hamiltonian) -> int:
    """2 for a spinless Hamiltonian (spin degeneracy), 1 for a spinor (SOC) one."""
    return 1 if ham.spin == "soc" else 2


def n_occupied(ham: Hamiltonian) -> int:
    """Bands filled by ham.n_electrons at zero temperature (an insulator's valence bands).

    Raises HamiltonianError if the electrons do not fill a whole number of bands (then the
    system is a metal by counting alone, e.g. an odd count without SOC) or exceed the basis.
    """
    per_band = electrons_per_band(ham)
    bands = ham.n_electrons / per_band
    if ham.n_electrons <= 0 or abs(bands - round(bands)) > 1e-6:
        raise HamiltonianError(
            f"{ham.n_electrons:g} electrons do not fill whole bands of spin kind {ham.spin!r} "
            f"({per_band} electrons per band)"
        )
    if round(bands) > ham.n_states:
        raise HamiltonianError(
            f"{ham.n_electrons:g} electrons need {round(bands)} bands; the basis has {ham.n_states}"
        )
    return round(bands)


def band_gap(eigs: np.ndarray, n_occupied: int) -> tuple[float, float]:
    """(gap_ev, direct_gap_ev) between band n_occupied−1 and band n_occupied over the k-points.

    gap_ev = min_k E_c(k) − max_k E_v(k), 0.0 where the bands overlap (a metal or semimetal);
    direct_gap_ev = min_k (E_c(k) − E_v(k)), never negative.
    """
    eigs = np.asarray(eigs).reshape(-1, np.shape(eigs)[-1])
    if not 0 < n_occupied < eigs.shape[1]:
        raise HamiltonianError(
            f"{n_occupied} occupied bands leave no gap to measure among {eigs.shape[1]} bands"
        )
    valence, conduction = eigs[:, n_occupied - 1], eigs[:, n_occupied]
    gap = float(conduction.min() - valence.max())
    direct = float((conduction - valence).min())
    return max(gap, 0.0), max(direct, 0.0)


def fermi_level(eigs: np.ndarray, n_electrons: float, electrons_per_band: int) -> float:
    """Zero-temperature Fermi level (eV) from eigenvalues on a uniform mesh (nk, n_bands).

    Midway between the highest filled and lowest empty state of the mesh, counting
    `electrons_per_band` electrons per state and equal k weights: mid-gap for an insulator.
    """
    eigs = np.asarray(eigs).reshape(-1, np.shape(eigs)[-1])
    nk = eigs.shape[0]
    filled = n_electrons / electrons_per_band * nk
    m = round(filled)
    if abs(filled - m) > 1e-6 * max(1.0, filled):
        # electrons that do not fill whole states over the mesh: the partially filled level
        return float(np.sort(eigs, axis=None)[int(np.floor(filled))])
    levels = np.sort(eigs, axis=None)
    if not 0 < m < levels.size:
        raise HamiltonianError(
            f"{n_electrons:g} electrons leave no Fermi level in {eigs.shape[1]} bands"
        )
    return float((levels[m - 1] + levels[m]) / 2)


@dataclass(frozen=True)
class BandSummary:
    """What `summarize` reports: energies in eV."""

    n_occupied: int
    gap_ev: float
    direct_gap_ev: float
    fermi_level_ev: float
    vbm_ev: float
    cbm_ev: float


def summarize(ham: Hamiltonian, eigs: np.ndarray) -> BandSummary:
    """Gap, direct gap, band edges and Fermi level of `ham` from eigenvalues at some k-points."""
    n_occ = n_occupied(ham)
    gap, direct = band_gap(eigs, n_occ)
    vbm, cbm = float(eigs[:, n_occ - 1].max()), float(eigs[:, n_occ].min())
    fermi = fermi_level(eigs, ham.n_electrons, electrons_per_band(ham))
    return BandSummary(n_occ, gap, direct, fermi, vbm, cbm)


def plot_bands(
    path: KPath,
    eigs: np.ndarray,
    out: str,
    fermi_level_ev: float | None = None,
    title: str = "",
    window_ev: tuple[float, float] | None = None,
) -> None:
    """Draw bands along `path` to an image file (matplotlib, Agg backend), E − E_F if given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shift = fermi_level_ev or 0.0
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for start, stop in path.segments:
        ax.plot(path.distance[start:stop], eigs[start:stop] - shift, color="C0", lw=1)
    ticks: dict[float, str] = {}
    for n, label in path.labels:
        x = round(float(path.distance[n]), 8)
        ticks[x] = label if x not in ticks or ticks[x] == label else f"{ticks[x]}|{label}"
    for x in ticks:
        ax.axvline(x, color="0.7", lw=0.6)
    ax.set_xticks(list(ticks), list(ticks.values()))
    ax.set_xlim(path.distance[0], path.distance[-1])
    if fermi_level_ev is not None:
        ax.axhline(0.0, color="k", lw=0.6, ls="--")
        ax.set_ylabel("E − E_F (eV)")
    else:
        ax.set_ylabel("E (eV)")
    if window_ev is not None:
        ax.set_ylim(*window_ev)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)
