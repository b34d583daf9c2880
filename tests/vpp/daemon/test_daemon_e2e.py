"""The real daemon on a free port, simulated Modbus gateways on 127.0.0.1, SQLite and
PostgreSQL: an owner enrols a gateway through the API (home batteries behind site meters, read
into telemetry), the grid calls by REST, and the setpoints reach the simulated devices; delivery
shows in the API and in the metrics."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from tests.vpp.daemon.harness import (
    call_now,
    daemon_settings,
    gateway_spec,
    get_json,
    port,
    seed,
    send_json,
    start_gateway,
    wait_for,
)
from vpp.db import session_scope
from vpp.models import AuditLog, Setpoint, TelemetryReading
from vpp.server import Daemon


async def test_enrol_call_dispatch_deliver(engine: Engine, tmp_path: Path) -> None:
    tokens = seed(engine)
    gport = port()
    spec = gateway_spec(gport)
    gw = await start_gateway(spec)
    daemon = Daemon(daemon_settings(tmp_path, str(engine.url)), engine, port=0)
    base = await daemon.start()
    try:
        async with aiohttp.ClientSession() as c:
            # 1. the owner enrols the gateway; the probe runs in the background
            enrolled = await send_json(c, "POST", f"{base}/api/v1/gateways", tokens.owner,
                                       {"site": "mall", **spec}, 202)
            assert enrolled["owner_id"] == tokens.owner_id

            async def probed() -> dict | None:
                g = await get_json(c, f"{base}/api/v1/gateways/{enrolled['id']}", tokens.owner)
                return g if g["probe"]["state"] in ("done", "failed") else None

            g = await wait_for(probed, what="the probe")
            assert g["probe"]["state"] == "done" and g["enrolment_state"] == "active"
            assert g["probe"]["devices"] == {"1": "active", "2": "active"}

            async def polled() -> list | None:
                devs = await get_json(c, f"{base}/api/v1/devices", tokens.owner)
                return devs if all(d["power_kw"] is not None for d in devs) else None

            devices = await wait_for(polled, what="the first poll")
            assert {d["status"] for d in devices} == {"active"}
            # each home battery reads its site meter (Huawei 37113, + export, mapped to + import):
            # its home's 2.5 kW (sim.physics.battery.HOST_LOAD_SHARE of 5 kW) plus its own power
            with session_scope(engine) as s:
                sited = s.exec(select(TelemetryReading).where(
                    col(TelemetryReading.site_import_kw).is_not(None))).all()
            assert {r.device_id for r in sited} == {d["id"] for d in devices}
            assert all(r.site_import_kw == pytest.approx(2.5 + (r.power_kw or 0.0), abs=0.01)
                       for r in sited)

            # 2. the grid calls by REST and gets the declared capacity back
            decision = await send_json(c, "POST", f"{base}/api/v1/grid/calls", tokens.grid,
                                       call_now("rt-e2e-1", 6.0), 201)
            assert decision["accepted"] and 0 < decision["declared_kw"] <= 6.0
            event_id = decision["event_id"]

            # 3. the setpoints reach the simulated devices
            async def dispatched() -> dict | None:
                d = await get_json(c, f"{base}/api/v1/events/{event_id}/delivery", tokens.grid)
                return d if d["setpoints"].get("written", 0) == 2 else None

            await wait_for(dispatched, what="setpoints written")
            with session_scope(engine) as s:
                written = {r.device_id: r.setpoint_kw for r in s.exec(
                    select(Setpoint).where(Setpoint.status == "written"))}
                audited = s.exec(select(AuditLog).where(
                    AuditLog.action == "setpoint_written")).all()
            assert len(audited) == 2
            by_unit = {d["unit_id"]: d["id"] for d in devices}
            for unit, dev in gw.devices.items():
                assert dev.setpoint_kw == pytest.approx(written[by_unit[unit]], abs=0.01)
            assert sum(written.values()) < 0  # the batteries discharge to shave the peak

            # 4. delivery in the API (from telemetry) and in the metrics
            async def delivering() -> dict | None:
                st = await get_json(c, f"{base}/api/v1/fleet/status", tokens.operator)
                return st if st["delivered_kw"] and st["delivered_kw"] > 0.5 * decision[
                    "declared_kw"] else None

            status = await wait_for(delivering, what="delivery")
            assert status["active_event"]["id"] == event_id
            assert status["series"] and status["series"][-1]["target_kw"] is not None
            delivery = await get_json(c, f"{base}/api/v1/events/{event_id}/delivery",
                                      tokens.operator)
            assert delivery["status"] == "active"
            assert delivery["intervals"][0]["metered_kw"] is not None
            async with c.get(f"{base}/metrics") as r:
                text = await r.text()
            assert f'vpp_event_requested_kw{{event_id="{event_id}"}} 6.0' in text
            assert 'vpp_setpoints_written_total{outcome="written"} 2.0' in text
            assert 'vpp_grid_calls_total{decision="accepted",source="rest"} 1.0' in text
            assert "vpp_devices_online 2.0" in text
            assert f'vpp_event_delivered_kw{{event_id="{event_id}"}}' in text

            # 5. the owner sees the event; the grid cancels it; devices are released
            events = await get_json(c, f"{base}/api/v1/events", tokens.owner)
            assert [e["id"] for e in events] == [event_id]
            await send_json(c, "POST", f"{base}/api/v1/events/{event_id}/cancel", tokens.grid,
                            None, 200)

            async def released() -> bool:
                return all(d.setpoint_kw is None or d.setpoint_kw == 0
                           for d in gw.devices.values())

            await wait_for(released, what="devices released")
    finally:
        await daemon.stop()
        await gw.stop()
