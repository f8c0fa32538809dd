"""DeepH processed folders: round trips and the layout DeepH-pack writes."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from hamdb.errors import BasisError, InputError
from hamdb.io import deeph


@pytest.mark.parametrize(("spin", "overlap"), [("none", False), ("none", True), ("soc", True)])
def test_round_trip(synthetic, same, tmp_path: Path, spin, overlap) -> None:
    ham = synthetic(spin, overlap)
    back = deeph.read(deeph.write(ham, tmp_path / "d"))
    same(ham, back, atol=0.0)  # blocks are only permuted: exact
    assert back.n_electrons == ham.n_electrons and back.fermi_level_ev == ham.fermi_level_ev


def test_layout(synthetic, tmp_path: Path) -> None:
    """1-based atoms in the keys, lattice vectors as columns, OpenMX p order, spin blocks per
    atom."""
    ham = synthetic("soc")
    folder = deeph.write(ham, tmp_path / "d")
    assert np.allclose(np.loadtxt(folder / "lat.dat")[:, 0], ham.structure.lattice.matrix[0])
    assert np.loadtxt(folder / "site_positions.dat").shape == (3, 2)
    assert (folder / "orbital_types.dat").read_text().split("\n")[0] == "0 0 1 2"
    assert json.loads((folder / "info.json").read_text())["isspinful"] is True
    e = ham.edge_index[(0, 1, tuple(int(x) for x in ham.edges[ham.edges[:, 1] == 1][0, 2:]))]
    r = tuple(int(x) for x in ham.edges[e, 2:])
    with h5py.File(folder / "hamiltonians.h5") as f:
        block = f[f"[{r[0]}, {r[1]}, {r[2]}, 1, 2]"][()]
    ours = ham.h_block(e)
    n_i, n_j = 1 + 1 + 3 + 5, 1 + 3
    assert block.shape == (2 * n_i, 2 * n_j)
    # DeepH (px of Ga's p shell, ↓) x (pz of As, ↑) = ours (orbital 4 = px, spin 1) x
    # (orbital 2 = pz, spin 0)
    assert block[n_i + 2, 3] == ours[2 * 4 + 1, 2 * 2]


def test_wrong_block_shape(synthetic, tmp_path: Path) -> None:
    folder = deeph.write(synthetic(), tmp_path / "d")
    with h5py.File(folder / "hamiltonians.h5", "a") as f:
        key = next(iter(f))
        data = f[key][()]
        del f[key]
        f[key] = data[:-1]
    with pytest.raises(BasisError, match=r"hamiltonians.h5: block .* has shape"):
        deeph.read(folder)


def test_unknown_element(synthetic, tmp_path: Path) -> None:
    folder = deeph.write(synthetic(), tmp_path / "d")
    (folder / "element.dat").write_text("31\n999\n")
    with pytest.raises(BasisError, match=r"element.dat: unknown element"):
        deeph.read(folder)


def test_nan_block(synthetic, tmp_path: Path) -> None:
    folder = deeph.write(synthetic(), tmp_path / "d")
    with h5py.File(folder / "hamiltonians.h5", "a") as f:
        key = next(iter(f))
        data = f[key][()]
        data[0, 0] = np.nan
        f[key][...] = data
    with pytest.raises(InputError, match="non-finite"):
        deeph.read(folder)


def test_missing_file(synthetic, tmp_path: Path) -> None:
    folder = deeph.write(synthetic(), tmp_path / "d")
    (folder / "lat.dat").unlink()
    with pytest.raises(InputError, match=r"lat.dat: no such file"):
        deeph.read(folder)
