"""The daemon refuses grid calls while the VPP is suspended (its performance record,
vpp.performance), on the SHIPPED programme (hunan-2026) through the real API, SQLite and
PostgreSQL: the refusal and its reason are stored on the event and logged; the operator sees
the record, records the remedy, and the same call sent again is bid."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from tests.vpp.api import test_intake_notice
from tests.vpp.api.test_intake_notice import MONDAY, Shipped, _payload, _plant
from tests.vpp.daemon.harness import auth
from vpp.db import session_scope
from vpp.models import GridEvent, Settlement

shipped = test_intake_notice.shipped  # the fixture: the API on the shipped default settings


def _failed_events(sh: Shipped) -> None:
    """Three settled hunan-2026 events in June 2026 that delivered 20% of their declaration
    (below the band's 50% floor)."""
    with session_scope(sh.engine) as s:
        for d in (1, 2, 3):
            start = MONDAY.replace(month=6, day=d, hour=18)
            ev = GridEvent(external_id=f"june-{d}", source="cli", event_type="day_ahead",
                           programme="hunan-2026", start=start,
                           end=start + timedelta(hours=1), requested_kw=12_000.0,
                           status="settled")
            s.add(ev)
            s.flush()
            s.add(Settlement(event_id=int(ev.id or 0), baseline_kwh=12_000,
                             metered_kwh=9_600, response_kwh=2_400, declared_kw=12_000,
                             performance_ratio=0.2, revenue_fen=0))


async def test_a_suspended_vpp_refuses_calls_until_the_remedy(
        shipped: Shipped, caplog: pytest.LogCaptureFixture) -> None:
    _failed_events(shipped)
    start = MONDAY + timedelta(days=1, hours=10)  # Tuesday 10:00; the clock reads 09:00
    payload = _payload("rt-suspended", "real_time", start)
    with caplog.at_level(logging.WARNING, logger="vpp.daemon.intake"):
        d = await shipped.call(payload)
    assert not d["accepted"] and d["status"] == "rejected", d
    assert d["reason"].startswith("no bid: the VPP is suspended since 2026-06-03"), d
    assert "3 failed responses within 12 months" in d["reason"]
    assert "remedy by 2026-09-03" in d["reason"]
    assert shipped.bids(d["event_id"]) == []
    assert any("performance record" in r.getMessage() for r in caplog.records)
    with session_scope(shipped.engine) as s:
        ev = s.get(GridEvent, d["event_id"])
        assert ev is not None and ev.detail["reason"] == d["reason"]
    op = auth(shipped.tokens.operator)
    async with shipped.http.get(shipped.url + "/api/v1/performance", headers=op) as r:
        rec = await r.json()
        assert r.status == 200, rec
    assert rec["state"] == "suspended" and rec["remedy_deadline"] == "2026-09-03"
    assert rec["refuses_bids"] and [e["passed"] for e in rec["events"]] == [False] * 3
    bad = {"remedied_on": "2026-07-20", "note": "tomorrow's repairs"}
    async with shipped.http.post(shipped.url + "/api/v1/performance/remedies", json=bad,
                                 headers=op) as r:
        assert r.status == 400 and "in the future" in (await r.json())["error"]["message"]
    remedy = {"remedied_on": "2026-07-10", "note": "kiln controllers replaced"}
    async with shipped.http.post(shipped.url + "/api/v1/performance/remedies", json=remedy,
                                 headers=op) as r:
        out = await r.json()
        assert r.status == 201, out
    assert out["note"] == "kiln controllers replaced" and out["actor"]
    async with shipped.http.post(shipped.url + "/api/v1/performance/remedies", json=remedy,
                                 headers=op) as r:
        assert r.status == 409  # reinstated already: a second remedy changes nothing
    _plant(shipped)
    shipped.now[0] += timedelta(minutes=5)
    again = await shipped.call(payload)
    assert again["accepted"] and again["event_id"] == d["event_id"], again
    assert again["declared_kw"] >= 10_000
