"""Hamiltonians in the project: the store file plus its `hamiltonians` row, saved and loaded.

`save_hamiltonian` is the one way a Hamiltonian enters the database (DFT runs, model
predictions, `hamdb ingest hamiltonian`): it checks the Hamiltonian (shapes, finiteness,
hermiticity), writes the content-addressed file, and only then adds the row in the caller's
transaction (flushed, not committed), so a failure leaves at most an orphan file for
`hamdb store gc`, never a row without its file. Batch writers (the prediction workers) do the
same in three steps: `stored_form` for each, `HamiltonianStore.put_many`, then the rows from
`hamiltonian_row`. `load_hamiltonian` reads a row's file back; the electron count and Fermi
level come from the row (two rows with equal arrays share one file).

The stored file keeps the Hamiltonian's own structure (its site order is the edges' atom
order); the row's structure_id is the database identity of that structure, which may be an
earlier, equivalent copy (rotated, another cell) matched by hamdb.io.structure_ingest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hamdb.errors import BasisError, InputError
from hamdb.io.hamdb_format import HERMITICITY_TOL_EV, checked, from_arrays, to_arrays
from hamdb.physics.basis import BasisSet
from hamdb.physics.checks import check_hamiltonian
from hamdb.physics.hamiltonian import Hamiltonian

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hamdb.db.models import BasisSetRow, HamiltonianRow

KINDS = ("dft", "predicted")


def ensure_basis_set(session: Session, basis: BasisSet) -> BasisSetRow:
    """The basis_sets row named `basis.name`, created or extended by the elements it lacks.

    A basis name means one definition: an element already recorded with other shells or
    another valence is a BasisError (rename the basis instead).
    """
    from sqlalchemy import select

    from hamdb.db.models import BasisSetRow

    row = session.scalars(select(BasisSetRow).where(BasisSetRow.name == basis.name)).first()
    shells = {el: list(ls) for el, ls in basis.shells.items()}
    valence = dict(basis.valence_electrons)
    if row is None:
        row = BasisSetRow(name=basis.name, shells=shells, valence=valence, sha256=basis.sha256())
        session.add(row)
        session.flush()
        return row
    for el, ls in shells.items():
        if el in row.shells and list(row.shells[el]) != ls:
            raise BasisError(
                f"basis {basis.name!r} already defines {el} with shells {row.shells[el]}, "
                f"not {ls}; give the new basis another name"
            )
        if el in valence and el in row.valence and float(row.valence[el]) != valence[el]:
            raise BasisError(
                f"basis {basis.name!r} already gives {el} {row.valence[el]} valence electrons, "
                f"not {valence[el]}"
            )
    if set(shells) - set(row.shells) or set(valence) - set(row.valence):
        merged_shells = {**row.shells, **shells}
        merged_valence = {**row.valence, **valence}
        row.shells, row.valence = merged_shells, merged_valence
        row.sha256 = BasisSet(basis.name, merged_shells, merged_valence).sha256()
        session.flush()
    return row


@dataclass(frozen=True)
class StoredForm:
    """A checked Hamiltonian as the store will hold it: arrays, attributes, their sha256 (of
    the arrays, computed once) and the file's compression."""

    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any]
    sha256: str
    compression: Any  # a filter, None, or {array name: filter} (hamdb.store.hdf5_file)


#: Predictions are stored in single precision (the network computes in float32; DESIGN.md §3
#: allows it, attrs["dtype"] says so) with lzf: ~2x smaller and ~10x faster to write than
#: complex128 with gzip, which barely compresses a prediction (35 of 51 MB, 9-atom cell).
#: Only h is compressed: lzf keeps 33% of a predicted h (half its values are exact zeros) but
#: 79% of the exact overlap s, at 3x its raw write time; 19 cells of 2-20 atoms: form + write
#: + fsync 118 -> 85 ms, 12.7 -> 14.1 MB per structure (nothing compressed: 49 ms, 30.3 MB).
PREDICTED_DTYPES = {np.dtype(np.complex128): np.complex64, np.dtype(np.float64): np.float32}
PREDICTED_COMPRESSION = {"h": "lzf"}


def stored_form(
    ham: Hamiltonian, kind: str, herm_tol: float = HERMITICITY_TOL_EV, *, check: bool = True
) -> StoredForm:
    """Check `ham` (shapes, finiteness, hermiticity) and turn it into its store arrays.

    kind "predicted" stores h in single precision with lzf; "dft" as it is with the store's
    own compression. check=False: the caller has just run `check_hamiltonian` itself (a
    worker timing the check apart). Raises HamiltonianError/InputError naming the problem.
    """
    from hamdb.store.store import DEFAULT, sha256_of_arrays

    if kind not in KINDS:
        raise InputError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if check:
        check_hamiltonian(ham, herm_tol=herm_tol)
    if ham.n_orbitals == 0 or ham.n_edges == 0:
        raise InputError("an empty Hamiltonian (no orbitals or no edges) cannot be stored")
    arrays, attrs = to_arrays(ham)
    compression: Any = DEFAULT
    if kind == "predicted":
        single = PREDICTED_DTYPES.get(arrays["h"].dtype)
        if single is not None:
            arrays["h"] = arrays["h"].astype(single)
            attrs["dtype"] = str(np.dtype(single))
        compression = PREDICTED_COMPRESSION
    return StoredForm(arrays, attrs, sha256_of_arrays(arrays), compression)


def save_hamiltonian(
    session: Session,
    store: Any,
    ham: Hamiltonian,
    *,
    structure_id: int | None = None,
    kind: str,
    method: str,
    model_version_id: int | None = None,
    settings: dict[str, Any] | None = None,
    uncertainty_ev: float | None = None,
    source: str | None = None,
    herm_tol: float = HERMITICITY_TOL_EV,
) -> HamiltonianRow:
    """Check `ham`, write its store file, then add its row (flushed, not committed).

    structure_id None: the structure is matched against the database (or added) with
    `source` (default "hamiltonian:<method>") and the file's sha256 as its source id.
    kind "dft" takes no model version; kind "predicted" needs one. herm_tol: largest allowed
    |H_ij(R) − H_ji(−R)†| in eV. Raises HamiltonianError/InputError before anything is written.
    """
    _check_kind(kind, model_version_id)
    form = stored_form(ham, kind, herm_tol)
    if structure_id is None:
        from hamdb.io.structure_ingest import find_or_add_structure

        structure_id, _ = find_or_add_structure(
            session, ham.structure, source or f"hamiltonian:{method}", form.sha256
        )
    basis_set_id = ensure_basis_set(session, ham.basis).id
    uri, sha = store.put(form.arrays, form.attrs, sha256=form.sha256, compression=form.compression)
    row = hamiltonian_row(
        ham, uri, sha, basis_set_id, structure_id=structure_id, kind=kind, method=method,
        model_version_id=model_version_id, settings=settings, uncertainty_ev=uncertainty_ev,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def _check_kind(kind: str, model_version_id: int | None) -> None:
    if kind not in KINDS:
        raise InputError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if (kind == "predicted") != (model_version_id is not None):
        raise InputError(
            "a predicted Hamiltonian needs its model version; a dft one has none "
            f"(kind={kind!r}, model_version_id={model_version_id})"
        )


def hamiltonian_row(
    ham: Hamiltonian,
    uri: str,
    sha256: str,
    basis_set_id: int,
    *,
    structure_id: int,
    kind: str,
    method: str,
    model_version_id: int | None = None,
    settings: dict[str, Any] | None = None,
    uncertainty_ev: float | None = None,
) -> HamiltonianRow:
    """The (unsaved) `hamiltonians` row of `ham` stored at `uri` (sha256 of its arrays), for
    callers that stored the files first and insert many rows at once; basis_set_id from
    `ensure_basis_set` in the same transaction."""
    from hamdb.db.models import HamiltonianRow

    _check_kind(kind, model_version_id)
    return HamiltonianRow(
        structure_id=structure_id,
        basis_set_id=basis_set_id,
        kind=kind,
        spin=ham.spin,
        method=method,
        model_version_id=model_version_id,
        uri=uri,
        sha256=sha256,
        n_orbitals=ham.n_orbitals,
        n_electrons=float(ham.n_electrons),
        n_edges=ham.n_edges,
        fermi_level_ev=ham.fermi_level_ev,
        settings=settings,
        uncertainty_ev=uncertainty_ev,
    )


def load_hamiltonian(
    session: Session, store: Any, hamiltonian_id: int, verify: bool = False
) -> Hamiltonian:
    """The Hamiltonian of row `hamiltonian_id`, read from its store file and checked (shapes,
    finiteness, hermiticity; a failure names the row, the file and the edge).

    verify: re-hash the file's arrays against the row's sha256 (StoreError on mismatch).
    """
    from hamdb.db.models import HamiltonianRow
    from hamdb.errors import StoreError
    from hamdb.store.store import sha_of_uri

    row = session.get(HamiltonianRow, hamiltonian_id)
    if row is None:
        raise InputError(f"no Hamiltonian with id {hamiltonian_id} in the database")
    arrays, attrs = store.get(row.uri, verify=verify)
    if verify and sha_of_uri(row.uri) != row.sha256:
        raise StoreError(f"{row.uri}: its name does not match the sha256 of row {hamiltonian_id}")
    source = f"hamiltonian {hamiltonian_id} ({row.uri})"
    ham = checked(from_arrays(arrays, attrs, source=source), source)
    # A file is shared by every row whose arrays are equal (content addressing hashes the
    # arrays only), so what may differ between such rows is the row's, not the file's.
    ham.n_electrons = float(row.n_electrons)
    ham.fermi_level_ev = row.fermi_level_ev
    return ham
