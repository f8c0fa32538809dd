"""SIESTA through sisl: the Bi(111) bilayer HSX of PROVENANCE.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from hamdb.errors import InputError
from hamdb.io import siesta
from hamdb.io.common import dense_from_hamiltonian, hamiltonian_from_dense
from hamdb.physics.bloch import bloch_matrices

KPTS = np.array(
    [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [1 / 3, 2 / 3, 0.0], [0.13, 0.27, 0.0], [-0.21, 0.4, 0.0]]
)


@pytest.fixture(scope="module")
def hsx(topology_testdata: Path) -> Path:
    return topology_testdata / "sisl-files" / "Bi_hexagonal" / "Bi_hexagonal.HSX"


@pytest.fixture(scope="module")
def bi(hsx: Path):
    return siesta.read(hsx)


def test_bi_sizes(bi) -> None:
    assert bi.spin == "soc" and bi.n_states == 56 and bi.s is not None
    assert bi.n_electrons == 30  # RUN.out: Total number of electrons
    assert bi.basis.shells == {"Bi": (0, 1, 2, 2)}
    assert bi.fermi_level_ev == pytest.approx(-2.794, abs=1e-3)


def test_bands_agree_with_sisl(bi, hsx: Path) -> None:
    import sisl

    reference = sisl.get_sile(str(hsx)).read_hamiltonian()
    h_k, s_k = bloch_matrices(bi, KPTS)
    assert s_k is not None
    for k, h, s in zip(KPTS, h_k, s_k, strict=True):
        ours = scipy.linalg.eigh(h, s, eigvals_only=True)
        assert np.abs(ours - reference.eigh(k)).max() < 1e-9


def test_bi_gap(bi, mesh_gap) -> None:
    assert mesh_gap(bi, 30, (15, 15, 1)) == pytest.approx(0.17, abs=0.03)  # PROVENANCE: ≈0.17 eV


def test_orbital_signs_are_converted(bi, sign_error) -> None:
    """SIESTA's m-th real harmonic is (−1)^m times ours: undoing the conversion breaks the
    two-centre overlaps (a symmetry test cannot see it: (−1)^m is the C2z rotation, which
    commutes with the D3d group of this crystal)."""
    assert sign_error(bi) < 1e-8
    signs = siesta.condon_shortley_signs(bi.basis, list(bi.species))
    spinor = np.repeat(signs, 2)
    translations, h, s = dense_from_hamiltonian(bi)
    h_raw = h * spinor[None, :, None] * spinor[None, None, :]
    s_raw = s * signs[None, :, None] * signs[None, None, :]
    raw = hamiltonian_from_dense(bi.structure, bi.basis, "soc", translations, h_raw, s_raw)
    assert sign_error(raw) > 0.1


def test_bi_symmetry(bi) -> None:
    from hamdb.physics.rotations import symmetry_error

    assert symmetry_error(bi) < 0.01


def test_hsx_round_trip(bi, same, tmp_path: Path) -> None:
    back = siesta.read(siesta.write(bi, tmp_path / "out.HSX"))
    same(bi, back, atol=1e-12)


def test_synthetic_round_trip(synthetic, same, tmp_path: Path) -> None:
    ham = synthetic("soc", True)
    same(ham, siesta.read(siesta.write(ham, tmp_path / "syn.HSX")), atol=1e-12)


def test_truncated_file(hsx: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.HSX"
    cut.write_bytes(hsx.read_bytes()[:5000])
    with pytest.raises(InputError, match=str(cut)):
        siesta.read(cut)


def test_tshs_without_fdf(tmp_path: Path, bi) -> None:
    path = tmp_path / "x.TSHS"
    siesta.to_sisl(bi).write(str(path))
    with pytest.raises(InputError, match="carries no basis"):
        siesta.read(path)
