"""wannier90_hr.dat: the 1T'-MoS2 file of PROVENANCE.md, round trips, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from hamdb.errors import BasisError, HamiltonianError, InputError
from hamdb.io import wannier90
from hamdb.physics.checks import hermiticity_error
from hamdb.physics.spin import time_reversal_error


@pytest.fixture(scope="module")
def mos2(mos2_dir: Path):
    return wannier90.read(mos2_dir / "wannier90_hr.dat")


def test_mos2_sizes_and_provenance(mos2) -> None:
    assert mos2.spin == "soc"
    assert mos2.n_states == 48  # PROVENANCE.md: 48 orbitals incl. spin
    assert mos2.n_electrons == 28  # wt.in NumOccupied (SOC: one electron per band)
    assert mos2.basis.name == "wannier90:MoS2"
    assert mos2.basis.shells == {"Mo": (0, 2), "S": (1,)}
    assert mos2.fermi_level_ev == pytest.approx(-3.6)
    assert set(mos2.edges[:, 4].tolist()) == {0}  # 2D: R3 = 0 only
    assert hermiticity_error(mos2) < 1e-5


def test_mos2_gap_is_the_published_one(mos2, mesh_gap) -> None:
    gap = mesh_gap(mos2, 28, (24, 24, 1))
    assert gap == pytest.approx(0.05, abs=0.015)  # PROVENANCE.md: ≈0.05 eV


def test_vasp_file_is_spin_blocked(mos2_dir: Path, mos2) -> None:
    """wt.in says Package = VASP: blocked spin. Time reversal sees the difference (bands do not)."""
    wrong = wannier90.read(mos2_dir / "wannier90_hr.dat", spin_order="interleaved")
    assert time_reversal_error(mos2) < 0.05
    assert time_reversal_error(wrong) > 100 * time_reversal_error(mos2)


def test_orbitals_follow_the_projector_names(mos2, mos2_dir: Path) -> None:
    """Mo projectors are 's dz2 dxz dyz dx2-y2 dxy': our d order puts dz2 (file index 1) third."""
    raw_t, raw_h, _ = wannier90.read_hr(mos2_dir / "wannier90_hr.dat")
    r0 = int(np.flatnonzero((raw_t == 0).all(axis=1))[0])
    e = mos2.edge_index[(0, 0, (0, 0, 0))]
    ours = mos2.h_block(e)
    # ours: spinor index 2*orbital + s; Mo orbitals s, dxy, dyz, dz2, dxz, dx2-y2
    assert ours[2 * 3, 2 * 3] == pytest.approx(raw_h[r0, 1, 1])  # dz2 ↑↑
    assert ours[2 * 1 + 1, 2 * 1 + 1] == pytest.approx(raw_h[r0, 5 + 24, 5 + 24])  # dxy ↓↓


@pytest.mark.parametrize(
    ("spin", "order"), [("none", "interleaved"), ("soc", "interleaved"), ("soc", "blocked")]
)
def test_round_trip(synthetic, same, tmp_path: Path, spin, order) -> None:
    ham = synthetic(spin)
    path = wannier90.write(ham, tmp_path / "model_hr.dat", spin_order=order)
    assert (tmp_path / "model.win").is_file()
    back = wannier90.read(path)
    same(ham, back, atol=1e-12)
    assert back.n_electrons == ham.n_electrons and back.fermi_level_ev == ham.fermi_level_ev


def test_degeneracy_weights_are_applied(synthetic, tmp_path: Path) -> None:
    ham = synthetic("none")
    path = wannier90.write(ham, tmp_path / "w_hr.dat")
    lines = path.read_text().splitlines()
    n_wann, n_r = int(lines[1]), int(lines[2])
    n_deg_lines = -(-n_r // 15)
    body = lines[3 + n_deg_lines :]
    doubled = []
    for line in body:
        parts = line.split()
        doubled.append(" ".join([*parts[:5], repr(2 * float(parts[5])), repr(2 * float(parts[6]))]))
    deg = ["2"] * n_r
    deg_lines = [" ".join(deg[k : k + 15]) for k in range(0, n_r, 15)]
    path.write_text("\n".join(lines[:3] + deg_lines + doubled) + "\n")
    back = wannier90.read(path)
    assert np.abs(back.h - ham.h).max() < 1e-12
    assert n_wann == ham.n_orbitals


def test_truncated_file(mos2_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cut"
    shutil.copytree(mos2_dir, folder)
    hr = folder / "wannier90_hr.dat"
    lines = hr.read_text().splitlines()
    hr.write_text("\n".join(lines[: len(lines) - 100]) + "\n")
    with pytest.raises(InputError, match=rf"{hr}.*truncated"):
        wannier90.read(hr)


def test_nan_is_refused(synthetic, tmp_path: Path) -> None:
    path = wannier90.write(synthetic("none"), tmp_path / "n_hr.dat")
    lines = path.read_text().splitlines()
    parts = lines[-1].split()
    lines[-1] = " ".join([*parts[:5], "nan", "0.0"])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HamiltonianError, match=rf"{path}.*non-finite"):
        wannier90.read(path)


def test_orbital_count_not_matching_projections(mos2_dir: Path) -> None:
    with pytest.raises(BasisError, match="48 Wannier functions"):
        wannier90.read(mos2_dir / "wannier90_hr.dat", projections={"Mo": "s;p", "S": "p"})


def test_unknown_element_in_projections(mos2_dir: Path) -> None:
    with pytest.raises(BasisError, match="no projections for element S"):
        wannier90.read(mos2_dir / "wannier90_hr.dat", projections={"Mo": "s;d"})


def test_non_hermitian_file_is_caught_by_the_checks(synthetic, tmp_path: Path) -> None:
    from hamdb.physics.checks import check_hamiltonian

    path = wannier90.write(synthetic("none"), tmp_path / "nh_hr.dat")
    lines = path.read_text().splitlines()
    parts = lines[-2].split()
    lines[-2] = " ".join([*parts[:5], repr(float(parts[5]) + 0.5), parts[6]])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HamiltonianError, match=r"hermit|Hermit"):
        check_hamiltonian(wannier90.read(path))
