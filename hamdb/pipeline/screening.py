"""Screening chained after prediction: gap and Z2 of the Hamiltonians a worker just stored.

`hamdb predict --pending --screen` calls `screen_hamiltonians` once per batch with the batch's
Hamiltonians still in memory (no reload from the store). Results are stored exactly as
`hamdb screen` stores them (hamdb.topology.screening.result_rows, the same settings hash), so
`hamdb screen --pending` afterwards finds them done, and a duplicate from a racing worker is
skipped by the unique (hamiltonian, method, settings) constraint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hamdb.errors import HamdbError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hamdb.physics.hamiltonian import Hamiltonian


def screen_hamiltonians(
    session: Session,
    items: Sequence[tuple[int, Hamiltonian]],
    settings: Any = None,
) -> int:
    """Analyse each (hamiltonian_id, Hamiltonian) and store its topology rows; returns how many
    got rows (a failed analysis gets a row with its error, so it is not retried)."""
    from sqlalchemy.exc import IntegrityError

    from hamdb.topology.analysis import TopologySettings, analyse
    from hamdb.topology.screening import result_rows

    s = settings if isinstance(settings, TopologySettings) else TopologySettings.from_dict(settings)
    stored = 0
    with session.begin():
        for hamiltonian_id, ham in items:
            report, error = None, None
            try:
                report = analyse(ham, settings=s)
            except HamdbError as exc:
                error = f"hamiltonian {hamiltonian_id}: {exc}"
            except Exception as exc:  # a library failure: recorded, the worker goes on
                error = f"hamiltonian {hamiltonian_id}: {type(exc).__name__}: {exc}"
            try:
                with session.begin_nested():
                    session.add_all(result_rows(hamiltonian_id, report, s, error))
                    session.flush()
                stored += 1
            except IntegrityError:  # another worker screened it first
                continue
    return stored
