"""How much do the bands of DFT Hamiltonians move if the PAW-only edges are dropped?

GPAW's H(R) (and S(R)) has a block wherever two orbital spheres overlap *or* both orbitals
touch one projector sphere (the three-centre PAW terms; hamdb.dft.gpaw_lcao). The second kind
("PAW-only" edges: |τ_j + R − τ_i| ≥ rc_i + rc_j) is about half of all edges of a dzp cell
and carries |S| ≲ 1e-6. This script zeroes their H and S blocks in stored DFT Hamiltonians
and compares the eigenvalues on a k-mesh: largest change of an occupied band and of the gap
(indirect and direct), with the exact overlap (s_min 0) and the filtered one (s_min 1e-2,
hamdb.physics.orthogonal). Printed, never asserted.

    OMP_NUM_THREADS=1 python bench/paw_edges.py --project P [--mesh 6] [--ids 1,2]
"""

from __future__ import annotations

import argparse

import numpy as np


def direct_mask(ham: object) -> np.ndarray:
    """True for the edges whose orbital spheres overlap (GPAW's own cut-offs, dzp/PBE)."""
    from hamdb.dft.gpaw_overlap import EDGE_MARGIN_ANGSTROM, element_data

    species = ham.species
    rc = np.array([element_data(el, "dzp", "PBE", 0.2).orbital_rc_ang for el in species])
    e = ham.edges
    lattice = ham.structure.lattice.matrix
    cart = ham.structure.cart_coords
    d = np.linalg.norm(cart[e[:, 1]] + e[:, 2:] @ lattice - cart[e[:, 0]], axis=1)
    return d < rc[e[:, 0]] + rc[e[:, 1]] + EDGE_MARGIN_ANGSTROM


def without(ham: object, drop: np.ndarray) -> object:
    """A copy of `ham` with the H and S blocks of the edges `drop` set to zero."""
    from hamdb.physics.hamiltonian import Hamiltonian

    h, s = ham.h.copy(), ham.s.copy()
    for e in np.nonzero(drop)[0].tolist():
        h[ham.offsets[e] : ham.offsets[e + 1]] = 0
        s[ham.s_offsets[e] : ham.s_offsets[e + 1]] = 0
    return Hamiltonian(
        ham.structure, ham.basis, ham.spin, ham.edges, ham.offsets, h, s, ham.s_offsets,
        n_electrons=ham.n_electrons, fermi_level_ev=ham.fermi_level_ev, origin=dict(ham.origin),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--mesh", type=int, default=6, help="Γ-centred k-mesh per direction")
    parser.add_argument("--ids", default=None, help="hamiltonians row ids (default: all DFT)")
    args = parser.parse_args()
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from hamdb.config import load_project
    from hamdb.db.engine import make_engine
    from hamdb.db.models import HamiltonianRow
    from hamdb.io.catalog import load_hamiltonian
    from hamdb.physics.bands import band_gap, eigenvalues, kmesh, n_occupied
    from hamdb.store.store import HamiltonianStore

    project = load_project(args.project)
    store = HamiltonianStore(project.store_path)
    kpts = kmesh((args.mesh,) * 3)
    print(f"{args.project}: Γ-centred {args.mesh}³ mesh; energies in meV")
    print(
        "ham  formula   spin  atoms  edges  paw_only  max|S|_paw  s_min  "
        "occ_max  occ_mean  gap  d_gap  gap_full_ev"
    )
    worst: dict[float, list[float]] = {0.0: [0, 0], 1e-2: [0, 0]}
    with Session(make_engine(project.database_url)) as session:
        query = select(HamiltonianRow.id).where(HamiltonianRow.kind == "dft")
        ids = [int(x) for x in args.ids.split(",")] if args.ids else session.scalars(query).all()
        for hid in ids:
            ham = load_hamiltonian(session, store, hid)
            direct = direct_mask(ham)
            cut = without(ham, ~direct)
            s_paw = max(
                (np.abs(ham.s_block(int(e))).max() for e in np.nonzero(~direct)[0]), default=0.0
            )
            nocc = n_occupied(ham)
            for s_min in (0.0, 1e-2):
                full = eigenvalues(ham, kpts, s_min=s_min)
                trunc = eigenvalues(cut, kpts, s_min=s_min)
                occ = np.abs(full[:, :nocc] - trunc[:, :nocc]) * 1e3
                g_full, dg_full = band_gap(full, nocc)
                g_cut, dg_cut = band_gap(trunc, nocc)
                dg = abs(g_full - g_cut) * 1e3
                ddg = abs(dg_full - dg_cut) * 1e3
                worst[s_min][0] = max(worst[s_min][0], float(occ.max()))
                worst[s_min][1] = max(worst[s_min][1], dg, ddg)
                print(
                    f"{hid:3d}  {ham.structure.composition.reduced_formula:8}  {ham.spin:4}  "
                    f"{len(ham.structure):5d}  {ham.n_edges:5d}  {int((~direct).sum()):8d}  "
                    f"{s_paw:10.1e}  {s_min:5g}  {occ.max():7.3f}  {occ.mean():8.4f}  "
                    f"{dg:6.3f}  {ddg:5.3f}  {g_full:8.4f}",
                    flush=True,
                )
    for s_min, (occ, gap) in worst.items():
        print(f"worst, s_min {s_min:g}: occupied bands {occ:.3f} meV, gaps {gap:.3f} meV")


if __name__ == "__main__":
    main()
