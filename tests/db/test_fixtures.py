"""The database fixtures themselves: every test starts on an empty, migrated database, even
where PostgreSQL reuses one schema per module."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hamdb.db.migrate import current, head
from hamdb.db.models import ModelRow


@pytest.mark.parametrize("turn", [1, 2, 3])
def test_each_test_starts_empty_with_fresh_ids(project, session: Session, turn: int) -> None:
    assert current(project.database_url) == head()
    assert session.scalars(select(ModelRow)).all() == []
    row = ModelRow(name=f"turn-{turn}")
    session.add(row)
    session.commit()
    assert row.id == 1


@pytest.mark.parametrize("turn", [1, 2])
def test_a_test_that_downgrades_does_not_break_the_next(project, turn: int) -> None:
    from hamdb.db.migrate import downgrade

    assert current(project.database_url) == head()
    downgrade(project.database_url, "base")
