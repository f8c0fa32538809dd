"""hamdb: a database, an equivariant model and a topology screen for spin-orbit-coupled
Hamiltonians of crystals.

Conventions (units eV and Å, orbital order, spinor layout, the H(R) convention) are fixed in
DESIGN.md; every reader converts into them and every writer out of them.
"""

__version__ = "0.1.0"
