"""OpenMX: the MoTe2 bilayer (WannierTools sparse files), HamGNN graph_data.npz round trips."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from hamdb.errors import BasisError, InputError
from hamdb.io import openmx
from hamdb.physics.basis import BasisSet
from hamdb.physics.checks import check_hamiltonian
from hamdb.physics.synthetic import random_hamiltonian

VALENCE = {"Mo": 14, "Te": 16}  # OpenMX Mo_PBE19 / Te_PBE19 valence electrons


@pytest.fixture(scope="module")
def mote2_tar(topology_testdata: Path) -> Path:
    return topology_testdata / "wannier_tools" / "MoTe2-bilayer-openmx" / "HS.tar.gz"


@pytest.fixture(scope="module")
def mote2(mote2_tar: Path):
    return openmx.read(mote2_tar, valence_electrons=VALENCE)


def test_mote2_sizes(mote2) -> None:
    assert mote2.spin == "soc"
    assert mote2.n_states == 208  # PROVENANCE.md
    assert mote2.n_electrons == 92  # 2 Mo × 14 + 4 Te × 16
    assert mote2.s is not None
    assert mote2.basis.shells == {"Mo": (0, 0, 0, 1, 1, 2), "Te": (0, 0, 0, 1, 1, 2, 2)}
    check_hamiltonian(mote2, herm_tol=1e-9)


def test_mote2_gap_in_ev(mote2, mesh_gap) -> None:
    """The file is in Hartree: read as eV the gap would be 0.036."""
    assert mesh_gap(mote2, 92, (6, 6, 1)) == pytest.approx(0.98, abs=0.03)


def test_down_up_block_is_rebuilt_hermitian(mote2, mote2_tar: Path) -> None:
    """The file's ↓↑ block is conj(↑↓), not Hermitian; the reader rebuilds it from ↑↓."""
    from hamdb.io.wanniertools import read_sparse

    with tarfile.open(mote2_tar) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/H.dat") or m.name == "H.dat")
        raw = tar.extractfile(member).read()  # type: ignore[union-attr]
    translations, h, n = read_sparse(mote2_tar, content=raw)
    index = {tuple(r): k for k, r in enumerate(translations.tolist())}
    minus = np.array([index[tuple(-x for x in r)] for r in translations.tolist()])
    anti = np.abs(h - h[minus].conj().transpose(0, 2, 1)).max()
    assert anti > 1e-2  # Hartree: the file is not Hermitian
    half = n // 2
    assert np.abs(h[:, half:, :half] - h[:, :half, half:].conj()).max() == 0.0
    assert mote2.origin["openmx_spin_fix_ev"] == pytest.approx(anti * openmx.HARTREE_EV, rel=1e-9)


def test_mote2_orbital_order_and_signs(mote2, sign_error) -> None:
    assert sign_error(mote2) < 2e-3  # overlaps rounded to 1e-7 in the file


def test_mote2_symmetry(mote2) -> None:
    """Every space-group operation maps blocks onto blocks; swapping px and py breaks it."""
    from hamdb.io.common import dense_from_hamiltonian, hamiltonian_from_dense
    from hamdb.physics.rotations import symmetry_error

    good = symmetry_error(mote2, symprec=1e-4)
    translations, h, s = dense_from_hamiltonian(mote2)
    perm, start = [], 0
    for el in mote2.species:
        for ell in mote2.basis.shell_ls(el):
            idx = list(range(start, start + 2 * ell + 1))
            perm += idx[::-1] if ell == 1 else idx
            start += 2 * ell + 1
    p = np.array(perm)
    sp = np.stack([2 * p, 2 * p + 1], axis=1).reshape(-1)
    swapped = hamiltonian_from_dense(
        mote2.structure, mote2.basis, "soc", translations, h[:, sp][:, :, sp], s[:, p][:, :, p]
    )
    assert good < 0.03
    assert symmetry_error(swapped, symprec=1e-4) > 30 * good


def test_missing_wt_in(tmp_path: Path, mote2_tar: Path) -> None:
    copy = tmp_path / "HS.tar.gz"
    copy.write_bytes(mote2_tar.read_bytes())
    with pytest.raises(InputError, match=r"wt.in"):
        openmx.read(copy)


def test_truncated_sparse_file(tmp_path: Path, mote2_tar: Path) -> None:
    folder = tmp_path / "cut"
    folder.mkdir()
    (folder / "wt.in").write_bytes((mote2_tar.parent / "wt.in").read_bytes())
    with tarfile.open(mote2_tar) as tar:
        member = next(
            m for m in tar.getmembers() if m.name.endswith("H.dat") and "._" not in m.name
        )
        text = tar.extractfile(member).read()  # type: ignore[union-attr]
    (folder / "H.dat").write_bytes(text[: len(text) // 3])
    with pytest.raises(InputError, match=rf"{folder / 'H.dat'}.*truncated"):
        openmx.read(folder / "H.dat")


@pytest.fixture(scope="module")
def openmx_like(cell):
    basis = BasisSet(
        "openmx:test", {"Ga": (0, 0, 1, 1, 2), "As": (0, 0, 0, 1, 1, 2, 2)}, {"Ga": 13, "As": 15}
    )
    return random_hamiltonian(cell, basis, "none", cutoff_angstrom=4.5, overlap=True, seed=3)


def test_hamgnn_npz_round_trip(openmx_like, same, tmp_path: Path) -> None:
    path = openmx.write(openmx_like, tmp_path / "graph_data.npz")
    back = openmx.read(path, pao={"Ga": "s2p2d1", "As": "s3p2d2"})
    same(openmx_like, back, atol=1e-12)


def test_hamgnn_npz_layout(openmx_like, tmp_path: Path) -> None:
    """Hartree and HamGNN's padded slots: the On-site Ga block's (s1, s1) sits at slot 0, its
    first px at slot 3 (nao_max 19: s1 s2 s3 p1 p2 d1 d2), and As's second d at slots 14..18."""
    path = openmx.write(openmx_like, tmp_path / "g.npz")
    with np.load(path, allow_pickle=True) as data:
        graph = data["graph"].item()[0]
    hon = np.asarray(graph.Hon).reshape(2, 19, 19)
    e = openmx_like.edge_index[(0, 0, (0, 0, 0))]
    ours = openmx_like.h_block(e)
    assert hon[0, 0, 0] * openmx.HARTREE_EV == pytest.approx(ours[0, 0])
    # ours: s s | py pz px | ...; OpenMX px is our index 2+2 = 4 (first p shell starts at 2)
    assert hon[0, 3, 3] * openmx.HARTREE_EV == pytest.approx(ours[4, 4])
    assert np.abs(hon[1, 14:19, 14:19]).max() > 0 and np.abs(hon[0, 14:19]).max() == 0


def test_hamgnn_npz_needs_shells(openmx_like, tmp_path: Path) -> None:
    path = openmx.write(openmx_like, tmp_path / "g.npz")
    with pytest.raises(InputError, match="give pao"):
        openmx.read(path)
    with pytest.raises(BasisError, match="no PAO given for element As"):
        openmx.read(path, pao={"Ga": "s2p2d1"})


def test_hamgnn_refuses_soc(synthetic, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="spinless"):
        openmx.write(synthetic("soc"), tmp_path / "g.npz")


def test_not_an_npz(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(io.BytesIO(b"not a zip").getvalue())
    with pytest.raises(InputError, match=str(bad)):
        openmx.read(bad, pao={})
