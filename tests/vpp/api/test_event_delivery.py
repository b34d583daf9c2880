"""``GET /events/{id}/delivery`` after the event: every interval of the event (not only the last
plan's), measured the way settlement measures it, and the totals equal to the settlement's once
settled. On SQLite and PostgreSQL, through the real aiohttp server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.vpp.api.conftest import Api
from tests.vpp.daemon.harness import add_completed_event, auth
from vpp import fleet
from vpp.daemon.settle import settle_event_db
from vpp.db import session_scope
from vpp.models import DispatchPlan
from vpp.telemetry_store import Reading, write_readings

#: per interval, each device's metered kW (None: no reading); both baselines are 10 kW
METERED = [(4.0, 4.0), (5.0, 5.0), (8.0, 8.0), (9.0, None)]
#: the fleet's response per interval: 20 - metered, a device without a reading counted as its
#: baseline (no response), as settlement does
RESPONSE_KW = [12.0, 10.0, 4.0, 1.0]


def _event(api: Api) -> tuple[int, datetime]:
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    with session_scope(api.engine) as s:
        owner = fleet.get_owner(s, api.tokens.owner_id)
        spec = {"host": "10.1.1.7", "port": 502, "devices": [
            {"name": f"press-{u}", "kind": "industrial_load", "unit_id": u,
             "profile": "industrial-plc", "rated_power_kw": 20.0, "min_setpoint_kw": 0.0,
             "max_setpoint_kw": 20.0, "params": {"max_curtail_kw": 10.0}} for u in (1, 2)]}
        ids = [int(d.id or 0) for d in fleet.add_gateway(s, owner, "plant", spec).devices]
        event_id = add_completed_event(s, "ev-delivery", start, ids, api.tokens.owner_id,
                                       declared_kw=10.0, baseline_kw=10.0)
        iv = [start + timedelta(minutes=15 * k) for k in range(4)]
        # the first plan covered the whole call; a re-plan 30 minutes in only the rest of it
        for first, target in ((0, 10.0), (2, 10.5)):
            s.add(DispatchPlan(event_id=event_id, horizon_start=iv[first], detail={
                "intervals": [t.isoformat() for t in iv[first:]], "device_ids": ids,
                "baseline_kw": [20.0] * (4 - first), "target_kw": [target] * (4 - first)}))
    readings = [Reading(dev, iv[k] + timedelta(seconds=30 * j), kw)
                for k, row in enumerate(METERED) for dev, kw in zip(ids, row, strict=True)
                if kw is not None for j in range(30)]
    write_readings(api.engine, readings)
    return event_id, start


async def _delivery(api: Api, event_id: int) -> dict:
    async with api.http.get(f"{api.url}/api/v1/events/{event_id}/delivery",
                            headers=auth(api.tokens.operator)) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_delivery_covers_the_whole_event_and_agrees_with_the_settlement(
        api_both: Api) -> None:
    api = api_both
    event_id, start = _event(api)
    live = await _delivery(api, event_id)
    assert live["measured_by"] == "live, against the baselines fixed at the first plan"
    rows = live["intervals"]
    assert [datetime.fromisoformat(r["interval_start"]) for r in rows] == [
        start + timedelta(minutes=15 * k) for k in range(4)]
    assert [r["delivered_kw"] for r in rows] == pytest.approx(RESPONSE_KW)
    assert [r["baseline_kw"] for r in rows] == pytest.approx([20.0] * 4)
    assert [r["target_kw"] for r in rows] == [10.0, 10.0, 10.5, 10.5]  # latest plan covering it
    assert live["delivered_kw"] == pytest.approx(6.75)
    assert live["performance_pct"] == pytest.approx(67.5)

    run = settle_event_db(api.engine, event_id, api.parts.settings, actor="daemon",
                          rebound_h=0.0)
    st = run.settlement
    assert run.method == "fixed" and st.response_kwh == pytest.approx(6.75)
    settled = await _delivery(api, event_id)
    assert settled["measured_by"] == f"settlement v{st.version} (baselines fixed at the first plan)"
    assert settled["status"] == "settled"
    assert [r["delivered_kw"] for r in settled["intervals"]] == pytest.approx(RESPONSE_KW)
    assert [r["metered_kw"] for r in settled["intervals"]] == pytest.approx(
        [20 - r for r in RESPONSE_KW])
    assert settled["delivered_kw"] == pytest.approx(st.response_kwh / 1.0)
    assert settled["performance_pct"] == pytest.approx(100 * st.performance_ratio)
    # and the live measurement before the settlement said the same
    assert settled["performance_pct"] == pytest.approx(live["performance_pct"])


async def test_an_event_it_cannot_measure_answers_nulls_and_says_why(api: Api) -> None:
    """Baselines fixed, but no device of a declared owner among them (the bid's owner is not
    the devices' owner): the event's state, not a bad request, so 200 with nulls and the
    reason, not a 400."""
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    with session_scope(api.engine) as s:
        owner = fleet.get_owner(s, api.tokens.owner_id)
        spec = {"host": "10.1.1.8", "port": 502, "devices": [
            {"name": "press", "kind": "industrial_load", "unit_id": 1,
             "profile": "industrial-plc", "rated_power_kw": 20.0, "min_setpoint_kw": 0.0,
             "max_setpoint_kw": 20.0, "params": {"max_curtail_kw": 10.0}}]}
        ids = [int(d.id or 0) for d in fleet.add_gateway(s, owner, "plant", spec).devices]
        event_id = add_completed_event(s, "ev-unmeasurable", start, ids,
                                       api.tokens.other_owner_id, declared_kw=10.0,
                                       baseline_kw=10.0)
    body = await _delivery(api, event_id)
    assert body["measured_by"].startswith("not measured: "), body["measured_by"]
    assert "no owner with a declared share" in body["measured_by"]
    assert len(body["intervals"]) == 4
    assert all(r["delivered_kw"] is None for r in body["intervals"])
    assert body["delivered_kw"] is None
