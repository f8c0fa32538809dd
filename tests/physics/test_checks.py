"""check_hamiltonian: a valid Hamiltonian passes; each kind of damage is named with its edge."""

from __future__ import annotations

import numpy as np
import pytest

from hamdb.errors import HamiltonianError
from hamdb.physics.checks import check_hamiltonian, hermiticity_error, reverse_edges
from hamdb.physics.hamiltonian import Hamiltonian
from hamdb.physics.synthetic import random_hamiltonian


@pytest.fixture(params=["none", "soc"])
def ham(request, gaas_like, spd_basis) -> Hamiltonian:
    return random_hamiltonian(gaas_like, spd_basis, request.param, 5.0, overlap=True, seed=7)


def rebuilt(ham: Hamiltonian, **changes) -> Hamiltonian:
    fields = dict(
        structure=ham.structure, basis=ham.basis, spin=ham.spin, edges=ham.edges.copy(),
        offsets=ham.offsets.copy(), h=ham.h.copy(), s=ham.s.copy(), s_offsets=ham.s_offsets.copy(),
    )  # fmt: skip
    fields.update(changes)
    return Hamiltonian(**fields)


def test_valid_passes(ham):
    check_hamiltonian(ham, herm_tol=1e-12)
    assert hermiticity_error(ham) < 1e-14


def test_reverse_edges_pairs_up(ham):
    rev = reverse_edges(ham.edges)
    assert (rev >= 0).all()
    np.testing.assert_array_equal(rev[rev], np.arange(ham.n_edges))
    np.testing.assert_array_equal(ham.edges[rev][:, 2:], -ham.edges[:, 2:])


def test_non_hermitian_names_edge(ham):
    h = ham.h.copy()
    e = next(e for e in range(ham.n_edges) if ham.edges[e, 0] != ham.edges[e, 1])
    h[ham.offsets[e] + 1] += 0.5
    bad = rebuilt(ham, h=h)
    assert hermiticity_error(bad) == pytest.approx(0.5)
    with pytest.raises(HamiltonianError, match=r"not Hermitian.*0\.5 eV.*edge \(i="):
        check_hamiltonian(bad)
    check_hamiltonian(bad, herm_tol=0.6)


def test_non_hermitian_overlap(ham):
    s = ham.s.copy()
    e = next(e for e in range(ham.n_edges) if ham.edges[e, 0] != ham.edges[e, 1])
    s[ham.s_offsets[e]] += 0.1
    with pytest.raises(HamiltonianError, match="S is not Hermitian"):
        check_hamiltonian(rebuilt(ham, s=s))


def test_nan_names_edge(ham):
    h = ham.h.copy()
    h[ham.offsets[5] + 2] = np.nan
    edge = ", ".join(str(int(x)) for x in ham.edges[5, 2:])
    with pytest.raises(HamiltonianError, match=rf"R=\({edge}\)\) has 1 non-finite"):
        check_hamiltonian(rebuilt(ham, h=h))


def _drop(ham: Hamiltonian, e: int) -> Hamiltonian:
    keep = np.delete(np.arange(ham.n_edges), e)
    blocks = {ham.edge_key(k): ham.h_block(k) for k in keep}
    return Hamiltonian.from_blocks(ham.structure, ham.basis, ham.spin, blocks)


def test_missing_reverse_edge(ham):
    e = next(e for e in range(ham.n_edges) if ham.edges[e, 0] != ham.edges[e, 1])
    with pytest.raises(HamiltonianError, match="no reverse edge"):
        check_hamiltonian(_drop(ham, e))


def test_missing_onsite(ham):
    e = ham.edge_index[(1, 1, (0, 0, 0))]
    with pytest.raises(HamiltonianError, match=r"site 1 \(As\) has no on-site block"):
        check_hamiltonian(_drop(ham, e))


def test_wrong_block_size(ham):
    offsets = ham.offsets.copy()
    offsets[4:] -= 1
    with pytest.raises(HamiltonianError, match="the basis needs"):
        check_hamiltonian(rebuilt(ham, offsets=offsets, h=ham.h[:-1]))


def test_site_out_of_range(ham):
    edges = ham.edges.copy()
    edges[2, 1] = 9
    with pytest.raises(HamiltonianError, match=r"outside 0\.\.1"):
        check_hamiltonian(rebuilt(ham, edges=edges))


def test_duplicate_edge(ham):
    edges = ham.edges.copy()
    e = next(e for e in range(1, ham.n_edges) if ham.block_shape(e) == ham.block_shape(e - 1))
    edges[e] = edges[e - 1]
    with pytest.raises(HamiltonianError, match="more than once"):
        check_hamiltonian(rebuilt(ham, edges=edges))


def _edge_re(ham: Hamiltonian, e: int) -> str:
    return ", ".join(str(int(x)) for x in ham.edges[e, 2:])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_every_non_finite_value_is_caught(ham, value):
    """Finiteness is read off the pairwise hermiticity pass: a non-finite value anywhere (an
    on-site block, either edge of a pair, H or S, real or imaginary part) is still named."""
    rev = reverse_edges(ham.edges)
    onsite = int(
        np.flatnonzero((ham.edges[:, 0] == ham.edges[:, 1]) & (rev == np.arange(len(rev))))[0]
    )
    lo = int(next(e for e in range(ham.n_edges) if e < rev[e]))
    for what, e in (("H", onsite), ("H", lo), ("H", int(rev[lo])), ("S", lo), ("S", int(rev[lo]))):
        flat = (ham.h if what == "H" else ham.s).copy()
        offsets = ham.offsets if what == "H" else ham.s_offsets
        k = int(offsets[e + 1]) - 1  # the block's last value
        flat[k] = value
        if what == "H" and np.iscomplexobj(flat):
            flat[k] = 1.0 + 1j * value if value == value else complex(1.0, np.nan)
        bad = rebuilt(ham, **({"h": flat} if what == "H" else {"s": flat}))
        with pytest.raises(
            HamiltonianError, match=rf"{what} block .*R=\({_edge_re(ham, e)}\)\) has 1 non"
        ):
            check_hamiltonian(bad)


def test_pairwise_deviation_is_symmetric(ham):
    """Both edges of a pair report the pair's deviation (each pair is compared once)."""
    h = ham.h.copy()
    rev = reverse_edges(ham.edges)
    e = int(next(e for e in range(ham.n_edges) if e < rev[e]))
    h[ham.offsets[rev[e]]] += 0.25
    bad = rebuilt(ham, h=h)
    assert hermiticity_error(bad) == pytest.approx(0.25)
    with pytest.raises(HamiltonianError, match=r"0\.25 eV"):
        check_hamiltonian(bad)


def test_overflowing_deviation_is_not_hermitian(ham):
    h = ham.h.astype(np.complex64 if np.iscomplexobj(ham.h) else np.float32)
    rev = reverse_edges(ham.edges)
    e = int(next(e for e in range(ham.n_edges) if e < rev[e]))
    h[ham.offsets[e]] = 3e38
    h[ham.offsets[rev[e]]] = -3e38
    with pytest.raises(HamiltonianError, match=r"not Hermitian.*inf eV"):
        check_hamiltonian(rebuilt(ham, h=h))
