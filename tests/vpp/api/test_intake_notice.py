"""Grid calls on the SHIPPED programme (config/programmes/hunan-2026.toml, default settings):
notice counts from when the call was received, at least the product's minimum and at most its
maximum; a rejected call sent again is evaluated afresh; a valley-filling call is bid on what the
fleet can raise.

The daemon's clock is the production hook (``Infra.clock``, what the simulator drives) set
to a Tuesday in July 2026, so that the programme's windows (10:00-23:00 local) and its notice
rules apply as they would on that day. The fleet is large enough for the programme's 10 MW
minimum, with three weeks of metered history so that bidding works from it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import Engine
from sqlmodel import select

from tests.conftest import free_port
from tests.vpp.daemon.harness import Tokens, auth, seed
from vpp import fleet
from vpp.api.app import build_app
from vpp.config import Settings
from vpp.daemon.dbexec import Db
from vpp.daemon.infra import Infra
from vpp.daemon.parts import build_parts
from vpp.db import session_scope
from vpp.models import AuditLog, Bid, GridEvent
from vpp.telemetry_store import Reading, write_readings

SH = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 7, 13, tzinfo=SH)  # the shipped programme's 2026 version is in force


@dataclass
class Shipped:
    url: str
    tokens: Tokens
    engine: Engine
    http: aiohttp.ClientSession
    now: list[datetime]  # the daemon's clock reads now[0]

    async def call(self, payload: dict[str, Any], status: int = 201) -> dict[str, Any]:
        async with self.http.post(self.url + "/api/v1/grid/calls", json=payload,
                                  headers=auth(self.tokens.grid)) as r:
            body = await r.json()
            assert r.status == status, body
            return body

    def bids(self, event_id: int) -> list[Bid]:
        with session_scope(self.engine) as s:
            return list(s.exec(select(Bid).where(Bid.event_id == event_id)))


@pytest.fixture
async def shipped(engine: Engine, tmp_path: Path) -> AsyncIterator[Shipped]:
    """The API on the shipped default settings (only the database and data folder set), once
    on SQLite and once on PostgreSQL."""
    settings = Settings(database_url=str(engine.url), service={"data_dir": str(tmp_path)})
    assert settings.bidding.programme == "hunan-2026"
    now = [MONDAY + timedelta(days=1, hours=9)]
    parts = build_parts(Infra.create(settings, Db(engine), clock=lambda: now[0]))
    tokens = seed(engine)
    runner = web.AppRunner(build_app(parts), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http:
            yield Shipped(f"http://127.0.0.1:{port}", tokens, engine, http, now)
    finally:
        await runner.cleanup()
        await parts.close()


def _plant(sh: Shipped, n: int = 24) -> None:
    """``n`` 1 MW industrial loads, each curtailable by 600 kW (14.4 MW for 24), drawing about
    800 kW every 15 minutes over the three weeks before the clock."""
    with session_scope(sh.engine) as s:
        owner = fleet.get_owner(s, sh.tokens.owner_id)
        spec = {"host": "10.3.3.3", "port": 502, "devices": [
            {"name": f"kiln-{u}", "kind": "industrial_load", "unit_id": u,
             "profile": "industrial-plc", "rated_power_kw": 1000.0, "min_setpoint_kw": 200.0,
             "max_setpoint_kw": 1000.0,
             "params": {"max_curtail_kw": 600.0, "max_curtail_minutes": 240}}
            for u in range(1, n + 1)]}
        devs = fleet.add_gateway(s, owner, "works", spec).devices
        for d in devs:
            d.status = "active"
        ids = [int(d.id or 0) for d in devs]
    start = sh.now[0] - timedelta(days=21)
    steps = int((sh.now[0] - start) / timedelta(minutes=15))
    write_readings(sh.engine, [
        Reading(i, start + timedelta(minutes=15 * k), 800.0 + (k % 4) + j)
        for j, i in enumerate(ids) for k in range(steps)])


def _payload(ext: str, event_type: str, start: datetime, hours: float = 1.0,
             requested_kw: float = 12_000.0, direction: str = "peak_shaving") -> dict[str, Any]:
    return {"external_id": ext, "event_type": event_type, "direction": direction,
            "start": start.isoformat(), "end": (start + timedelta(hours=hours)).isoformat(),
            "requested_kw": requested_kw}


async def test_a_days_and_half_an_hours_notice_are_accepted_on_the_shipped_programme(
        shipped: Shipped) -> None:
    _plant(shipped)
    tuesday_10 = MONDAY + timedelta(days=1, hours=10)
    shipped.now[0] = tuesday_10 - timedelta(hours=24)  # Monday 10:00: a day's notice
    da = await shipped.call(_payload("da-24h", "day_ahead", tuesday_10, hours=2))
    assert da["accepted"] and da["status"] == "accepted", da
    assert 10_000 <= da["declared_kw"] <= 12_000  # the programme's minimum, the grid's ask
    shipped.now[0] = tuesday_10 + timedelta(hours=4, minutes=30)  # 14:30 for 15:00: 30 min
    rt = await shipped.call(_payload("rt-30min", "real_time", tuesday_10 + timedelta(hours=5)))
    assert rt["accepted"] and rt["status"] == "accepted", rt
    assert len(shipped.bids(rt["event_id"])) == 1
    with session_scope(shipped.engine) as s:
        ev = s.get(GridEvent, rt["event_id"])
        assert ev is not None and ev.received_at is not None
        received = ev.received_at if ev.received_at.tzinfo else ev.received_at.replace(tzinfo=UTC)
        assert received == shipped.now[0]  # notice is counted from here


async def test_notice_outside_the_products_bounds_is_refused_with_the_reason(
        shipped: Shipped) -> None:
    _plant(shipped)
    now = shipped.now[0] = MONDAY + timedelta(days=1, hours=10, minutes=5)  # Tuesday 10:05
    cases = [
        # real time two days ahead: beyond its 4 h
        (_payload("rt-2d", "real_time", now + timedelta(days=2, minutes=55)),
         "notice of 48.92 h is longer than the 4 h hunan-2026 allows for real_time/peak_shaving"),
        # a day-ahead call for 2031: beyond its 48 h
        (_payload("da-2031", "day_ahead", datetime(2031, 7, 15, 19, tzinfo=SH)),
         "h is longer than the 48 h hunan-2026 allows for day_ahead/peak_shaving"),
        # ten minutes' notice for a real-time call: below its 15 minutes
        (_payload("rt-10min", "real_time", now + timedelta(minutes=10)),
         "notice of 0.17 h is shorter than 0.25 h for real_time/peak_shaving"),
        # a day-ahead call for this afternoon: below its 12 h
        (_payload("da-5h", "day_ahead", now + timedelta(hours=4, minutes=55)),
         "notice of 4.92 h is shorter than 12 h for day_ahead/peak_shaving"),
    ]
    for payload, reason in cases:
        d = await shipped.call(payload)
        assert not d["accepted"] and d["status"] == "rejected", d
        assert reason in d["reason"], d
        assert shipped.bids(d["event_id"]) == []  # nothing bid


async def test_a_rejected_call_sent_again_is_evaluated_afresh(shipped: Shipped) -> None:
    start = MONDAY + timedelta(days=1, hours=10)  # Tuesday 10:00, the clock reads 09:00
    payload = _payload("rt-resend", "real_time", start)
    first = await shipped.call(payload)
    assert not first["accepted"], first  # no fleet yet: nothing to offer
    _plant(shipped)  # the owner's plant is enrolled (its history with it)
    shipped.now[0] += timedelta(minutes=10)
    again = await shipped.call(payload)
    assert again["accepted"] and not again["duplicate"], again
    assert again["event_id"] == first["event_id"] and again["declared_kw"] >= 10_000
    with session_scope(shipped.engine) as s:
        ev = s.get(GridEvent, first["event_id"])
        assert ev is not None and "reason" not in ev.detail
        [old] = ev.detail["rejections"]
        assert old["reason"] == first["reason"] and old["call"] == ev.detail["call"]
        audit = s.exec(select(AuditLog).where(AuditLog.action == "grid_call_resent")).one()
        assert audit.subject == f"event:{ev.id}" and audit.detail["same_content"]
    # accepted: the same call again is answered with the stored decision, nothing re-bid
    third = await shipped.call(payload)
    assert third["duplicate"] and third["accepted"] and third["event_id"] == first["event_id"]
    assert third["declared_kw"] == again["declared_kw"]
    assert len(shipped.bids(first["event_id"])) == 1
    # and different content under the accepted id is a conflict
    body = await shipped.call({**payload, "requested_kw": 11_000.0}, status=409)
    assert body["error"]["code"] == "conflict"


async def test_a_valley_filling_call_is_bid_on_what_the_fleet_can_raise(shipped: Shipped
                                                                        ) -> None:
    """Valley filling is planned now: the call passes intake and is bid on the fleet's rise
    above its load. These kilns declare a curtailment and its make-up, no rise: nothing to
    offer, so the call is declined with that reason (never bid on their shed capability)."""
    _plant(shipped)
    shipped.now[0] = MONDAY + timedelta(days=1, hours=10, minutes=30)
    d = await shipped.call(_payload("rt-valley", "real_time",
                                    MONDAY + timedelta(days=1, hours=11),
                                    direction="valley_filling"))
    assert not d["accepted"], d
    assert d["reason"] == "no offer: no owner can offer any capacity for this event"
    assert d["declared_kw"] == 0.0 and shipped.bids(d["event_id"]) == []
    with session_scope(shipped.engine) as s:
        ev = s.get(GridEvent, d["event_id"])
        assert ev is not None and ev.direction == "valley_filling"
