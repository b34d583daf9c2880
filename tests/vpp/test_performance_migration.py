"""Migration 0006 (the operator's performance remedies) on SQLite and PostgreSQL: the table
takes a remedy and gives it back with an aware timestamp; downgrade drops it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine
from sqlmodel import Session, select

from vpp.db import _alembic_config, current_revision, upgrade
from vpp.performance_models import PerformanceRemedy


def test_remedies_round_trip_and_downgrade_drops_the_table(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0005")
    assert "performance_remedy" not in sa.inspect(empty_engine).get_table_names()
    upgrade(empty_engine, "0006")
    assert current_revision(empty_engine) == "0006"
    with Session(empty_engine) as s:
        s.add(PerformanceRemedy(programme="hunan-2026", remedied_on=date(2026, 7, 1),
                                note="inverters replaced", actor="operator"))
        s.commit()
    with Session(empty_engine) as s:
        row = s.exec(select(PerformanceRemedy)).one()
        assert (row.programme, row.remedied_on, row.note) == ("hunan-2026", date(2026, 7, 1),
                                                              "inverters replaced")
        assert row.created_at.tzinfo is not None
        assert abs(row.created_at - datetime.now(UTC)).total_seconds() < 60
    command.downgrade(_alembic_config(empty_engine), "0005")
    assert "performance_remedy" not in sa.inspect(empty_engine).get_table_names()
    assert current_revision(empty_engine) == "0005"
