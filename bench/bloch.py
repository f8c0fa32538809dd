"""Benchmark: H(k) + diagonalisation of a 20-atom SOC cell (400 states) over 1,000 k-points.

Compares, in one run on the same Hamiltonian and the same k-points:
  bare    numpy's batched LAPACK eigvalsh on H(k) matrices built beforehand (not timed):
          the floor any band code pays;
  hamdb   hamdb.physics.bands.eigenvalues: Bloch sums (scatter plans built inside the timing)
          plus the same eigensolver;
  sisl    sisl.Hamiltonian.eigh(k) per k-point on the same blocks (hamdb.io.siesta.to_sisl).
Target: hamdb within 1.5× of bare (building H(k) must not be the cost).

    OMP_NUM_THREADS=1 python bench/bloch.py [--nk 1000] [--chunk 25]

The model: a 5×2×1 supercell of diamond Si with an sp3d5s* Slater–Koster basis (10 orbitals,
20 spinor states per atom) and on-site λ L·S, hoppings to second neighbours (4.0 Å).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from pymatgen.core import Lattice, Structure

from hamdb.physics.bands import eigenvalues
from hamdb.physics.basis import BasisSet
from hamdb.physics.bloch import bloch_matrices, iter_bloch
from hamdb.physics.hamiltonian import Hamiltonian
from hamdb.physics.slater_koster import SlaterKosterModel, slater_koster_hamiltonian


def model_hamiltonian() -> Hamiltonian:
    a = 5.43
    cell = Structure(
        Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]]),
        ["Si", "Si"],
        [[0, 0, 0], [0.25, 0.25, 0.25]],
    )
    cell.make_supercell([5, 2, 1])
    basis = BasisSet("sp3d5s*", {"Si": (0, 1, 2, 0)}, {"Si": 4})
    rng = np.random.default_rng(0)
    keys = ["sss", "sps", "pps", "ppp", "sds", "pds", "pdp", "dds", "ddp", "ddd"]
    model = SlaterKosterModel(
        {"Si": [-2.0, 4.0, 14.0, 19.0]},
        {("Si", "Si"): {k: float(v) for k, v in zip(keys, rng.normal(size=10), strict=True)}},
        d0_angstrom=2.35,
        cutoff_angstrom=4.0,
        soc_ev={"Si": {1: 0.03, 2: 0.01}},
    )
    return slater_koster_hamiltonian(cell, basis, model, "soc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nk", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=25, help="k-points per interleaved chunk")
    args = parser.parse_args()
    ham = model_hamiltonian()
    kpts = np.random.default_rng(1).uniform(-0.5, 0.5, size=(args.nk, 3))
    print(f"{ham!r}; {args.nk} k-points; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")

    from hamdb.io.siesta import to_sisl

    sisl_h = to_sisl(ham)
    # The machine is shared: the three are timed chunk by chunk, interleaved, so that a burst
    # of other load falls on all of them alike.
    scratch = model_hamiltonian()  # H(k) for the bare solver, built outside its timing
    bare = ours = sisl_time = 0.0
    ours_eigs, sisl_eigs = [], []
    step = args.chunk
    for start in range(0, args.nk, step):
        k = kpts[start : start + step]
        h_k, _ = bloch_matrices(scratch, k)
        t0 = time.perf_counter()
        np.linalg.eigvalsh(h_k)
        bare += time.perf_counter() - t0
        t0 = time.perf_counter()
        ours_eigs.append(eigenvalues(ham, k))  # the first chunk also builds the plans
        ours += time.perf_counter() - t0
        t0 = time.perf_counter()
        sisl_eigs.append([sisl_h.eigh(k=q) for q in k])
        sisl_time += time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in iter_bloch(ham, kpts):
        pass
    build_only = time.perf_counter() - t0
    t0 = time.perf_counter()
    for q in kpts:
        sisl_h.Hk(k=q, format="array")
    sisl_build = time.perf_counter() - t0

    agree = float(np.abs(np.concatenate(sisl_eigs) - np.concatenate(ours_eigs)).max())
    h0, _ = bloch_matrices(ham, kpts[:1])
    print(f"matrix size {h0.shape[1]}x{h0.shape[2]}; max |E_hamdb - E_sisl| = {agree:.2e} eV")
    print(f"bare LAPACK eigvalsh          {bare:8.2f} s")
    print(f"hamdb H(k) + eigvalsh         {ours:8.2f} s   ({ours / bare:.2f}x bare)")
    print(f"  of which H(k) alone         {build_only:8.2f} s")
    print(f"sisl  Hk + eigh per k         {sisl_time:8.2f} s   ({sisl_time / bare:.2f}x bare)")
    print(f"  of which Hk alone           {sisl_build:8.2f} s")
    print(f"sisl / hamdb                  {sisl_time / ours:8.2f}x")


if __name__ == "__main__":
    main()
