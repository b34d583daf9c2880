"""After a call, buildings come back over the plan's tail within the configured rebound share
of their baseline, instead of all drawing their full need at once.

Issue 23: on release the fleet jumped 17% above its baseline. Four simulated 100 kW VRF
buildings shed through a one-hour call and end it warmer than their set temperature; released,
each would draw up to its rating to cool back down. With the tail dispatched, the plan's caps
(``[scheduler] rebound_max_pct`` of the fleet baseline, 10%) hold them there. The daemon and
the gateway share one clock running 120x: the call and half an hour of tail take ~45 s."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import Engine
from sqlmodel import select

from sim.clock import SimClock
from sim.fleet import gateway_from_spec
from sim.physics.building import BuildingModel
from sim.server import SimGateway
from tests.vpp.daemon.harness import daemon_settings, enrol_and_poll, port, seed, send_json
from vpp.config import GatewaySpec
from vpp.db import session_scope
from vpp.models import DispatchPlan, GridEvent
from vpp.server import Daemon
from vpp.timeutil import floor_to_interval


def _building(unit: int) -> dict[str, Any]:
    return {"name": f"building-{unit}", "kind": "commercial_building", "unit_id": unit,
            "profile": "coolmaster-vrf", "rated_power_kw": 100.0, "min_setpoint_kw": 0.0,
            "max_setpoint_kw": 100.0,
            "params": {"max_shed_kw": 30.0, "thermal_resistance_c_per_kw": 0.2}}


def _warmest_c(gw: SimGateway) -> float:
    """The warmest building's indoor temperature now (degC): every device here is a building."""
    temps_c: list[float] = []
    for d in gw.devices.values():
        assert isinstance(d.physics, BuildingModel), d.physics
        temps_c.append(d.physics.indoor_temp_c)
    return max(temps_c)


async def test_buildings_come_back_within_the_rebound_cap(sqlite_engine: Engine,
                                                          tmp_path: Path) -> None:
    engine = sqlite_engine
    tokens = seed(engine)
    clock = SimClock(accel=120.0, start=datetime.fromisoformat("2026-07-15T13:40:00+08:00"))
    spec = {"host": "127.0.0.1", "port": port(), "devices": [_building(u) for u in range(1, 5)]}
    gw = gateway_from_spec(GatewaySpec.model_validate(spec), clock)
    await gw.start()
    settings = daemon_settings(tmp_path, str(engine.url))
    cap_pct = settings.scheduler.rebound_max_pct
    daemon = Daemon(settings, engine, port=0, clock=clock.now)
    base = await daemon.start()
    try:
        async with aiohttp.ClientSession() as c:
            await enrol_and_poll(c, base, tokens, spec, 4)
            start = floor_to_interval(clock.now(), 15) + timedelta(minutes=15)
            end = start + timedelta(hours=1)
            while clock.now() < start - timedelta(minutes=2):
                await asyncio.sleep(0.1)
            decision = await send_json(c, "POST", f"{base}/api/v1/grid/calls", tokens.grid, {
                "external_id": "rt-rebound", "event_type": "real_time",
                "direction": "peak_shaving", "start": start.isoformat(),
                "end": end.isoformat(), "requested_kw": 60.0}, 201)
            assert decision["accepted"], decision
            samples: list[tuple[datetime, float, float]] = []  # (time, kW, warmest degC)
            while clock.now() < end + timedelta(minutes=30):
                samples.append((clock.now(), sum(d.physics.power_kw for d in gw.devices.values()),
                                _warmest_c(gw)))
                await asyncio.sleep(0.25)
            with session_scope(engine) as s:
                [plan] = s.exec(select(DispatchPlan)).all()
                baseline_kw = plan.detail["baseline_kw"][-1]
                ev = s.get(GridEvent, decision["event_id"])
                assert ev is not None  # the tail's baselines, fixed with the call's
                tail_baseline_kw = [sum(v[k] for v in ev.detail["tail_baseline_kw"].values())
                                    for k in (0, 1)]
    finally:
        await daemon.stop()
        await gw.stop()
    late_call = [kw for t, kw, _ in samples if end - timedelta(minutes=30) <= t < end]
    assert late_call and max(late_call) <= baseline_kw - 0.9 * decision["declared_kw"]
    warmest = max(c for t, _, c in samples if t < end)
    assert warmest > 25.0  # ended the call warmer than its 24.5 degC set point
    # the tail's first half hour: back up, but within the cap (two minutes, about one control
    # step at 120x, for the tail's first setpoints to land)
    tail = [kw for t, kw, _ in samples if end + timedelta(minutes=2) <= t]
    assert len(tail) > 10
    ceiling = max(tail_baseline_kw) * (1 + cap_pct / 100)
    assert max(tail) <= ceiling + 1.0, (max(tail), ceiling)
    assert max(tail) > max(late_call) + 10.0  # they did come back
