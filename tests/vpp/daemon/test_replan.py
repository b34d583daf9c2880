"""Re-dispatch: a gateway drops out in the middle of an event; its devices go offline, the
daemon re-plans without them, and the remaining devices take over their share."""

from __future__ import annotations

from pathlib import Path

import aiohttp
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
from vpp.models import DispatchPlan
from vpp.server import Daemon


async def test_gateway_lost_mid_event_others_make_up(engine: Engine,
                                                     tmp_path: Path) -> None:
    tokens = seed(engine)
    specs = [gateway_spec(port()), gateway_spec(port())]
    gws = [await start_gateway(s) for s in specs]
    settings = daemon_settings(tmp_path, str(engine.url), min_replan_interval_s=0.5)
    daemon = Daemon(settings, engine, port=0)
    base = await daemon.start()
    try:
        async with aiohttp.ClientSession() as c:
            for i, spec in enumerate(specs):
                await send_json(c, "POST", f"{base}/api/v1/gateways", tokens.owner,
                                {"site": f"site-{i}", **spec}, 202)

            async def polled() -> bool:
                devs = await get_json(c, f"{base}/api/v1/devices", tokens.operator)
                return len(devs) == 4 and all(d["power_kw"] is not None for d in devs)

            await wait_for(polled, what="four devices polled")
            decision = await send_json(c, "POST", f"{base}/api/v1/grid/calls", tokens.grid,
                                       call_now("rt-replan", 10.0), 201)
            assert decision["declared_kw"] == 8.0  # 40% of 4 x 5 kW: no history yet

            async def shared() -> bool:
                return all(d.setpoint_kw is not None and d.setpoint_kw < -1.0
                           for g in gws for d in g.devices.values())

            await wait_for(shared, what="all four batteries discharging")
            before: dict[int, float] = {}
            for u, d in gws[0].devices.items():
                assert d.setpoint_kw is not None, "shared() saw every battery discharging"
                before[u] = d.setpoint_kw

            await gws[1].stop()  # the second gateway is gone

            def plans() -> list[DispatchPlan]:
                with session_scope(engine) as s:
                    return list(s.exec(select(DispatchPlan).order_by(col(DispatchPlan.id))))

            async def replanned() -> list[DispatchPlan] | None:
                ps = plans()
                return ps if len(ps) >= 2 else None

            ps = await wait_for(replanned, timeout_s=30, what="a re-plan")
            assert ps[-1].detail["reason"] == "device_offline"
            assert len(ps[-1].detail["device_ids"]) == 2
            assert ps[0].status == "superseded"

            async def took_over() -> bool:
                return all(d.setpoint_kw is not None and d.setpoint_kw < before[u] - 1.0
                           for u, d in gws[0].devices.items())

            await wait_for(took_over, timeout_s=30, what="the remaining batteries to take over")
            devs = await get_json(c, f"{base}/api/v1/devices", tokens.operator)
            assert sorted(d["status"] for d in devs) == ["active", "active", "offline", "offline"]
    finally:
        await daemon.stop()
        await gws[0].stop()
