"""Slater–Koster two-centre tight-binding models for s, p, d orbitals on any structure.

A model whose symmetry is known by construction: the test bed for the symmetry check
(hamdb.physics.rotations), the band code and the benchmark. The hopping between orbital a on
atom i and b on atom j displaced by d = τ_j + R − τ_i, with direction cosines (l, m, n) = d/|d|,
follows Table I of J. C. Slater and G. F. Koster, Phys. Rev. 94, 1498 (1954), written out below
(energy integrals V_sss, V_sps, …, V_ddd; "sps" means s on atom i, p on atom j). Integrals
scale with distance as (d0/|d|)^η (Harrison's η = 2 by default). Orbitals follow DESIGN.md:
p (y, z, x), d (xy, yz, z², xz, x²−y²) with z² ≡ 3z²−r². On-site spin-orbit coupling λ L·S
(L from hamdb.physics.rotations.angular_momentum, S = σ/2) makes a SOC model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from hamdb.physics.hamiltonian import EdgeKey, Hamiltonian
from hamdb.physics.synthetic import neighbour_edges

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from hamdb.physics.basis import BasisSet

S3 = math.sqrt(3.0)
_SIGMA = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=complex)


def _sp(c: np.ndarray, v: Mapping[str, float]) -> np.ndarray:
    l, m, n = c  # noqa: E741
    return v["sps"] * np.array([[m, n, l]])


def _pp(c: np.ndarray, v: Mapping[str, float]) -> np.ndarray:
    s, p = v["pps"], v["ppp"]
    u = c[[1, 2, 0]]  # (m, n, l): the p order (y, z, x)
    return (s - p) * np.outer(u, u) + p * np.eye(3)


def _sd(c: np.ndarray, v: Mapping[str, float]) -> np.ndarray:
    l, m, n = c  # noqa: E741
    row = [
        S3 * l * m,
        S3 * m * n,
        n * n - (l * l + m * m) / 2,
        S3 * n * l,
        S3 / 2 * (l * l - m * m),
    ]
    return v["sds"] * np.array([row])


def _pd(c: np.ndarray, v: Mapping[str, float]) -> np.ndarray:
    """Rows p (y, z, x), columns d (xy, yz, z², xz, x²−y²)."""
    l, m, n = c  # noqa: E741
    s, p = v["pds"], v["pdp"]
    q = n * n - (l * l + m * m) / 2
    x = [
        S3 * l * l * m * s + m * (1 - 2 * l * l) * p,  # x, xy
        S3 * l * m * n * s - 2 * l * m * n * p,  # x, yz
        l * q * s - S3 * l * n * n * p,  # x, z²
        S3 * l * l * n * s + n * (1 - 2 * l * l) * p,  # x, zx
        S3 / 2 * l * (l * l - m * m) * s + l * (1 - l * l + m * m) * p,  # x, x²−y²
    ]
    y = [
        S3 * m * m * l * s + l * (1 - 2 * m * m) * p,
        S3 * m * m * n * s + n * (1 - 2 * m * m) * p,
        m * q * s - S3 * m * n * n * p,
        S3 * l * m * n * s - 2 * l * m * n * p,
        S3 / 2 * m * (l * l - m * m) * s - m * (1 + l * l - m * m) * p,
    ]
    z = [
        S3 * l * m * n * s - 2 * l * m * n * p,
        S3 * n * n * m * s + m * (1 - 2 * n * n) * p,
        n * q * s + S3 * n * (l * l + m * m) * p,
        S3 * n * n * l * s + l * (1 - 2 * n * n) * p,
        S3 / 2 * n * (l * l - m * m) * s - n * (l * l - m * m) * p,
    ]
    return np.array([y, z, x])


def _dd(c: np.ndarray, v: Mapping[str, float]) -> np.ndarray:
    """d (xy, yz, z², xz, x²−y²) × d, symmetric."""
    l, m, n = c  # noqa: E741
    s, p, d = v["dds"], v["ddp"], v["ddd"]
    ll, mm, nn = l * l, m * m, n * n
    lm2 = ll - mm
    q = nn - (ll + mm) / 2

    def diag(aa: float, bb: float, cc: float) -> float:
        # the xy-xy element for the plane of the axes with squared cosines aa, bb
        return 3 * aa * bb * s + (aa + bb - 4 * aa * bb) * p + (cc + aa * bb) * d

    e = np.zeros((5, 5))
    xy, yz, z2, xz, x2 = range(5)
    e[xy, xy] = diag(ll, mm, nn)
    e[yz, yz] = diag(mm, nn, ll)
    e[xz, xz] = diag(nn, ll, mm)
    e[xy, yz] = 3 * l * mm * n * s + l * n * (1 - 4 * mm) * p + l * n * (mm - 1) * d
    e[xy, xz] = 3 * ll * m * n * s + m * n * (1 - 4 * ll) * p + m * n * (ll - 1) * d
    e[yz, xz] = 3 * l * m * nn * s + l * m * (1 - 4 * nn) * p + l * m * (nn - 1) * d
    e[xy, x2] = 1.5 * l * m * lm2 * s - 2 * l * m * lm2 * p + 0.5 * l * m * lm2 * d
    e[yz, x2] = 1.5 * m * n * lm2 * s - m * n * (1 + 2 * lm2) * p + m * n * (1 + lm2 / 2) * d
    e[xz, x2] = 1.5 * n * l * lm2 * s + n * l * (1 - 2 * lm2) * p - n * l * (1 - lm2 / 2) * d
    e[xy, z2] = S3 * (l * m * q * s - 2 * l * m * nn * p + l * m * (1 + nn) / 2 * d)
    e[yz, z2] = S3 * (m * n * q * s + m * n * (ll + mm - nn) * p - m * n * (ll + mm) / 2 * d)
    e[z2, xz] = S3 * (l * n * q * s + l * n * (ll + mm - nn) * p - l * n * (ll + mm) / 2 * d)
    e[x2, x2] = 0.75 * lm2**2 * s + (ll + mm - lm2**2) * p + (nn + lm2**2 / 4) * d
    e[z2, x2] = S3 * (lm2 * q / 2 * s + nn * (mm - ll) * p + (1 + nn) * lm2 / 4 * d)
    e[z2, z2] = q * q * s + 3 * nn * (ll + mm) * p + 0.75 * (ll + mm) ** 2 * d
    upper = np.triu_indices(5, 1)
    e[upper[1], upper[0]] = e[upper]
    return e


_TABLE = {(0, 1): _sp, (1, 1): _pp, (0, 2): _sd, (1, 2): _pd, (2, 2): _dd}
_KEYS = {
    (0, 0): ("sss",), (0, 1): ("sps",), (1, 1): ("pps", "ppp"), (0, 2): ("sds",),
    (1, 2): ("pds", "pdp"), (2, 2): ("dds", "ddp", "ddd"),
}  # fmt: skip


def sk_block(l1: int, l2: int, direction: np.ndarray, integrals: Mapping[str, float]) -> np.ndarray:
    """(2l1+1, 2l2+1) two-centre block for shells l1 on atom i and l2 on atom j along
    `direction` (i → j, any length), in the DESIGN.md orbital order. l ≤ 2.

    For l1 > l2 the table of (l2, l1) is used with the parity (−1)^(l1+l2):
    E_ab(d) = E_ba(−d) (and `integrals` then mean the (l2 on i, l1 on j) ones of the pair
    seen from j, which the caller supplies).
    """
    c = np.asarray(direction, dtype=float)
    c = c / np.linalg.norm(c)
    if l1 > l2:
        return (-1) ** (l1 + l2) * sk_block(l2, l1, c, integrals).T
    if (l1, l2) == (0, 0):
        return np.array([[integrals["sss"]]])
    return _TABLE[(l1, l2)](c, integrals)


@dataclass(frozen=True)
class SlaterKosterModel:
    """Parameters of a two-centre model.

    onsite_ev: element -> on-site energy of each shell, in basis order.
    integrals_ev: (element_i, element_j) -> {"sss": …, "sps": …} at distance d0_angstrom,
        "sps" meaning s on element_i, p on element_j (keys sss sps pps ppp sds pds pdp dds
        ddp ddd, as the shells need). A missing (B, A) entry is the (A, B) one.
    soc_ev: element -> {l: λ} on-site spin-orbit strength λ of every shell of that l (λ L·S).
    """

    onsite_ev: Mapping[str, Sequence[float]]
    integrals_ev: Mapping[tuple[str, str], Mapping[str, float]]
    d0_angstrom: float
    cutoff_angstrom: float
    eta: float = 2.0
    soc_ev: Mapping[str, Mapping[int, float]] = field(default_factory=dict)

    def integrals(self, el_i: str, el_j: str) -> Mapping[str, float]:
        if (el_i, el_j) in self.integrals_ev:
            return self.integrals_ev[(el_i, el_j)]
        return self.integrals_ev[(el_j, el_i)]


def slater_koster_hamiltonian(
    structure: Structure, basis: BasisSet, model: SlaterKosterModel, spin: str = "none"
) -> Hamiltonian:
    """H(R) of `model` on `structure` for every pair closer than the model's cutoff.

    spin "soc" gives H⊗σ0 + Σ_atoms λ L·S (zero λ gives a spin-degenerate spinor model).
    n_electrons comes from the basis' valence electrons when given.
    """
    species = [site.specie.symbol for site in structure]
    cart = np.asarray(structure.cart_coords)
    lattice = np.asarray(structure.lattice.matrix)
    blocks: dict[EdgeKey, np.ndarray] = {}
    for key in neighbour_edges(structure, model.cutoff_angstrom):
        i, j, r = key
        d = cart[j] + np.asarray(r) @ lattice - cart[i]
        dist = float(np.linalg.norm(d))
        shells_i, shells_j = basis.shell_ls(species[i]), basis.shell_ls(species[j])
        if dist < 1e-8:
            block = np.diag(
                np.repeat(
                    np.asarray(model.onsite_ev[species[i]], float),
                    [2 * ell + 1 for ell in shells_i],
                )
            )
        else:
            scale = (model.d0_angstrom / dist) ** model.eta
            rows = []
            for l1 in shells_i:
                row = []
                for l2 in shells_j:
                    if l1 <= l2:
                        v = model.integrals(species[i], species[j])
                    else:  # the table is written with the lower l on the first atom
                        v = model.integrals(species[j], species[i])
                    row.append(scale * sk_block(l1, l2, d, v))
                rows.append(row)
            block = np.block(rows)
        if spin == "soc":
            block = np.kron(block, np.eye(2)).astype(complex)
            if dist < 1e-8:
                block = block + _onsite_soc(shells_i, model.soc_ev.get(species[i], {}))
        blocks[key] = block
    n_electrons = basis.n_valence(species) if basis.valence_electrons else 0.0
    return Hamiltonian.from_blocks(
        structure, basis, spin, blocks, n_electrons=n_electrons,  # type: ignore[arg-type]
        origin={"code": "slater-koster", "d0_angstrom": model.d0_angstrom},
    )  # fmt: skip


def _onsite_soc(shells: Sequence[int], lam: Mapping[int, float]) -> np.ndarray:
    """Block-diagonal λ L·S (spinor, interleaved) over an atom's shells."""
    from scipy.linalg import block_diag

    from hamdb.physics.rotations import angular_momentum

    parts = []
    for ell in shells:
        size = 2 * ell + 1
        if ell == 0 or not lam.get(ell):
            parts.append(np.zeros((2 * size, 2 * size), complex))
            continue
        big_l = angular_momentum(ell)
        parts.append(lam[ell] * sum(np.kron(big_l[a], _SIGMA[a]) for a in range(3)) / 2)
    return block_diag(*parts)
