"""Devices come back from an event over its plan's tail, not all at once.

Issue 23: at the call's end every device was released at once and the fleet jumped 17% above
its baseline. Now the event is ``completed`` at the call's end (settlement may run) while its
plan stays active: the plan's setpoints for the tail (``[scheduler] event_tail_minutes``) are
written interval by interval, and the devices are released when the tail ends. The daemon runs
on a manual clock so the test can step over the call and the tail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from sim.clock import ManualClock
from tests.vpp.daemon.harness import (
    daemon_settings,
    enrol_and_poll,
    gateway_spec,
    get_json,
    port,
    seed,
    send_json,
    start_gateway,
    wait_for,
)
from vpp.db import session_scope
from vpp.models import DispatchPlan, GridEvent, Setpoint
from vpp.server import Daemon
from vpp.timeutil import floor_to_interval


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


async def test_the_tail_is_dispatched_and_the_devices_released_at_its_end(
        engine: Engine, tmp_path: Path) -> None:
    tokens = seed(engine)
    spec = gateway_spec(port())
    gw = await start_gateway(spec)
    clock = ManualClock()
    start = floor_to_interval(clock.now(), 15)
    clock.advance((start + timedelta(seconds=60) - clock.now()).total_seconds())
    settings = daemon_settings(tmp_path, str(engine.url))
    assert settings.scheduler.event_tail_minutes == 240  # the shipped default
    daemon = Daemon(settings, engine, port=0, clock=clock.now)
    base = await daemon.start()
    try:
        async with aiohttp.ClientSession() as c:
            await enrol_and_poll(c, base, tokens, spec, 2)
            call = {"external_id": "rt-tail", "event_type": "real_time",
                    "direction": "peak_shaving", "start": start.isoformat(),
                    "end": (start + timedelta(hours=1)).isoformat(), "requested_kw": 6.0}
            decision = await send_json(c, "POST", f"{base}/api/v1/grid/calls", tokens.grid,
                                       call, 201)
            assert decision["accepted"], decision
            event_id = decision["event_id"]

            async def discharging() -> bool:
                return all(d.setpoint_kw is not None and d.setpoint_kw < -1.0
                           for d in gw.devices.values())

            await wait_for(discharging, what="the batteries discharging in the call")

            def state() -> tuple[GridEvent, DispatchPlan, list[Setpoint]]:
                with session_scope(engine) as s:
                    ev = s.get(GridEvent, event_id)
                    [plan] = s.exec(select(DispatchPlan)).all()
                    rows = list(s.exec(select(Setpoint).order_by(col(Setpoint.interval_start))))
                    assert ev is not None
                    return ev, plan, rows

            end = start + timedelta(hours=1)
            tail_end = end + timedelta(minutes=240)

            # one minute into the tail: the call is over, the plan goes on
            clock.advance(60 * 60)

            async def tail_written() -> list[Setpoint] | None:
                got = [r for r in state()[2]
                       if _aware(r.interval_start) == end
                       and r.status in ("written", "clamped")]
                return got if len(got) == 2 else None

            written = await wait_for(tail_written, what="the tail's first setpoints written")
            # written on the daemon's clock (an hour ahead of the wall clock here), like every
            # other event time: the wall clock put these writes before the interval they hold
            assert all(r.written_at is not None and _aware(r.written_at) >= end for r in written)
            ev, plan, rows = state()
            assert ev.status in ("completed", "settled", "unsettled")  # settlement may run
            assert plan.status == "active"
            assert datetime.fromisoformat(plan.detail["tail_end"]) == tail_end
            assert len(plan.detail["tail_intervals"]) == 16
            assert len(rows) == 2 * (4 + 16)  # the call's 4 intervals and the 4 h tail
            by_id = {d["unit_id"]: d["id"] for d in await get_json(
                c, f"{base}/api/v1/devices", tokens.operator)}
            held = {r.device_id: r.setpoint_kw for r in written}
            for unit, dev in gw.devices.items():
                assert dev.setpoint_kw == pytest.approx(held[by_id[unit]], abs=0.01)

            # the tail's end: released, the plan completed, nothing left pending
            clock.advance(240 * 60)

            async def released() -> bool:
                return all(d.setpoint_kw is None for d in gw.devices.values())

            await wait_for(released, what="the devices released at the tail's end")
            ev, plan, rows = state()
            assert plan.status == "completed"
            assert not [r for r in rows if r.status == "pending"]
    finally:
        await daemon.stop()
        await gw.stop()
