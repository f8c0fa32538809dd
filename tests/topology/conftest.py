"""Single-threaded BLAS for every topology test: the work is many small matrices (as inside
`analyse`), and Z2Pack's per-k calls or a bare `plane_flow` thrash with threaded OpenBLAS on a
busy machine (the Bi/Z2Pack comparison went from ~5 s to ~95 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _single_threaded_blas() -> Iterator[None]:
    with threadpool_limits(limits=1, user_api="blas"):
        yield
