"""The daemon's re-plans of one event re-solve the QP it built for the event's first plan:
the horizon is the event (plus its rebound tail) with the past pinned, so a re-plan in a later
interval has the same structure and is a warm re-solve, not a rebuild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from tests.vpp.daemon.harness import (
    accepted_call,
    daemon_settings,
    plan_at,
    planner_at,
    seed,
)
from vpp.db import session_scope
from vpp.models import DispatchPlan, Setpoint
from vpp.telemetry_store import Reading, write_readings

START = datetime(2026, 7, 15, 10, 0, tzinfo=UTC)  # 18:00 in Zhuzhou
_HOUR = timedelta(hours=1)


def _event(engine: Engine, owner_id: int, host: str, hours: int,
           **params: Any) -> tuple[int, list[int]]:
    """Two loads of ``owner_id`` (baseline 15 kW each) and an accepted call of ``hours`` from
    ``START`` with a bid of 8 kW: (event id, device ids)."""
    return accepted_call(engine, owner_id, host, START, hours, **params)


async def test_replans_in_later_intervals_reuse_the_built_model(engine: Engine,
                                                                 tmp_path: Path) -> None:
    event_id, ids = _event(engine, seed(engine).owner_id, "10.4.4.1", hours=1)
    now = [START]
    planner = planner_at(engine, daemon_settings(tmp_path, str(engine.url)), now)
    outs = await plan_at(planner, event_id, now, START,
                        [(1, "initial"), (16, "periodic"), (31, "periodic"), (46, "periodic")])
    [builds] = planner.solver.build_counts().values()
    assert builds == 1  # four plans in four intervals, one QP
    for k, out in enumerate(outs):
        assert out.current_interval == START + timedelta(minutes=15 * k)
        assert out.shortfall_kw < 0.01 * 8.0
        current = START + timedelta(minutes=15 * k)
        with session_scope(engine) as s:
            # a re-plan equal to the active plan is not written: its rows are the active plan's
            rows = [r for r in s.exec(select(Setpoint).where(Setpoint.plan_id == out.plan_id))
                    if r.interval_start.replace(tzinfo=UTC) >= current]
            # one setpoint per device for each interval left in the event and its 4 h tail,
            # from the current one
            assert len(rows) == len(ids) * (4 - k + 16)
            assert all(0.0 <= r.setpoint_kw <= 20.0 for r in rows)
            rows = [r for r in rows if r.interval_start.replace(tzinfo=UTC) < START + _HOUR]
            assert len(rows) == len(ids) * (4 - k)
            got = sorted({r.interval_start.replace(tzinfo=UTC) for r in rows})
            assert got[0] == current
            # together they still shed the declared 8 kW off the 30 kW baseline
            for t in got:
                total = sum(r.setpoint_kw for r in rows
                            if r.interval_start.replace(tzinfo=UTC) == t)
                assert total <= 30.0 - 8.0 * 0.99


async def test_a_replan_counts_the_shed_time_already_used(engine: Engine,
                                                          tmp_path: Path) -> None:
    """Two loads may curtail 10 kW for 60 minutes each. The meters show they curtailed that
    fully in the event's first hour; a re-plan for its second hour must not curtail them again
    (the call is then short, and says so)."""
    event_id, ids = _event(engine, seed(engine).owner_id, "10.4.4.2", hours=2,
                           max_curtail_minutes=60, makeup_fraction=0.0)
    # the first hour, metered: both loads at 5 kW (10 kW below their 15 kW baseline)
    write_readings(engine, [Reading(d, START + timedelta(minutes=m), 5.0)
                            for d in ids for m in range(0, 60, 5)])
    now = [START]
    planner = planner_at(engine, daemon_settings(tmp_path, str(engine.url)), now)
    [out] = await plan_at(planner, event_id, now, START, [(61, "periodic")])
    assert out.current_interval == START + timedelta(hours=1)
    assert out.shortfall_kw == pytest.approx(8.0, abs=0.05)
    with session_scope(engine) as s:
        rows = [r for r in s.exec(select(Setpoint).where(Setpoint.plan_id == out.plan_id))
                if r.interval_start.replace(tzinfo=UTC) < START + 2 * _HOUR]
        assert len(rows) == len(ids) * 4  # the call's last hour (its tail follows)
        assert all(r.setpoint_kw >= 15.0 - 0.05 for r in rows)  # no more curtailment


async def test_a_replan_stops_at_its_time_limit_and_the_first_plan_does_not(
        engine: Engine, tmp_path: Path) -> None:
    """``[scheduler] replan_time_limit_s`` bounds re-plans only (they hold up the control
    loop); the event's first plan runs to the tolerance. A limit far below one solve makes
    the re-plan OSQP's iterate at the limit, labelled best-effort."""
    event_id, ids = _event(engine, seed(engine).owner_id, "10.4.4.3", hours=1)
    settings = daemon_settings(tmp_path, str(engine.url))
    settings = settings.model_copy(update={"scheduler": settings.scheduler.model_copy(
        update={"replan_time_limit_s": 1e-7})})
    now = [START + timedelta(minutes=1)]
    planner = planner_at(engine, settings, now)
    try:
        first = await planner.plan(event_id, "initial")
        # the re-plan in a later interval has work to do: one load is gone, the other takes
        # its share (a re-plan equal to the active plan would not be written)
        now[0] = START + timedelta(minutes=16)
        again = await planner.plan(event_id, "device_offline", {ids[1]})
    finally:
        planner.close()
        planner.infra.db.close()
    assert again.changed and again.plan_id != first.plan_id
    with session_scope(engine) as s:
        p1 = s.get(DispatchPlan, first.plan_id)
        p2 = s.get(DispatchPlan, again.plan_id)
        assert p1 is not None and p2 is not None
        assert p1.detail["status"] == "solved"
        assert "time limit" in p2.detail["status"]
        assert any("best-effort" in w for w in p2.detail["warnings"])
        rows = s.exec(select(Setpoint).where(Setpoint.plan_id == again.plan_id)).all()
        assert rows and all(0.0 <= r.setpoint_kw <= 20.0 for r in rows)  # still within limits
