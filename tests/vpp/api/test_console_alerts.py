"""The console's alert socket: only an operator token, sent as the first message, is served;
the whole list arrives at once and again when it changes (a gateway going offline, an open
event's plan short of its offer, a device excluded for leaving its setpoint)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import update

from tests.vpp.api.conftest import Api
from tests.vpp.dashboard.city import add_city_fleet
from vpp.db import session_scope
from vpp.models import Device, DispatchPlan, GridEvent, table_of


async def _next(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=15)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    body: dict[str, Any] = json.loads(msg.data)
    return body


async def _refused(api: Api, first: str | None) -> tuple[int | None, str]:
    async with api.http.ws_connect(api.url + "/dashboard/alerts") as ws:
        if first is not None:
            await ws.send_str(first)
        msg = await ws.receive(timeout=15)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        return ws.close_code, str(msg.extra)


async def test_only_operators(api: Api) -> None:
    assert (await _refused(api, "hello"))[0] == 4400
    assert (await _refused(api, json.dumps({"token": "vpp_nope"})))[0] == 4401
    code, why = await _refused(api, json.dumps({"token": api.tokens.owner}))
    assert code == 4403 and "operator" in why


async def test_alerts_are_pushed_when_they_change(api_both: Api) -> None:
    api = api_both  # SQLite and PostgreSQL
    add_city_fleet(api.engine, 50)  # 10 gateways of 5, none wholly offline
    d = table_of(Device)
    async with api.http.ws_connect(api.url + "/dashboard/alerts") as ws:
        await ws.send_str(json.dumps({"token": api.tokens.operator}))
        assert (await _next(ws))["alerts"] == []

        with api.engine.begin() as c:  # every device of the first gateway goes offline
            gw = c.execute(d.select().limit(1)).first().gateway_id  # type: ignore[union-attr]
            c.execute(update(d).where(d.c.gateway_id == gw).values(status="offline"))
        got = (await _next(ws))["alerts"]
        assert [(a["kind"], a["subject"]) for a in got] == [("gateway_offline", f"gateway:{gw}")]
        assert "all 5 devices offline" in got[0]["message"]

        now = datetime.now(UTC)
        with session_scope(api.engine) as s:  # an active event whose plan falls 3.5 kW short
            ev = GridEvent(external_id="rt-short", source="rest", event_type="real_time",
                           direction="peak_shaving", programme="test-rt", start=now,
                           end=now + timedelta(hours=1), requested_kw=50.0, status="active",
                           detail={"excluded_devices": {"7": {
                               "reason": "overrode", "at": now.isoformat(), "kind": "battery",
                               "setpoint_kw": 0.0, "limit_kw": 0.0, "measured_kw": 4.2,
                               "tolerance_kw": 0.5, "reading_at": now.isoformat()}}})
            s.add(ev)
            s.flush()
            s.add(DispatchPlan(event_id=ev.id, horizon_start=now, interval_minutes=15,
                               status="optimal", shortfall_kw=3.5))
        got = (await _next(ws))["alerts"]
        kinds = {a["kind"]: a for a in got}
        assert set(kinds) == {"gateway_offline", "event_shortfall", "device_out_of_limits"}
        assert "short by 3.5 kW" in kinds["event_shortfall"]["message"]
        assert kinds["device_out_of_limits"]["subject"] == "device:7"
