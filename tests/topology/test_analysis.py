"""analyse() on the analytic models: phase diagrams along parameter lines (near the transitions
too), the parity cross-check, gaps, dimensions, and one-line errors for bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hamdb.errors import HamiltonianError, TopologyError
from hamdb.physics.basis import BasisSet
from hamdb.physics.hamiltonian import Hamiltonian
from hamdb.physics.models import bhz, bhz_z2, fu_kane_mele, fu_kane_mele_z2, kane_mele, kane_mele_z2
from hamdb.topology import TopologySettings, analyse
from hamdb.topology import analysis as analysis_module

SO = 0.06
KM_CRITICAL = 3 * math.sqrt(3) * SO  # 0.3118


@pytest.mark.parametrize("lambda_v", [0.0, 0.15, 0.30, 0.33, 0.5])
def test_kane_mele_phase_line(lambda_v: float) -> None:
    report = analyse(kane_mele(lambda_so=SO, lambda_r=0.0, lambda_v=lambda_v))
    assert report.dim == 2 and report.vacuum_axis == 2
    assert report.converged and report.z2 == [kane_mele_z2(SO, lambda_v)]
    assert report.gap_ev == pytest.approx(2 * abs(KM_CRITICAL - lambda_v), abs=1e-6)


@pytest.mark.parametrize("lambda_v, nu", [(0.1, 1), (0.4, 0)])
def test_kane_mele_with_rashba_published_points(lambda_v: float, nu: int) -> None:
    """Kane & Mele's Fig. 2: λ_SO = 0.06t, λ_R = 0.05t, λ_v = 0.1t (QSH) and 0.4t (insulator)."""
    assert analyse(kane_mele(lambda_r=0.05, lambda_v=lambda_v)).z2 == [nu]


@pytest.mark.parametrize("M", [-1.0, 0.2, 3.8, 4.2, 7.8, 8.2])
def test_bhz_phase_line_with_parity_agreeing(M: float) -> None:
    report = analyse(bhz(M=M, B=1.0, D=0.3))
    assert report.converged and report.z2 == [bhz_z2(M, 1.0)]
    assert report.parity_z2 == report.z2 and report.agreement is True
    assert report.method == "wcc+parity"


@pytest.mark.parametrize("delta", [-1.5, -0.1, 0.1, 1.9, 2.1])
def test_fu_kane_mele_strong_weak_trivial(delta: float) -> None:
    report = analyse(fu_kane_mele(delta_t1=delta))
    assert report.dim == 3 and report.converged
    assert tuple(report.z2) == fu_kane_mele_z2(delta)
    assert report.agreement is True and len(report.planes) == 6


def test_metal_gets_no_z2() -> None:
    report = analyse(fu_kane_mele(delta_t1=0.0))  # Dirac points at X
    assert report.is_metal and report.z2 is None and not report.converged
    assert "metal" in report.error


def test_forced_dimensions() -> None:
    ham = fu_kane_mele(delta_t1=0.4)
    assert analyse(ham, dim=2).z2 == [0]  # the k3 = 0 plane of the strong TI
    layer = analyse(kane_mele(), dim=3)  # a layer as a 3D stack: no strong index
    assert layer.dim == 3 and layer.z2 == [0, 0, 0, 1]


def test_disagreement_is_a_recorded_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    real = analysis_module.parity_z2

    def flipped(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = real(*args, **kwargs)
        return type(result)([1 - x for x in result.z2], True, "", result.deltas)

    monkeypatch.setattr(analysis_module, "parity_z2", flipped)
    report = analyse(bhz(M=1.0))
    assert report.agreement is False and report.z2 is None
    assert report.wcc_z2 == [1] and report.parity_z2 == [0]
    assert "[1]" in report.error and "[0]" in report.error


def test_parity_only_and_settings_hash() -> None:
    report = analyse(fu_kane_mele(delta_t1=-0.4), methods=("parity",))
    assert report.z2 == [0, 1, 1, 1] and report.method == "parity" and report.planes == ()
    a, b = TopologySettings(), TopologySettings(pos_tol=0.005)
    assert a.sha256() != b.sha256() and a.sha256() == TopologySettings.from_dict({}).sha256()
    payload = report.as_dict()
    assert {"dim", "gap_ev", "direct_gap_ev", "z2", "converged", "method", "timing_s"} <= set(
        payload
    )


def test_overlap_filter_is_part_of_the_settings_hash() -> None:
    exact, filtered = TopologySettings(), TopologySettings(s_min=1e-3)
    assert exact.as_dict()["s_min"] == 0.0 and filtered.as_dict()["s_min"] == 1e-3
    assert exact.sha256() != filtered.sha256()
    stored = {k: v for k, v in filtered.as_dict().items() if k != "engine_version"}
    assert TopologySettings.from_dict(stored).sha256() == filtered.sha256()


def _near_singular_overlap_kane_mele(s: float) -> Hamiltonian:
    """Kane–Mele with nearest-neighbour overlap s: S(Γ) has eigenvalue 1 − 3s (tiny near ⅓)."""
    ham = kane_mele()
    s_blocks = {key: np.eye(1) if key[0] == key[1] and key[2] == (0, 0, 0) else np.zeros((1, 1))
                for key, _ in ham.blocks()}  # fmt: skip
    for key, block in ham.blocks():
        if key[0] != key[1] and abs(block[0, 0].real) > 0.5:
            s_blocks[key] = s * np.ones((1, 1))
    return Hamiltonian.from_blocks(
        ham.structure, ham.basis, "soc", dict(ham.blocks()), s_blocks, n_electrons=2.0
    )


def test_overlap_filter_that_leaves_no_empty_band_is_refused() -> None:
    """Dropping the near-dependent direction at Γ (both spins) leaves 2 of 4 states for 2
    occupied bands: no gap to speak of, so a one-line error rather than a made-up answer."""
    ham = _near_singular_overlap_kane_mele(0.3333)
    report = analyse(ham, methods=("wcc",))  # exact: λ_min(S) = 1e-4 is still invertible
    assert report.n_dropped == 0
    with pytest.raises(TopologyError, match=r"drops 2 of 4 states.*no empty band"):
        analyse(ham, settings={"s_min": 1e-3})


# -- bad input -----------------------------------------------------------------------------------
def test_too_few_occupied_and_odd_count() -> None:
    with pytest.raises(TopologyError, match="occupied"):
        analyse(kane_mele(), occupied=4)
    with pytest.raises(TopologyError, match="odd occupied count 3"):
        analyse(bhz(), occupied=3)


def test_non_hermitian_h_names_the_edge() -> None:
    ham = kane_mele()
    h = ham.h.copy()
    e = ham.edge_index[(0, 1, (0, 0, 0))]
    h[ham.offsets[e]] += 0.3
    with pytest.raises(HamiltonianError, match=r"not Hermitian.*edge \(i=0, j=1, R=\(0, 0, 0\)\)"):
        analyse(ham.with_h(h))


def test_singular_overlap() -> None:
    """S with nearest-neighbour overlap 1 is not positive definite (S(Γ) has eigenvalue −2)."""
    ham = kane_mele()
    s_blocks = {key: np.eye(1) if key[0] == key[1] and key[2] == (0, 0, 0) else np.zeros((1, 1))
                for key, _ in ham.blocks()}  # fmt: skip
    for key, block in ham.blocks():
        if key[0] != key[1] and abs(block[0, 0].real) > 0.5:
            s_blocks[key] = np.ones((1, 1))
    bad = Hamiltonian.from_blocks(
        ham.structure, ham.basis, "soc", dict(ham.blocks()), s_blocks, n_electrons=2.0
    )
    with pytest.raises(
        TopologyError, match="overlap S\\(k\\) is singular or not positive definite"
    ):
        analyse(bad)


def test_spinless_is_refused() -> None:
    ham = kane_mele()
    basis = BasisSet("s", {"C": (0,)}, {"C": 1.0})
    blocks = {key: block[0::2, 0::2].real for key, block in ham.blocks()}
    spinless = Hamiltonian.from_blocks(ham.structure, basis, "none", blocks, n_electrons=2.0)
    with pytest.raises(TopologyError, match="spin-orbit"):
        analyse(spinless, occupied=2)


def _permute_axes(ham: Hamiltonian, order: list[int]) -> Hamiltonian:
    """The same crystal with its lattice vectors renumbered (new axis i = old axis order[i])."""
    from pymatgen.core import Lattice, Structure

    s = ham.structure
    structure = Structure(
        Lattice(s.lattice.matrix[order]), [site.specie for site in s], s.frac_coords[:, order]
    )
    edges = ham.edges.copy()
    edges[:, 2:5] = ham.edges[:, 2:5][:, order]
    return Hamiltonian(
        structure, ham.basis, ham.spin, edges, ham.offsets, ham.h, n_electrons=ham.n_electrons
    )


@pytest.mark.parametrize("order", [[2, 0, 1], [1, 2, 0]])
def test_vacuum_along_any_lattice_vector(order: list[int]) -> None:
    ham = _permute_axes(kane_mele(lambda_v=0.1), order)
    report = analyse(ham)
    assert report.dim == 2 and report.vacuum_axis == order.index(2) and report.z2 == [1]
    # as a 3D stack of QSH layers: a weak index along the stacking vector only
    stacked = analyse(ham, dim=3)
    expected = [0, 0, 0, 0]
    expected[1 + order.index(2)] = 1
    assert stacked.z2 == expected
