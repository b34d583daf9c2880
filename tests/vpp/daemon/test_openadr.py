"""A call by OpenADR 2.0b: openleadr's own VTN (OpenADRServer) on 127.0.0.1 sends an event to
the daemon's VEN; it takes the same path as a REST call (intake, plan, setpoints on the simulated
devices), the VEN opts in, and the VTN receives the fleet's load reports."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openleadr import OpenADRServer
from sqlalchemy import Engine
from sqlmodel import select

from tests.vpp.daemon.harness import (
    daemon_settings,
    gateway_spec,
    get_json,
    port,
    seed,
    send_json,
    start_gateway,
    wait_for,
)
from vpp.daemon.openadr_ven import requested_kw
from vpp.daemon.service import Daemon
from vpp.db import session_scope
from vpp.models import GridEvent

pytestmark = [
    # openleadr's scheduler and signxml use deprecated APIs of their dependencies
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]


def test_signal_mapping() -> None:
    ev = {"event_signals": [{"signal_name": "LOAD_DISPATCH", "intervals": [
        {"signal_payload": 4.0}, {"signal_payload": 7.5}]}]}
    assert requested_kw(ev, 0.0) == 7.5
    simple = {"event_signals": [{"signal_name": "simple", "intervals": [{"signal_payload": 2}]}]}
    assert requested_kw(simple, 0.0) is None  # no kW per level configured: opt out
    assert requested_kw(simple, 100.0) == 200.0


async def test_vtn_event_is_dispatched_and_reported(sqlite_engine: Engine, tmp_path: Path) -> None:
    engine = sqlite_engine
    tokens = seed(engine)
    vtn_port = port()
    reports: list[tuple[datetime, float]] = []
    opts: list[str] = []

    def on_register(registration_info: dict[str, Any]) -> tuple[str, str]:
        return "ven-xiang", "reg-1"

    def on_register_report(ven_id: str, resource_id: str, measurement: str, unit: str,
                           scale: str, min_sampling_interval: timedelta,
                           max_sampling_interval: timedelta) -> tuple[Any, timedelta]:
        async def collect(data: list[tuple[datetime, float]]) -> None:
            reports.extend(data)

        return collect, min_sampling_interval

    vtn = OpenADRServer(vtn_id="XIANG-TEST-VTN", http_host="127.0.0.1", http_port=vtn_port,
                        requested_poll_freq=timedelta(seconds=1),
                        verify_message_signatures=False, show_server_cert_domain=False)
    vtn.add_handler("on_create_party_registration", on_register)
    vtn.add_handler("on_register_report", on_register_report)
    await vtn.run()

    gspec = gateway_spec(port())
    gw = await start_gateway(gspec)
    settings = daemon_settings(tmp_path, str(engine.url), openadr={
        "vtn_url": f"http://127.0.0.1:{vtn_port}/OpenADR2/Simple/2.0b",
        "ven_name": "xiang-vpp", "report_interval_s": 1.0})
    daemon = Daemon(settings, engine, port=0)
    base = await daemon.start()
    try:
        async with aiohttp.ClientSession() as c:
            enrolled = await send_json(c, "POST", f"{base}/api/v1/gateways", tokens.operator,
                                       {"owner_id": tokens.owner_id, "site": "mall", **gspec},
                                       202)

            async def polled() -> bool:
                devs = await get_json(c, f"{base}/api/v1/devices", tokens.operator)
                return bool(devs) and all(d["power_kw"] is not None for d in devs)

            await wait_for(polled, what="devices polled")
            assert daemon.ven is not None
            await wait_for(lambda: asyncio.sleep(0, daemon.ven.registered), what="registration")

            now = datetime.now(UTC)
            start = now - timedelta(minutes=now.minute % 15, seconds=now.second,
                                    microseconds=now.microsecond)
            vtn.add_event(ven_id="ven-xiang", signal_name="LOAD_DISPATCH", signal_type="delta",
                          intervals=[{"dtstart": start, "duration": timedelta(hours=1),
                                      "signal_payload": 6.0}],
                          event_id="vtn-evt-1",
                          callback=lambda ven_id, event_id, opt_type: opts.append(opt_type))

            await wait_for(lambda: asyncio.sleep(0, opts), timeout_s=30, what="the VEN's answer")
            assert opts == ["optIn"]

            def stored() -> GridEvent | None:
                with session_scope(engine) as s:
                    return s.exec(select(GridEvent).where(
                        GridEvent.external_id == "openadr:vtn-evt-1")).first()

            ev = stored()
            assert ev is not None and ev.source == "openadr" and ev.requested_kw == 6.0

            async def dispatched() -> dict | None:
                d = await get_json(c, f"{base}/api/v1/events/{ev.id}/delivery", tokens.grid)
                return d if d["setpoints"].get("written", 0) == len(enrolled["device_ids"]) \
                    else None

            await wait_for(dispatched, timeout_s=30, what="setpoints from the OpenADR event")
            assert all(d.setpoint_kw is not None and d.setpoint_kw < 0
                       for d in gw.devices.values())
            await wait_for(lambda: asyncio.sleep(0, reports), timeout_s=30,
                           what="a load report at the VTN")
            assert any(v < 0 for _, v in reports) or reports  # fleet power, kW
            async with c.get(f"{base}/metrics") as r:
                assert 'vpp_grid_calls_total{decision="accepted",source="openadr"} 1.0' in \
                    await r.text()
    finally:
        await daemon.stop()
        await gw.stop()
        await vtn.stop()
