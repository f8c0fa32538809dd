"""Symmetries the network keeps by construction: E(3) equivariance, permutations,
translations, exact hermiticity and time reversal (non-SOC and SOC models)."""

# ruff: noqa: E741  (l is the angular momentum quantum number, as in the physics)

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation

from hamdb.ml.data import make_graph
from hamdb.ml.graph import periodic_neighbours
from hamdb.ml.irreps import design_harmonics
from hamdb.ml.model import HamiltonianNet, ModelConfig, envelope
from hamdb.ml.network_io import blocks_to_flat, run_network
from hamdb.physics.basis import BasisSet

BASIS = BasisSet(
    "toy", {"Si": (0, 1, 2), "O": (0, 1), "Bi": (0, 0, 1, 2)}, {"Si": 4, "O": 6, "Bi": 5}
)
PAULI = [
    np.array(m, dtype=complex) for m in ([[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]])
]


def sphere_quadrature() -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre in cos θ × uniform φ: exact for the products of harmonics up to l = 3."""
    z, wz = np.polynomial.legendre.leggauss(8)
    phi = np.arange(16) * 2 * np.pi / 16
    zz, pp = np.meshgrid(z, phi, indexing="ij")
    rho = np.sqrt(1 - zz**2)
    pts = np.stack([rho * np.cos(pp), rho * np.sin(pp), zz], axis=-1).reshape(-1, 3)
    return pts, np.repeat(wz, len(phi)) / (2 * len(phi))


def design_wigner(l: int, rot: np.ndarray) -> np.ndarray:
    """D_design(R) from the DESIGN polynomials alone (no e3nn), by exact quadrature."""
    pts, w = sphere_quadrature()
    y = design_harmonics(l, pts)
    y = y / np.sqrt((w[:, None] * y**2).sum(axis=0))  # orthonormal on the sphere
    # Y(R r) = D Y(r) for all r  =>  D = ⟨Y(R r) Y(r)ᵀ⟩ by orthonormality.
    y_rot = design_harmonics(l, pts @ rot.T)
    y_rot = y_rot / np.sqrt((w[:, None] * design_harmonics(l, pts) ** 2).sum(axis=0))
    return (w[:, None, None] * y_rot[:, :, None] * y[:, None, :]).sum(axis=0)


def spin_half(rot: np.ndarray) -> np.ndarray:
    """SU(2) matrix of a proper rotation: exp(−iθ n·σ/2)."""
    v = Rotation.from_matrix(rot).as_rotvec()
    theta = np.linalg.norm(v)
    n = v / theta if theta > 0 else np.zeros(3)
    return np.cos(theta / 2) * np.eye(2) - 1j * np.sin(theta / 2) * sum(
        a * s for a, s in zip(n, PAULI, strict=True)
    )


def atom_rotation(species: str, rot: np.ndarray, spin: bool) -> np.ndarray:
    blocks = [design_wigner(l, rot) for l in BASIS.shell_ls(species)]
    n = sum(b.shape[0] for b in blocks)
    d = np.zeros((n, n))
    k = 0
    for b in blocks:
        d[k : k + len(b), k : k + len(b)] = b
        k += len(b)
    return np.kron(d, spin_half(rot)) if spin else d


def random_structure(seed: int, species: tuple[str, ...] = ("Si", "O", "Bi", "O")) -> Structure:
    rng = np.random.default_rng(seed)
    lattice = Lattice.from_parameters(*rng.uniform(3.8, 4.6, 3), *rng.uniform(80, 100, 3))
    return Structure(lattice, list(species), rng.uniform(0, 1, (len(species), 3)))


def make_net(kind: str, seed: int = 0) -> HamiltonianNet:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        kind=kind,
        shells={k: list(v) for k, v in BASIS.shells.items()},
        basis_name="toy",
        hidden="8x0e+4x1o+4x2e+2x1e+2x2o",
        edge_mul=4,
        mp_cutoff_ang=4.0,
        edge_cutoff_ang=5.0,
    )
    net = HamiltonianNet(cfg)
    with torch.no_grad():  # non-zero atomic levels, so they are tested too
        net.onsite_shift.weight.normal_()
    return net


def predict(net: HamiltonianNet, structure: Structure) -> dict:
    """{(i, j, R): block in DESIGN basis} of one structure at a 4.5 Å cut-off."""
    cut = np.full((len(structure), len(structure)), 4.5)
    edges, _ = periodic_neighbours(structure.lattice.matrix, structure.frac_coords, cut)
    graph, layout = make_graph(structure, BASIS, edges, net.cfg.l_pairs)
    flat = blocks_to_flat(net, layout, run_network(net, [graph])[0])
    counts = BASIS.orbital_counts([s.specie.symbol for s in structure]) * (
        2 if net.cfg.kind == "soc" else 1
    )
    out, start = {}, 0
    for i, j, *R in layout.edges.tolist():
        size = counts[i] * counts[j]
        out[(i, j, tuple(R))] = flat[start : start + size].reshape(counts[i], counts[j])
        start += size
    return out


def max_abs(blocks: dict) -> float:
    return max(float(np.abs(b).max()) for b in blocks.values())


@pytest.mark.parametrize("kind", ["nonsoc", "soc"])
def test_rotation_equivariance(kind: str) -> None:
    net = make_net(kind)
    s = random_structure(1)
    ref = predict(net, s)
    assert max_abs(ref) > 0.1
    for seed in range(2):
        rot = Rotation.random(random_state=seed).as_matrix()
        rotated = Structure(Lattice(s.lattice.matrix @ rot.T), s.species, s.frac_coords)
        got = predict(net, rotated)
        assert got.keys() == ref.keys()
        spin = kind == "soc"
        species = [x.specie.symbol for x in s]
        worst = 0.0
        for (i, j, R), block in ref.items():
            di, dj = atom_rotation(species[i], rot, spin), atom_rotation(species[j], rot, spin)
            worst = max(worst, float(np.abs(di @ block @ dj.conj().T - got[(i, j, R)]).max()))
        assert worst < 1e-5 * max(1.0, max_abs(ref))


@pytest.mark.parametrize("kind", ["nonsoc", "soc"])
def test_inversion_parity(kind: str) -> None:
    """Inversion maps edge (i, j, R) to (i, j, −R) and each shell pair picks up (−1)^{l1+l2}.

    The SOC vector (K_x, K_y, K_z) is axial: spin is untouched, so the same sign rule holds.
    """
    net = make_net(kind)
    s = random_structure(2)
    inverted = Structure(s.lattice, s.species, -s.frac_coords)
    ref, got = predict(net, s), predict(net, inverted)
    ns = 2 if kind == "soc" else 1
    for (i, j, R), block in ref.items():
        pi = np.repeat([(-1) ** l for l in BASIS.orbital_ls(s[i].specie.symbol)], ns)
        pj = np.repeat([(-1) ** l for l in BASIS.orbital_ls(s[j].specie.symbol)], ns)
        expected = pi[:, None] * block * pj[None, :]
        np.testing.assert_allclose(got[(i, j, tuple(-r for r in R))], expected, atol=1e-5)


def test_translation_and_permutation_invariance() -> None:
    net = make_net("soc")
    s = random_structure(3)
    ref = predict(net, s)
    shift = np.array([0.37, -0.61, 0.83])
    moved = Structure(s.lattice, s.species, s.frac_coords + shift, to_unit_cell=True)
    wraps = np.round(s.frac_coords + shift - moved.frac_coords).astype(int)
    got = predict(net, moved)
    for (i, j, R), block in ref.items():
        R2 = tuple(int(x) for x in np.array(R) + wraps[j] - wraps[i])
        np.testing.assert_allclose(got[(i, j, R2)], block, atol=1e-5)
    perm = np.array([2, 0, 3, 1])  # new site k holds old site perm[k]
    permuted = Structure(s.lattice, [s.species[p] for p in perm], s.frac_coords[perm])
    got = predict(net, permuted)
    new_index = np.argsort(perm)
    for (i, j, R), block in ref.items():
        np.testing.assert_allclose(got[(int(new_index[i]), int(new_index[j]), R)], block, atol=1e-5)


@pytest.mark.parametrize("kind", ["nonsoc", "soc"])
def test_exact_hermiticity_and_time_reversal(kind: str) -> None:
    net = make_net(kind)
    blocks = predict(net, random_structure(4))
    for (i, j, R), block in blocks.items():
        other = blocks[(j, i, tuple(-r for r in R))]
        assert np.array_equal(block, other.conj().T)  # exact, not to a tolerance
        if kind == "soc":
            # Θ = iσ_y K on interleaved spinors: Θ H Θ⁻¹ = H for time-reversal symmetry.
            n = block.shape[0] // 2
            ty_i = np.kron(np.eye(n), 1j * PAULI[1])
            ty_j = np.kron(np.eye(block.shape[1] // 2), 1j * PAULI[1])
            np.testing.assert_allclose(ty_i @ block.conj() @ ty_j.conj().T, block, atol=1e-12)
        else:
            assert np.isrealobj(block)


@pytest.mark.parametrize("kind", ["nonsoc", "soc"])
def test_zero_beyond_fades_long_blocks_to_exact_zero(kind: str) -> None:
    """Off-site blocks are the full model's times u(r / zero_beyond_ang), exactly zero beyond
    it; on-site blocks are unchanged."""
    net = make_net(kind)
    s = random_structure(5)
    full = predict(net, s)
    net.cfg.zero_beyond_ang = 3.5
    cut = predict(net, s)
    lattice = s.lattice.matrix
    n_zero = 0
    for (i, j, R), block in full.items():
        length = np.linalg.norm(s.cart_coords[j] + np.array(R) @ lattice - s.cart_coords[i])
        if length < 1e-4:
            np.testing.assert_allclose(cut[(i, j, R)], block, atol=1e-5)
        elif length < 3.5:
            fade = float(envelope(torch.tensor(length / 3.5)))
            np.testing.assert_allclose(cut[(i, j, R)], fade * block, rtol=1e-3, atol=1e-5)
        else:
            assert not cut[(i, j, R)].any()
            n_zero += 1
    assert 0 < n_zero < len(full)
