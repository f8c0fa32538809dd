"""The candidates view and its queries/exports, on real SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from conftest import add_screened, add_structures
from sqlalchemy.orm import Session

from hamdb.errors import InputError
from hamdb.pipeline.candidates import candidates_query, export, fetch


@pytest.fixture
def screened(session: Session, model_version_id: int) -> dict[str, int]:
    """Six structures with known predicted (and some DFT) topology results."""
    s = add_structures(session, 6)
    mv = model_version_id
    add_screened(session, s[0], model_version_id=mv, z2=(1, 0, 0, 0), gap_ev=0.30,
                 uncertainty_ev=0.02)  # strong TI, DFT agrees below
    add_screened(session, s[1], model_version_id=mv, z2=(0, 0, 0, 1), gap_ev=0.08,
                 uncertainty_ev=0.05)  # weak TI, DFT says trivial
    add_screened(session, s[2], model_version_id=mv, z2=(0, 0, 0, 0), gap_ev=1.2)  # trivial
    add_screened(session, s[3], model_version_id=mv, z2=None, gap_ev=0.0, is_metal=True,
                 converged=False, error="metal: gap 0 eV")
    add_screened(session, s[4], model_version_id=mv, z2=(1, 1, 1, 1), gap_ev=0.02,
                 uncertainty_ev=0.001)  # strong but tiny gap, unverified
    h5, _ = add_screened(session, s[5], model_version_id=mv, z2=(1, 0, 0, 1), gap_ev=0.4,
                         method="parity")  # an older parity result loses to the newer one
    add_screened(session, s[5], model_version_id=None, z2=(1, 0, 0, 0), gap_ev=0.5,
                 hamiltonian_id=h5, method="parity")
    add_screened(session, s[0], model_version_id=None, z2=(1, 0, 0, 0), gap_ev=0.25)
    add_screened(session, s[1], model_version_id=None, z2=(0, 0, 0, 0), gap_ev=0.1)
    session.commit()
    return {"strong": s[0], "weak": s[1], "trivial": s[2], "metal": s[3], "tiny": s[4],
            "parity": s[5]}  # fmt: skip


def test_view_classifies_and_joins_dft(session: Session, screened: dict[str, int]):
    rows = {r["structure_id"]: r for r in fetch(session, candidates_query(only_candidates=False))}
    assert len(rows) == 6  # one row per predicted Hamiltonian
    assert rows[screened["strong"]]["z2_class"] == "strong"
    assert rows[screened["weak"]]["z2_class"] == "weak"
    assert rows[screened["trivial"]]["z2_class"] == "trivial"
    assert rows[screened["metal"]]["z2_class"] == "metal"
    assert rows[screened["parity"]]["topology_method"] == "parity"
    assert rows[screened["parity"]]["nu3"] == 0  # the newest of two parity results
    assert rows[screened["strong"]]["dft_agrees"] is True
    assert rows[screened["weak"]]["dft_agrees"] is False
    assert rows[screened["weak"]]["dft_z2_class"] == "trivial"
    assert rows[screened["tiny"]]["dft_agrees"] is None
    flagged = {sid for sid, r in rows.items() if r["is_candidate"]}
    assert flagged == {screened[k] for k in ("strong", "weak", "tiny", "parity")}


def test_filters(session: Session, screened: dict[str, int]):
    def ids(**kw: Any) -> list[int]:
        return [r["structure_id"] for r in fetch(session, candidates_query(**kw))]

    assert ids() == [screened[k] for k in ("parity", "strong", "weak", "tiny")]  # by gap
    assert ids(min_gap_ev=0.05, z2="strong") == [screened["parity"], screened["strong"]]
    assert ids(z2="weak") == [screened["weak"]]
    assert ids(unverified=True) == [screened["parity"], screened["tiny"]]
    assert ids(elements=["bi", "Se"]) == ids()
    assert ids(elements=["Te"]) == []
    # promise = gap - 2 * uncertainty: the weak one (0.08 - 0.10) falls behind the tiny one.
    assert ids(order="promise")[-1] == screened["weak"]
    with pytest.raises(InputError, match="element symbol"):
        candidates_query(elements=["Bi'; DROP TABLE structures; --"])


def test_exports(session: Session, screened: dict[str, int], tmp_path: Any):
    rows = fetch(session, candidates_query())
    text = export(session, rows, "csv", None)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["structure_id"]) for r in parsed] == [r["structure_id"] for r in rows]
    assert json.loads(export(session, rows, "json", None))[0]["formula"] == "BiSe"
    lines = export(session, rows, "optimade", None).splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 4 and first["type"] == "structures"
    attrs = first["attributes"]
    assert attrs["elements"] == ["Bi", "Se"] and attrs["nsites"] == 2
    assert attrs["_hamdb_z2"] == [1, 0, 0, 0] and attrs["_hamdb_gap_ev"] == pytest.approx(0.5)
    assert "formula" in export(session, rows, "table", None)
    with pytest.raises(InputError, match="--output"):
        export(session, rows, "parquet", None)
