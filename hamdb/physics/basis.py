"""Atomic-orbital basis sets: which shells (angular momenta l) each element carries.

Orbital order inside an atom (DESIGN.md §2): shells in the order given here; inside a shell the
real orbitals m = −l..l, for l=1 (p_y, p_z, p_x), for l=2 (d_xy, d_yz, d_z², d_xz, d_x²−y²),
all real harmonics with positive coefficients. Spin is not part of the basis: a SOC
Hamiltonian doubles every orbital, spinor index = 2·orbital + s (s = 0 ↑, 1 ↓).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hamdb.errors import BasisError


@dataclass(frozen=True)
class BasisSet:
    """Per-element shells and valence electrons of an atomic-orbital basis.

    name: e.g. "gpaw-dzp" or "wannier90:MoS2".
    shells: element symbol -> angular momentum l of each shell, in basis order,
        e.g. {"Si": (0, 0, 1, 1, 2)} for GPAW's dzp (s, s', p, p', d polarisation).
    valence_electrons: element symbol -> electrons the basis holds for that element.
    """

    name: str
    shells: Mapping[str, tuple[int, ...]] = field(hash=False)
    valence_electrons: Mapping[str, float] = field(hash=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "shells", {el: tuple(int(ell) for ell in ls) for el, ls in self.shells.items()}
        )
        object.__setattr__(
            self, "valence_electrons", {el: float(v) for el, v in self.valence_electrons.items()}
        )

    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(sorted(self.shells))

    def shell_ls(self, element: str) -> tuple[int, ...]:
        """The l of each shell of `element`, raising BasisError for an element not covered."""
        try:
            return self.shells[element]
        except KeyError:
            raise BasisError(
                f"basis {self.name!r} has no shells for element {element} "
                f"(it covers {', '.join(self.elements)})"
            ) from None

    def n_orbitals(self, element: str) -> int:
        """Number of spatial orbitals of one atom of `element` (no spin)."""
        return sum(2 * ell + 1 for ell in self.shell_ls(element))

    def orbital_counts(self, species: Sequence[str]) -> np.ndarray:
        """Orbitals per site (no spin), int64 array aligned with `species`."""
        return np.array([self.n_orbitals(el) for el in species], dtype=np.int64)

    def orbital_ls(self, element: str) -> np.ndarray:
        """The l of every orbital of one atom, in basis order (length n_orbitals(element))."""
        return np.array(
            [ell for ell in self.shell_ls(element) for _ in range(2 * ell + 1)], dtype=int
        )

    def n_valence(self, species: Sequence[str]) -> float:
        """Valence electrons of a whole cell with these species."""
        try:
            return float(sum(self.valence_electrons[el] for el in species))
        except KeyError as exc:
            raise BasisError(
                f"basis {self.name!r} gives no valence electrons for {exc.args[0]}"
            ) from None

    @property
    def max_l(self) -> int:
        return max((max(ls) for ls in self.shells.values() if ls), default=0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shells": {el: list(ls) for el, ls in sorted(self.shells.items())},
            "valence_electrons": dict(sorted(self.valence_electrons.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BasisSet:
        return cls(
            name=data["name"],
            shells={el: tuple(ls) for el, ls in data["shells"].items()},
            valence_electrons=dict(data.get("valence_electrons", {})),
        )

    def sha256(self) -> str:
        """Hash of the canonical JSON definition: two bases with the same shells agree."""
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def restricted_to(self, elements: Sequence[str]) -> BasisSet:
        """The same basis limited to `elements` (what one structure needs)."""
        return BasisSet(
            self.name,
            {el: self.shell_ls(el) for el in elements},
            {el: v for el, v in self.valence_electrons.items() if el in elements},
        )

    def __repr__(self) -> str:
        return f"BasisSet({self.name!r}, {len(self.shells)} elements, max l={self.max_l})"
