"""Numpy physics of atomic-orbital Hamiltonians (no torch, h5py or SQLAlchemy here).

hamiltonian  the canonical block-sparse `Hamiltonian`; basis: `BasisSet`
checks       `check_hamiltonian`, `hermiticity_error`
bloch        `bloch_matrices` (H(k), S(k); lattice or atomic gauge), `dense_hr`
spin         `to_soc`, `decompose`/`compose` (SU(2) split), `soc_correction`, time reversal
bands        eigenvalues, k-paths and meshes, gaps, occupations, Fermi level, plots
rotations    Wigner-D of the real orbitals, spin rotations, `symmetry_error`
slater_koster, synthetic, models   model Hamiltonians for tests, benchmarks and topology
"""
