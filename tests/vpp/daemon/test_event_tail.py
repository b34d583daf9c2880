"""An event's plan runs ``[scheduler] event_tail_minutes`` past the call, so that the rebound,
the industrial make-up and the batteries' recharge it implies fit in the plan. Until
2026-11-26 the daemon planned one hour past the call (the season simulator four): a load that
must make up its lost production afterwards could shed only what one hour of headroom repays."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.vpp.daemon.harness import (
    accepted_call,
    daemon_settings,
    plan_at,
    planner_at,
    seed,
)
from vpp.config import Settings
from vpp.db import session_scope
from vpp.models import GridEvent

START = datetime(2026, 7, 15, 10, 0, tzinfo=UTC)  # 18:00 in Zhuzhou


def _event(engine: Engine, host: str, requested_kw: float, *, fixed: bool) -> int:
    """Two 20 kW loads (15 kW each now) that make up all they curtail within 4 h, and an
    accepted 2 h call bid at ``requested_kw``; ``fixed``: baselines stored with the event (the
    call's intervals only, as before the tail was stored)."""
    return accepted_call(engine, seed(engine).owner_id, host, START, 2, requested_kw,
                         fixed=fixed, max_curtail_minutes=120, makeup_fraction=1.0,
                         makeup_hours=4.0)[0]


def _with_tail(settings: Settings, minutes: int) -> Settings:
    return settings.model_copy(update={"scheduler": settings.scheduler.model_copy(
        update={"event_tail_minutes": minutes})})


@pytest.mark.parametrize(("tail_minutes", "short_kw"), [(240, 0.0), (60, 3.0)])
async def test_the_makeup_after_a_call_fits_in_the_plans_tail(
        engine: Engine, tmp_path: Path, tail_minutes: int, short_kw: float) -> None:
    """8 kW for 2 h is 16 kWh to make up; the loads have 2 x 5 kW of headroom above their
    baseline. Four hours repay it; one hour repays 10 kWh, so only 5 kW can be shed."""
    event_id = _event(engine, f"10.5.5.{tail_minutes // 60}", 8.0, fixed=True)
    settings = _with_tail(daemon_settings(tmp_path, str(engine.url)), tail_minutes)
    now = [START]
    [out] = await plan_at(planner_at(engine, settings, now), event_id, now, START,
                          [(1, "initial")])
    assert out.shortfall_kw == pytest.approx(short_kw, abs=0.05)


async def test_the_tail_baseline_is_fixed_with_the_events(engine: Engine,
                                                          tmp_path: Path) -> None:
    event_id = _event(engine, "10.5.5.9", 8.0, fixed=False)
    settings = daemon_settings(tmp_path, str(engine.url))
    assert settings.scheduler.tail_intervals(15) == 16  # the default: 4 h
    now = [START]
    [out] = await plan_at(planner_at(engine, settings, now), event_id, now, START,
                          [(1, "initial")])
    assert out.shortfall_kw < 0.05
    with session_scope(engine) as s:
        ev = s.get(GridEvent, event_id)
        assert ev is not None
        base, tail = ev.detail["baseline_kw"], ev.detail["tail_baseline_kw"]
        assert base.keys() == tail.keys() and len(base) == 2
        assert all(len(v) == 8 for v in base.values())  # the call: what settlement uses
        assert all(len(v) == 16 for v in tail.values())
