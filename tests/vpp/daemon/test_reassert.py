"""A device whose watchdog fell back (heartbeats came late, or it restarted) did not override
its setpoint: its registers no longer hold the setpoint, where an owner's override leaves them
as written. The daemon writes the setpoint again instead of taking the device out of the event,
at most ``[daemon.control] reassert_max`` times a device and event (first run, PostgreSQL: 18
PLCs whose watchdogs expired were judged overrides and the event fell short).

Real parts: the daemon, a simulated pymodbus gateway on loopback, SQLite and PostgreSQL; the
watchdog's expiry is the simulated PLC's own fall-back (:meth:`sim.device.SimDevice.fall_back`),
its registers released as a real PLC releases them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import Engine

from sim.clock import SimClock
from sim.fleet import gateway_from_spec
from sim.physics.industrial import IndustrialModel
from tests.vpp.daemon.harness import (
    daemon_settings,
    enrol_and_poll,
    get_json,
    port,
    seed,
    send_json,
    wait_for,
)
from vpp.config import GatewaySpec
from vpp.server import Daemon

T0 = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)  # 14:00 in Zhuzhou


def _spec(gport: int) -> dict[str, Any]:
    plcs = [{"name": f"plc-{u}", "kind": "industrial_load", "unit_id": u,
             "profile": "industrial-plc", "rated_power_kw": 20.0, "min_setpoint_kw": 0.0,
             "max_setpoint_kw": 20.0, "params": {"max_curtail_kw": 10.0}} for u in (1, 2, 3)]
    return {"host": "127.0.0.1", "port": gport, "devices": plcs}


def _call(now: datetime) -> dict[str, Any]:
    start = now - timedelta(minutes=now.minute % 15, seconds=now.second,
                            microseconds=now.microsecond)
    return {"external_id": "rt-watchdog", "event_type": "real_time",
            "direction": "peak_shaving", "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(), "requested_kw": 12.0}


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


@pytest.mark.parametrize("reassert_max", [3, 0])
async def test_a_device_that_fell_back_gets_its_setpoint_again(
        engine: Engine, tmp_path: Path, reassert_max: int) -> None:
    tokens = seed(engine)
    clock = SimClock(accel=20.0, start=T0)
    spec = _spec(port())
    gw = gateway_from_spec(GatewaySpec.model_validate(spec), clock)
    await gw.start()
    settings = daemon_settings(tmp_path, str(engine.url),
                               control={"reassert_max": reassert_max})
    daemon = Daemon(settings, engine, port=0, clock=clock.now)
    base = await daemon.start()
    try:
        async with aiohttp.ClientSession() as c:
            devs = await enrol_and_poll(c, base, tokens, spec, 3, site="plant")
            by_unit = {d["unit_id"]: d["id"] for d in devs}
            decision = await send_json(c, "POST", f"{base}/api/v1/grid/calls", tokens.grid,
                                       _call(clock.now()), 201)
            assert decision["accepted"], decision
            event_id = decision["event_id"]
            plc = gw.devices[1]
            assert isinstance(plc.physics, IndustrialModel)
            run_kw = plc.physics.run_kw

            async def capped() -> float | None:
                sp = plc.setpoint_kw
                return sp if sp is not None and sp < run_kw - 1.0 else None

            setpoint = await wait_for(capped, what="PLC 1 capped")
            t_capped = clock.now()

            async def responded() -> bool:  # a reading above the cap is judged after 60 s
                return (clock.now() - t_capped).total_seconds() >= 90.0

            await wait_for(responded, what="the PLC's response time")
            plc.fall_back()  # its watchdog expired: cap released, the process runs again
            assert plc.setpoint_kw is None and plc.physics.power_kw > setpoint + 2.0

            if reassert_max:
                async def again() -> float | None:
                    return plc.setpoint_kw

                assert await wait_for(again, timeout_s=30,
                                      what="the cap written again") == pytest.approx(setpoint)
                async with c.get(f"{base}/metrics") as r:
                    assert _metric(await r.text(), "vpp_setpoints_reasserted_total") >= 1
                ev = await get_json(c, f"{base}/api/v1/events/{event_id}", tokens.operator)
                assert ev["excluded_devices"] == []
            else:  # no re-writes allowed: the device leaves the event as an override would
                async def excluded() -> list | None:
                    ev = await get_json(c, f"{base}/api/v1/events/{event_id}",
                                        tokens.operator)
                    return ev["excluded_devices"] or None

                [out] = await wait_for(excluded, timeout_s=30, what="PLC 1 taken out")
                assert out["device_id"] == by_unit[1]
                assert plc.setpoint_kw is None
    finally:
        await daemon.stop()
        await gw.stop()

