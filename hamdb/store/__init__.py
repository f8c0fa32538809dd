"""The HDF5 Hamiltonian store: write-once, content-addressed files, verify and gc."""

from hamdb.store.store import HamiltonianStore, sha256_of_arrays, sha_of_uri, uri_for

__all__ = ["HamiltonianStore", "sha256_of_arrays", "sha_of_uri", "uri_for"]
