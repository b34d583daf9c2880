"""A re-plan that changes nothing is not written, says so, and is not retried every minute.

Issue 23: the first event made 18 "shortfall" re-plans that each logged ``shortfall_kw 0.0``
and wrote the same setpoints again. The 0.0 was the *plan's* shortfall (what its devices
cannot cover on paper, zero as long as they are assumed to follow); the trigger was the
*measured* one (declared minus delivered). Both are now logged by name, the measured one is
kept in the plan's ``trigger``, and an unchanged re-plan writes nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from tests.vpp.daemon.harness import (
    accepted_call,
    call_now,
    daemon_settings,
    enrol_and_poll,
    gateway_spec,
    plan_at,
    planner_at,
    port,
    room_in_interval,
    seed,
    send_json,
    start_gateway,
    wait_for,
)
from vpp.db import session_scope
from vpp.models import AuditLog, DispatchPlan, Setpoint
from vpp.server import Daemon

START = datetime(2026, 7, 15, 10, 0, tzinfo=UTC)  # 18:00 in Zhuzhou
UNCHANGED = "re-plan changes nothing (same devices, same setpoints); not written"


async def test_a_replan_equal_to_the_active_plan_writes_nothing(engine: Engine,
                                                                tmp_path: Path) -> None:
    event_id, ids = accepted_call(engine, seed(engine).owner_id, "10.6.6.1", START, 1)
    now = [START]
    settings = daemon_settings(tmp_path, str(engine.url))
    first, again, moved = await plan_at(planner_at(engine, settings, now), event_id, now, START,
                                        [(1, "initial"), (2, "shortfall"), (3, "periodic")])
    assert first.changed and not again.changed and not moved.changed
    assert again.plan_id == moved.plan_id == first.plan_id
    with session_scope(engine) as s:
        assert len(s.exec(select(DispatchPlan)).all()) == 1
        assert len(s.exec(select(Setpoint)).all()) == len(ids) * (4 + 16)


async def test_a_failed_write_is_retried_by_the_replan(engine: Engine,
                                                       tmp_path: Path) -> None:
    """An unchanged re-plan is written when one of the active plan's writes failed (no answer,
    no read-back): its new rows are the retry."""
    event_id, ids = accepted_call(engine, seed(engine).owner_id, "10.6.6.2", START, 1)
    now = [START]
    settings = daemon_settings(tmp_path, str(engine.url))
    [first] = await plan_at(planner_at(engine, settings, now), event_id, now, START,
                            [(1, "initial")])
    with session_scope(engine) as s:
        row = s.exec(select(Setpoint).where(Setpoint.plan_id == first.plan_id,
                                            Setpoint.device_id == ids[0])
                     .order_by(col(Setpoint.interval_start))).first()
        assert row is not None
        row.status = "failed"
        s.add(row)
    [again] = await plan_at(planner_at(engine, settings, now), event_id, now, START,
                            [(2, "shortfall")])
    assert again.changed and again.plan_id != first.plan_id


async def test_shortfall_replans_report_the_measured_shortfall_and_back_off(
        sqlite_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two batteries acknowledge their setpoints but keep doing what they did (their read-back
    does not match, so they are not judged as overriding): delivery stays at zero. Each
    shortfall re-plan gives the same plan; none is written, each says so with the measured
    shortfall, and the wait between them doubles."""
    caplog.set_level(logging.INFO, logger="vpp.daemon.planning")
    engine = sqlite_engine
    tokens = seed(engine)
    spec = gateway_spec(port())
    gw = await start_gateway(spec)
    for dev in gw.devices.values():
        dev.faults.ignore_writes = True
    settings = daemon_settings(tmp_path, str(engine.url), min_replan_interval_s=0.5)
    daemon = Daemon(settings, engine, port=0)
    base = await daemon.start()
    try:
        async with aiohttp.ClientSession() as c:
            await enrol_and_poll(c, base, tokens, spec, 2)
            await room_in_interval(60)  # the re-plans below must stay in one interval
            decision = await send_json(c, "POST", f"{base}/api/v1/grid/calls", tokens.grid,
                                       call_now("rt-useless", 6.0), 201)
            declared = decision["declared_kw"]
            assert declared > 0

            async def tried() -> list[logging.LogRecord] | None:
                got = [r for r in caplog.records if r.getMessage() == UNCHANGED]
                return got if len(got) >= 3 else None

            records = await wait_for(tried, timeout_s=60, what="three unchanged re-plans")
            with session_scope(engine) as s:
                plans = s.exec(select(DispatchPlan)).all()
                writes = s.exec(select(AuditLog).where(
                    AuditLog.action == "setpoint_written")).all()
            assert len(plans) == 1 and plans[0].status == "active"
            assert len(writes) == 2  # the first plan's two setpoints, never re-sent
            for r in records:
                assert r.reason == "shortfall"  # type: ignore[attr-defined]
                assert r.planned_shortfall_kw == 0.0  # type: ignore[attr-defined]
                # what triggered it: nothing delivered of the declared capacity
                assert r.measured_shortfall_kw == pytest.approx(declared, abs=0.5)  # type: ignore[attr-defined]
            gaps = [b.created - a.created for a, b in zip(records, records[1:], strict=False)]
            # 0.5 s doubled after each unchanged re-plan: >= 1 s, then >= 2 s
            assert gaps[0] >= 0.9 and gaps[1] >= 1.8 and gaps[1] > 1.5 * gaps[0] - 0.3
    finally:
        await daemon.stop()
        await gw.stop()

