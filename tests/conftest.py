"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TOPOLOGY_TESTDATA = REPO_ROOT.parent / "shared" / "topology_testdata"


@pytest.fixture(scope="session")
def topology_testdata() -> Path:
    """../shared/topology_testdata: published SOC Hamiltonians with known Z2 (PROVENANCE.md)."""
    if not TOPOLOGY_TESTDATA.is_dir():
        pytest.skip(f"{TOPOLOGY_TESTDATA} is absent (CI always has it)")
    return TOPOLOGY_TESTDATA
