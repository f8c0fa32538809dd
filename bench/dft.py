"""Benchmark: wall time per structure of the GPAW LCAO + SOC generator, by stage, vs atoms.

    OMP_NUM_THREADS=1 python3 bench/dft.py [--kdensity 1.2] [--grid-spacing 0.25] [--quick]

For each structure (Si 2 and 8 atoms, the 8-atom one with an atom moved 0.4 Å so ingest does
not find it equal to the primitive; rocksalt/wurtzite/Bi2Se3-type/2H from the dataset
generator, 1-6 atoms) it runs `hamdb.dft.gpaw_lcao.compute` and stores both Hamiltonians
through `hamdb.io.catalog.save_hamiltonian` into a throwaway SQLite project, and prints:
  scf        GPAW's self-consistent PBE LCAO run
  full-zone  H(k), S(k) on the cut-off-sized mesh from GPAW's pieces + inverse Bloch transform
  soc        PAW spin-orbit operators, their projection P (σ·L) P† at every k, SOC Fermi level
  blocks     DESIGN-order blocks and the two canonical Hamiltonians
  store      both HDF5 files (gzip) and rows, one transaction
Target (issue 5): soc + blocks + store < 10 % of scf. Then `compute_overlap` (exact S(R) with
no SCF) for the same structures. Figures are printed, never asserted; the machine is shared,
so compare ratios from one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure


def structures(quick: bool) -> list[tuple[str, Structure]]:
    from hamdb.dft.dataset import item

    a = 5.43
    si2 = Structure(
        Lattice(0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])),
        ["Si", "Si"],
        [[0, 0, 0], [0.25, 0.25, 0.25]],
    )
    out = [("Si diamond", si2)]
    if not quick:
        si8 = Structure(
            Lattice.cubic(a),
            ["Si"] * 8,
            [
                [0, 0, 0],
                [0, 0.5, 0.5],
                [0.5, 0, 0.5],
                [0.5, 0.5, 0],
                [0.25, 0.25, 0.25],
                [0.25, 0.75, 0.75],
                [0.75, 0.25, 0.75],
                [0.75, 0.75, 0.25],
            ],
        )
        si8.translate_sites([0], [0.4, 0.0, 0.0], frac_coords=False)  # not the primitive's copy
        out.append(("Si conventional*", si8))
    for index in (11, 1, 20, 18) if not quick else (11,):  # rocksalt, Bi2Se3-type, wurtzite, 2H
        meta, s = item(index)
        out.append((f"{meta.prototype} {'-'.join(meta.elements)}", s))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kdensity", type=float, default=1.2)
    parser.add_argument("--grid-spacing", type=float, default=0.25)
    parser.add_argument("--quick", action="store_true", help="two small structures only")
    args = parser.parse_args()

    from hamdb.config import load_project, write_default_config
    from hamdb.db.engine import make_engine, session_scope
    from hamdb.db.migrate import upgrade
    from hamdb.dft.gpaw_lcao import LcaoSettings, compute, compute_overlap
    from hamdb.io.catalog import save_hamiltonian
    from hamdb.io.structure_ingest import find_or_add_structure
    from hamdb.store.store import HamiltonianStore

    settings = LcaoSettings(kdensity=args.kdensity, grid_spacing=args.grid_spacing)
    root = Path(tempfile.mkdtemp(prefix="hamdb-bench-dft-"))
    write_default_config(root)
    project = load_project(root)
    upgrade(project.database_url)
    engine = make_engine(project.database_url)
    store = HamiltonianStore(project.store_path)

    header = (
        f"{'structure':<22}{'atoms':>5}{'orbs':>6}{'mesh':>10}{'scf s':>8}{'zone s':>8}"
        f"{'soc s':>7}{'blk s':>7}{'store s':>8}{'(soc+blk+store)/scf':>21}{'S only s':>9}"
    )
    print(f"GPAW LCAO dzp PBE, kdensity {args.kdensity}, h {args.grid_spacing} Å")
    print(header)
    for name, structure in structures(args.quick):
        with session_scope(engine) as session:
            sid, _ = find_or_add_structure(session, structure, "bench", name)
        result = compute(structure, settings)
        t0 = time.perf_counter()
        with session_scope(engine) as session:
            for ham in (result.h_none, result.h_soc):
                save_hamiltonian(
                    session,
                    store,
                    ham,
                    structure_id=sid,
                    kind="dft",
                    method=settings.method,
                    settings={},
                )
        store_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        compute_overlap(structure, settings)
        overlap_s = time.perf_counter() - t0
        t = result.timings
        ratio = (t.soc_s + t.transform_s + store_s) / t.scf_s
        mesh = "x".join(map(str, result.mesh))
        print(
            f"{name:<22}{len(structure):>5}{result.h_none.n_orbitals:>6}{mesh:>10}"
            f"{t.scf_s:>8.1f}{t.full_zone_s:>8.1f}{t.soc_s:>7.2f}{t.transform_s:>7.2f}"
            f"{store_s:>8.2f}{ratio:>20.1%} {overlap_s:>8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
