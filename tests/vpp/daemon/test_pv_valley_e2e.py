"""A PV site curtailed for a valley-filling call through the real daemon, over Modbus, settled.

The fleet: two batteries (huawei-luna2000) and a rooftop PV inverter (SunSpec models 1, 103,
121, 123) behind one simulated gateway (pymodbus on 127.0.0.1) whose sky is the site's pvlib
clear sky at the daemon's (manual) clock, late morning in Zhuzhou. The grid asks the fleet to
raise its load; the daemon bids the batteries' no-history rise, plans the call (curtailing PV
raises the site's net load, and costs less than charging the batteries), writes the PV's output
ceiling through model 123 and reads it back, meters the rise, lifts the ceiling after the call,
and settles the rise above the baseline. SQLite and PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from sim.clock import ManualClock
from sim.fleet import gateway_from_spec
from tests.vpp.daemon.harness import (
    daemon_settings,
    enrol_and_poll,
    gateway_spec,
    get_json,
    port,
    seed,
    send_json,
    wait_for,
)
from vpp.config import GatewaySpec
from vpp.db import session_scope
from vpp.models import Device, GridEvent, Setpoint, Settlement
from vpp.server import Daemon
from vpp.timeutil import floor_to_interval

ROOF: dict[str, Any] = {
    "name": "roof-1", "kind": "pv_inverter", "unit_id": 3, "profile": "sunspec",
    "rated_power_kw": 10.0, "min_setpoint_kw": -10.0, "max_setpoint_kw": 0.0,
    "params": {"dc_capacity_kwp": 11.0}}


async def test_a_valley_call_curtails_a_pv_roof_through_the_daemon(
        engine: Engine, tmp_path: Path) -> None:
    tokens = seed(engine)
    spec = gateway_spec(port())
    spec["devices"].append(ROOF)
    # 11:00 in Zhuzhou today (UTC+8): the roof generates under a clear sky
    clock = ManualClock(datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0))
    gw = gateway_from_spec(GatewaySpec.model_validate(spec), clock)
    await gw.start()
    roof = gw.devices[3]
    start = floor_to_interval(clock.now(), 15)
    clock.advance((start + timedelta(seconds=60) - clock.now()).total_seconds())
    daemon = Daemon(daemon_settings(tmp_path, str(engine.url)), engine, port=0,
                    clock=clock.now)
    base = await daemon.start()
    try:
        async with aiohttp.ClientSession() as c:
            await enrol_and_poll(c, base, tokens, spec, 3)
            sunny_kw = -roof.physics.power_kw
            assert sunny_kw > 3.0
            with session_scope(engine) as s:
                pv_id = next(d.id for d in s.exec(select(Device)) if d.kind == "pv_inverter")
            end = start + timedelta(hours=1)
            call = {"external_id": "rt-valley-pv", "event_type": "real_time",
                    "direction": "valley_filling", "start": start.isoformat(),
                    "end": end.isoformat(), "requested_kw": 6.0}
            decision = await send_json(c, "POST", f"{base}/api/v1/grid/calls", tokens.grid,
                                       call, 201)
            assert decision["accepted"], decision
            declared = decision["declared_kw"]
            event_id = decision["event_id"]

            # planned and dispatched: the roof holds output back under the ceiling written
            async def curtailed() -> Setpoint | None:
                # a ceiling at least 0.5 kW below what the sky gives
                if roof.setpoint_kw is None or roof.setpoint_kw < -sunny_kw + 0.5:
                    return None
                with session_scope(engine) as s:
                    rows = [r for r in s.exec(select(Setpoint).where(
                        Setpoint.device_id == pv_id)) if r.status == "written"]
                    for r in rows:
                        s.expunge(r)
                return rows[0] if rows else None

            row = await wait_for(curtailed, what="the roof curtailed for the valley")
            assert -sunny_kw + 0.5 <= row.setpoint_kw < 0.0  # minus the ceiling, within limits
            assert row.setpoint_kw == pytest.approx(roof.setpoint_kw, abs=0.01)  # as read back
            assert roof.values["123.WMaxLim_Ena"] == 1.0
            assert roof.setpoint_kw is not None
            with session_scope(engine) as s:
                ev = s.get(GridEvent, event_id)
                assert ev is not None
                roof_base = ev.detail["baseline_kw"][str(pv_id)]
                methods = ev.detail.get("baseline_methods", {})
            # no history: its reading's clear-sky index over the call, following the late
            # morning sun up (more output, a lower load), not its last reading held flat
            assert roof_base[-1] < roof_base[0] < 0
            assert methods.get("pv_clear_sky_index") == 1
            clock.advance(30)
            assert -roof.physics.power_kw < sunny_kw - 0.5  # the site's net load rose

            for k in range(1, 4):  # through the call, metered in every interval
                clock.advance(15 * 60)

                async def metered(k: int = k) -> bool:
                    d = await get_json(c, f"{base}/api/v1/events/{event_id}/delivery",
                                       tokens.operator)
                    return d["intervals"][k]["metered_kw"] is not None

                await wait_for(metered, what=f"interval {k} metered")
            clock.advance(15 * 60)  # past the end: the event completes and is settled

            def settled() -> Settlement | None:
                with session_scope(engine) as s:
                    ev = s.get(GridEvent, event_id)
                    assert ev is not None and ev.status != "unsettled", ev and ev.detail
                    st = s.exec(select(Settlement).where(
                        Settlement.event_id == event_id)).first()
                    if st is not None:
                        s.expunge(st)
                    return st

            async def settled_async() -> Settlement | None:
                return settled()

            st = await wait_for(settled_async, timeout_s=30, what="the settlement")
            assert st.detail["result"]["direction"] == "valley_filling"
            assert st.metered_kwh > st.baseline_kwh and declared > 0

            # after the call the roof has no ceiling: released, or its lowest setpoint
            async def free() -> bool:
                sp = roof.setpoint_kw
                return sp is None or sp <= -9.99

            await wait_for(free, what="the roof's ceiling lifted")
    finally:
        await daemon.stop()
        await gw.stop()

