"""Batteries between calls in the daemon (vpp.daemon.tou_dispatch): with ``[scheduler]
tou_schedule`` on, the daemon runs the batteries against the programme's tariff through the
same write path as a call's setpoints (limits, read-back): charging in the valley, discharging
at the peak no further than the host site's load (export does not count), and buying a
day-ahead call's reserve before it, stored with the event.

Real parts: the daemon, a simulated pymodbus gateway with two Huawei LUNA2000 batteries on
loopback (their sites' meters read through the profile), SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import Engine

from sim.clock import SimClock
from sim.fleet import gateway_from_spec
from sim.physics.battery import BatteryModel
from tests.vpp.daemon.harness import (
    PROGRAMME,
    daemon_settings,
    enrol_and_poll,
    gateway_spec,
    get_json,
    port,
    seed,
    stored_id,
    wait_for,
)
from vpp.bids import add_bid, kw_shares
from vpp.config import GatewaySpec
from vpp.db import session_scope
from vpp.domain.grid_calls import EventStatus
from vpp.models import Bid, GridEvent
from vpp.server import Daemon

VALLEY = datetime(2026, 7, 15, 18, 0, tzinfo=UTC)  # 02:00 in Zhuzhou
PEAK = datetime(2026, 7, 15, 4, 0, tzinfo=UTC)  # 12:00 in Zhuzhou


async def _run(engine: Engine, tmp: Path, t0: datetime, check: Any,
               tou: bool = True, call: dict[str, Any] | None = None,
               accel: float = 10.0) -> None:
    tokens = seed(engine)
    clock = SimClock(accel=accel, start=t0)
    spec = gateway_spec(port())
    gw = gateway_from_spec(GatewaySpec.model_validate(spec), clock)
    await gw.start()
    settings = daemon_settings(tmp, str(engine.url))
    settings = settings.model_copy(update={"scheduler": settings.scheduler.model_copy(
        update={"tou_schedule": tou})})
    daemon = Daemon(settings, engine, port=0, clock=clock.now)
    base = await daemon.start()
    try:
        async with aiohttp.ClientSession() as c:
            devs = await enrol_and_poll(c, base, tokens, spec, 2)
            event_id = None
            if call is not None:
                event_id = _day_ahead_call(engine, tokens.owner_id, **call)
            await check(c, base, tokens, daemon, gw, [d["id"] for d in devs], event_id)
    finally:
        await daemon.stop()
        await gw.stop()


def _day_ahead_call(engine: Engine, owner_id: int, start: datetime, hours: int,
                    kw: float) -> int:
    """An accepted day-ahead peak-shaving call bid at ``kw`` by the owner."""
    with session_scope(engine) as s:
        ev = GridEvent(external_id="da-reserve", source="rest", event_type="day_ahead",
                       direction="peak_shaving", programme=PROGRAMME, start=start,
                       end=start + timedelta(hours=hours), requested_kw=kw,
                       status=EventStatus.ACCEPTED, detail={})
        s.add(ev)
        s.flush()
        event_id = stored_id(ev.id)
        add_bid(s, Bid(event_id=event_id, declared_kw=kw, price_yuan_per_kwh=Decimal("2.0")),
                kw_shares({owner_id: kw}))
        return event_id


def _batteries(gw: Any) -> list[BatteryModel]:
    out = []
    for unit in (1, 2):
        phys = gw.devices[unit].physics
        assert isinstance(phys, BatteryModel)
        out.append(phys)
    return out


async def test_charges_in_the_valley(engine: Engine, tmp_path: Path) -> None:
    async def check(c, base, tokens, daemon, gw, ids, event_id) -> None:  # type: ignore[no-untyped-def]
        async def charging() -> bool:
            return all(b.power_kw > 0.5 for b in _batteries(gw))

        await wait_for(charging, timeout_s=30, what="both batteries charging at 02:00")
        assert all(b.power_kw <= 5.0 + 1e-6 for b in _batteries(gw))
        plan = daemon.parts.tou.last
        assert plan is not None and plan.plan.soc_pct.shape == (2, 96)

    await _run(engine, tmp_path, VALLEY, check)


async def test_discharges_at_the_peak_within_the_site_load(engine: Engine,
                                                           tmp_path: Path) -> None:
    async def check(c, base, tokens, daemon, gw, ids, event_id) -> None:  # type: ignore[no-untyped-def]
        async def discharging() -> bool:
            return all(b.power_kw < -0.5 for b in _batteries(gw))

        await wait_for(discharging, timeout_s=30, what="both batteries discharging at 12:00")
        for b in _batteries(gw):  # export past the site meter does not count (hunan-2026)
            assert b.host_load_kw is not None
            assert b.power_kw >= -b.host_load_kw - 0.05
            assert b.site_import_kw is not None and b.site_import_kw >= -0.05

    await _run(engine, tmp_path, PEAK, check)


async def test_off_by_default_leaves_the_batteries_alone(engine: Engine,
                                                         tmp_path: Path) -> None:
    async def check(c, base, tokens, daemon, gw, ids, event_id) -> None:  # type: ignore[no-untyped-def]
        health = await get_json(c, f"{base}/api/v1/health")
        assert daemon.parts.tou.last is None
        assert all(abs(b.power_kw) < 1e-9 for b in _batteries(gw)), health

    await _run(engine, tmp_path, VALLEY, check, tou=False)


async def test_a_day_ahead_calls_reserve_is_bought_before_it(engine: Engine,
                                                            tmp_path: Path) -> None:
    """A call 10:00-12:00 asking 9.5 kW of the two 5 kW / 15 kWh batteries: each must hold
    what the call's plan discharges below its baseline (about 4.75 kW x 2 h / 0.95 = 10 kWh
    above its 10% floor, less what it charges at baseline) at 10:00; at 02:00 they sit at 50%.
    The reserve is stored with the event and the schedule ends at the call holding it."""
    start = VALLEY + timedelta(hours=8)

    async def check(c, base, tokens, daemon, gw, ids, event_id) -> None:  # type: ignore[no-untyped-def]
        async def stored() -> list | None:  # the event's API view shows the reserve
            ev = await get_json(c, f"{base}/api/v1/events/{event_id}", tokens.operator)
            return ev["battery_reserve"] or None

        reserve = await wait_for(stored, timeout_s=40, what="the call's reserve stored")
        assert sorted(r["device_id"] for r in reserve) == sorted(ids)
        # the call's plan reduces 9.5-9.975 kW (the declared kW and the target margin) below
        # the event's fixed baselines for 2 h: that energy, at 0.95 discharge efficiency
        with session_scope(engine) as s:
            ev = s.get(GridEvent, event_id)
            assert ev is not None
            base_kw = sum(v[0] for v in ev.detail["baseline_kw"].values())
        total = sum(r["reserve_kwh"] for r in reserve)
        assert (9.5 - base_kw) * 2 / 0.95 - 0.2 <= total <= (9.975 - base_kw) * 2 / 0.95 + 0.2
        for r in reserve:
            assert r["reserve_kwh"] == pytest.approx((r["target_soc_pct"] - 10) / 100 * 15,
                                                     abs=0.01)
            assert r["target_soc_pct"] > 55.0  # above the 50% they have: it must be bought

        async def planned() -> Any:
            p = daemon.parts.tou.last
            return p if p is not None and p.reserves else None

        plan = await wait_for(planned, timeout_s=30, what="a schedule holding the reserve")
        assert plan.plan.soc_pct.shape[1] == 32  # 02:00 to the call at 10:00
        for r, soc in zip(plan.reserves, plan.plan.soc_pct[:, -1], strict=True):
            assert soc >= r.target_soc_pct - 0.1

        async def charging() -> bool:
            return all(b.power_kw > 0.5 for b in _batteries(gw))

        await wait_for(charging, timeout_s=30, what="the reserve bought in the valley")

    await _run(engine, tmp_path, VALLEY, check,
               call={"start": start, "hours": 2, "kw": 9.5})


async def test_a_call_takes_the_batteries_from_the_schedule(engine: Engine,
                                                           tmp_path: Path) -> None:
    """At 02:00 the schedule charges; a real-time call from the current interval asking 4 kW
    of the two batteries is planned by the control loop, which discharges them, and the
    schedule writes nothing over the call's setpoints (calls first)."""
    step = timedelta(minutes=15)

    async def check(c, base, tokens, daemon, gw, ids, event_id) -> None:  # type: ignore[no-untyped-def]
        async def charging() -> bool:
            return all(b.power_kw > 0.5 for b in _batteries(gw))

        await wait_for(charging, timeout_s=30, what="the schedule charging at 02:00")
        now = daemon.parts.clock()
        h0 = now - (now - VALLEY) % step
        with session_scope(engine) as s:
            ev = GridEvent(external_id="rt-first", source="rest", event_type="real_time",
                           direction="peak_shaving", programme=PROGRAMME, start=h0,
                           end=h0 + timedelta(hours=1), requested_kw=4.0,
                           status=EventStatus.ACCEPTED, detail={})
            s.add(ev)
            s.flush()
            add_bid(s, Bid(event_id=stored_id(ev.id), declared_kw=4.0,
                           price_yuan_per_kwh=Decimal("2.0")), kw_shares({tokens.owner_id: 4.0}))
        daemon.parts.control.wake()

        async def discharging() -> bool:
            return all(b.power_kw < -0.5 for b in _batteries(gw))

        await wait_for(discharging, timeout_s=30, what="the call's plan discharging")

        async def next_interval() -> bool:  # the schedule plans again there, without them
            return bool(daemon.parts.clock() > h0 + step + timedelta(seconds=30))

        await wait_for(next_interval, timeout_s=60, what="the next interval")
        for _ in range(20):  # a few control and schedule periods: the call keeps them
            await asyncio.sleep(0.25)
            assert all(b.power_kw < -0.5 for b in _batteries(gw))

    await _run(engine, tmp_path, VALLEY, check, accel=40.0)
