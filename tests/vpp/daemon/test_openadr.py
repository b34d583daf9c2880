"""Calls by OpenADR 2.0b: openleadr's own VTN (OpenADRServer) on 127.0.0.1 sends events to
the daemon's VEN; they take the same path as a REST call (intake, plan, setpoints on the
simulated devices), and the VTN receives the fleet's load reports. An event off the 15-minute
grid is taken over the market intervals that cover it; a SIMPLE level asks for what the fleet
can dependably offer; a LOAD_DISPATCH setpoint is a load level (the reduction is the fleet's load
minus it); what the VEN cannot act on is opted out of with the reason."""

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
from vpp.daemon.openadr_signals import NotActionable, Request, market_window, read_request
from vpp.daemon.openadr_ven import event_type_for
from vpp.db import session_scope
from vpp.models import GridEvent
from vpp.server import Daemon


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


pytestmark = [
    # openleadr's scheduler and signxml use deprecated APIs of their dependencies
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]


def _dispatch(kind: str, *payloads: float, name: str = "LOAD_DISPATCH",
              measurement: dict | None = None) -> dict:
    sig = {"signal_name": name, "signal_type": kind,
           "intervals": [{"signal_payload": p} for p in payloads]}
    return {"event_signals": [{**sig, **({"measurement": measurement} if measurement else {})}]}


def _read(event: dict, load: float | None = 900.0, dependable: float = 40.0,
          per_level: float = 0.0) -> Request:
    return read_request(event, fleet_load_kw=load, dependable_kw=dependable,
                        simple_level_kw=per_level)


def test_a_delta_is_the_change_asked_for() -> None:
    r = _read(_dispatch("delta", -4.0, -7.5))
    assert (r.requested_kw, r.direction) == (7.5, "peak_shaving")
    r = _read(_dispatch("delta", 3.0))  # an increase: valley filling
    assert (r.requested_kw, r.direction) == (3.0, "valley_filling")
    with pytest.raises(NotActionable, match="mixes reductions and increases"):
        _read(_dispatch("delta", -2.0, 2.0))
    mw = {"name": "power_real", "scale": "M", "unit": "W"}
    assert _read(_dispatch("delta", -1.5, measurement=mw)).requested_kw == 1500.0
    with pytest.raises(NotActionable, match="in energy_real, not real power"):
        _read(_dispatch("delta", -1.0, measurement={"name": "energy_real", "scale": "k"}))


def test_a_setpoint_is_a_load_level_not_a_reduction() -> None:
    # hold the fleet at 600 kW while it draws 900: a reduction of 300 kW (not 600)
    r = _read(_dispatch("setpoint", 700.0, 600.0))
    assert (r.requested_kw, r.direction) == (300.0, "peak_shaving")
    with pytest.raises(NotActionable, match="at or above the fleet's load of 900 kW"):
        _read(_dispatch("setpoint", 1000.0))
    with pytest.raises(NotActionable, match="load is not known yet"):
        _read(_dispatch("setpoint", 600.0), load=None)
    with pytest.raises(NotActionable, match="dispatches load by 'setpoint' or 'delta'"):
        _read(_dispatch("level", 2.0))


def test_simple_levels_ask_for_what_the_fleet_can_dependably_offer() -> None:
    simple = _dispatch("level", 0, 2, name="SIMPLE")
    r = _read(simple)  # no simple_level_kw: the fleet's dependable capacity
    assert (r.requested_kw, r.direction) == (40.0, "peak_shaving")
    assert _read(simple, per_level=100.0).requested_kw == 200.0  # the explicit mapping
    with pytest.raises(NotActionable, match="level 0 .normal operation. asks for nothing"):
        _read(_dispatch("level", 0, name="SIMPLE"))
    with pytest.raises(NotActionable, match="no dependable capacity"):
        _read(simple, dependable=0.0)
    with pytest.raises(NotActionable, match="the event has: LOAD_CONTROL/x-loadControlCapacity"):
        _read(_dispatch("x-loadControlCapacity", 0.5, name="LOAD_CONTROL"))


def test_an_unaligned_window_is_covered_by_market_intervals() -> None:
    sh = "Asia/Shanghai"
    start = datetime(2026, 7, 15, 2, 7, 30, tzinfo=UTC)  # 10:07:30 in Shanghai
    a, b = market_window(start, start + timedelta(hours=1), 15, sh)
    assert (a, b) == (datetime(2026, 7, 15, 2, 0, tzinfo=UTC),
                      datetime(2026, 7, 15, 3, 15, tzinfo=UTC))
    aligned = datetime(2026, 7, 15, 2, 15, tzinfo=UTC)
    assert market_window(aligned, aligned + timedelta(hours=1), 15, sh) == \
        (aligned, aligned + timedelta(hours=1))


def test_the_product_is_chosen_by_the_events_notice_on_the_shipped_programme() -> None:
    from bidding.programme import load_programme
    from tests.conftest import REPO_ROOT

    p = load_programme("hunan-2026", REPO_ROOT / "config/programmes",
                       datetime(2026, 7, 15, tzinfo=UTC))
    assert event_type_for(p, "peak_shaving", 0.5, "auto") == "real_time"
    assert event_type_for(p, "peak_shaving", 24.0, "auto") == "day_ahead"
    assert event_type_for(p, "peak_shaving", 100.0, "auto") == "real_time"  # refused: too far
    assert event_type_for(p, "peak_shaving", 24.0, "real_time") == "real_time"  # as configured


async def test_vtn_event_is_dispatched_and_reported(engine: Engine, tmp_path: Path) -> None:
    tokens = seed(engine)
    vtn_port = port()
    reports: list[tuple[datetime, float]] = []
    opts: dict[str, str] = {}

    def answered(ven_id: str, event_id: str, opt_type: str) -> None:
        opts[event_id] = opt_type

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
            ven = daemon.ven
            assert ven is not None
            await wait_for(lambda: asyncio.sleep(0, ven.registered), what="registration")

            now = datetime.now(UTC)
            boundary = now - timedelta(minutes=now.minute % 15, seconds=now.second,
                                       microseconds=now.microsecond)
            start = boundary + timedelta(minutes=7)  # not on a 15-minute boundary
            vtn.add_event(ven_id="ven-xiang", signal_name="LOAD_DISPATCH", signal_type="delta",
                          intervals=[{"dtstart": start, "duration": timedelta(hours=1),
                                      "signal_payload": -6.0}],
                          event_id="vtn-evt-1", callback=answered)

            await wait_for(lambda: asyncio.sleep(0, "vtn-evt-1" in opts), timeout_s=30,
                           what="the VEN's answer")
            assert opts["vtn-evt-1"] == "optIn", ven.decisions

            def stored(ext: str) -> GridEvent | None:
                with session_scope(engine) as s:
                    return s.exec(select(GridEvent).where(GridEvent.external_id == ext)).first()

            ev = stored("openadr:vtn-evt-1")
            assert ev is not None and ev.source == "openadr" and ev.requested_kw == 6.0
            # the market intervals covering the event; its own window kept with it
            assert _aware(ev.start) == boundary
            assert _aware(ev.end) == boundary + timedelta(hours=1, minutes=15)
            assert ev.detail["origin"]["window"]["start"] == start.isoformat()
            assert ev.detail["origin"]["snapped_to_intervals"]

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

            # SIMPLE level 2, no simple_level_kw set: what the fleet can dependably offer
            later = boundary + timedelta(hours=2)
            vtn.add_event(ven_id="ven-xiang", signal_name="SIMPLE", signal_type="level",
                          intervals=[{"dtstart": later, "duration": timedelta(hours=1),
                                      "signal_payload": 2}],
                          event_id="vtn-simple", callback=answered)
            # a setpoint is a load level: 1 MW is above this fleet's load, nothing to reduce
            vtn.add_event(ven_id="ven-xiang", signal_name="LOAD_DISPATCH",
                          signal_type="setpoint",
                          intervals=[{"dtstart": later + timedelta(hours=1, minutes=15),
                                      "duration": timedelta(hours=1), "signal_payload": 1000.0}],
                          event_id="vtn-setpoint", callback=answered)
            # a positive delta asks for more load: a valley-filling call, bid on what the
            # batteries can charge
            vtn.add_event(ven_id="ven-xiang", signal_name="LOAD_DISPATCH", signal_type="delta",
                          intervals=[{"dtstart": later + timedelta(hours=1),
                                      "duration": timedelta(hours=1), "signal_payload": 4.0}],
                          event_id="vtn-increase", callback=answered)
            await wait_for(lambda: asyncio.sleep(
                0, {"vtn-simple", "vtn-setpoint", "vtn-increase"} <= set(opts)), timeout_s=30,
                what="the VEN's answers to the SIMPLE, setpoint and increase events")
            assert opts["vtn-simple"] == "optIn", ven.decisions
            simple = stored("openadr:vtn-simple")
            assert simple is not None and simple.requested_kw == pytest.approx(10.0)  # 2 x 5 kW
            assert "SIMPLE level 2: what the fleet can dependably offer" in \
                simple.detail["origin"]["reading"]
            assert opts["vtn-setpoint"] == "optOut"
            reason = ven.decisions["vtn-setpoint"].reason
            assert reason is not None and "setpoint 1000 kW is at or above the fleet's load" in reason
            assert stored("openadr:vtn-setpoint") is None  # nothing asked: no call, no bid
            assert opts["vtn-increase"] == "optIn", ven.decisions["vtn-increase"]
            increase = stored("openadr:vtn-increase")
            assert increase is not None and increase.direction == "valley_filling"
            assert increase.requested_kw == pytest.approx(4.0)
            assert increase.status in ("accepted", "active")
    finally:
        await daemon.stop()
        await gw.stop()
        await vtn.stop()
