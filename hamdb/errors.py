"""The errors hamdb raises for users: one line, naming the file or row and what is wrong.

The CLI catches `HamdbError` once and prints its message (a traceback only with --debug);
anything else escaping a command is a bug in hamdb.
"""


class HamdbError(Exception):
    """Base of every error meant to be read by a user."""


class ConfigError(HamdbError):
    """No project, a bad hamdb.toml, an unusable database URL."""


class InputError(HamdbError):
    """A file or value given by the user cannot be read or is physically invalid."""


class BasisError(InputError):
    """Orbital counts or elements do not match the basis set."""


class HamiltonianError(InputError):
    """A Hamiltonian fails a check: shapes, finiteness, hermiticity, positive-definite S."""


class StoreError(HamdbError):
    """The HDF5 store is missing a file or a file does not match its recorded hash."""


class DatabaseError(HamdbError):
    """The database is unreachable, not migrated, or locked by another writer."""


class ModelError(HamdbError):
    """A model cannot be loaded or cannot handle the structure (unseen element, other basis)."""


class TopologyError(HamdbError):
    """The invariant cannot be computed: metal, odd occupied count with SOC, singular S."""


class DFTError(HamdbError):
    """The reference DFT run failed: missing setups, no SCF convergence, too small a k-mesh."""
