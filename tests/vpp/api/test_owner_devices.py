"""The owner portal's device views through the real aiohttp server, on SQLite and PostgreSQL:
each device's part of a settled event adds up to the owner's settled response, an owner reads
only its own, and a preference preview changes nothing stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.vpp.api.conftest import Api
from tests.vpp.daemon.harness import add_completed_event, auth
from vpp import fleet
from vpp.daemon.settle import settle_event_db
from vpp.db import session_scope
from vpp.models import Device
from vpp.telemetry_store import Reading, write_readings

#: per interval, each device's metered kW (None: no reading); both baselines are 10 kW
METERED = [(4.0, 4.0), (5.0, 5.0), (8.0, 8.0), (9.0, None)]


def _plant(api: Api, owner_id: int, site: str, kind: str = "industrial_load",
           params: dict[str, Any] | None = None) -> list[int]:
    with session_scope(api.engine) as s:
        owner = fleet.get_owner(s, owner_id)
        spec = {"host": "10.1.1.7", "port": 502 if site == "plant" else 503, "devices": [
            {"name": f"{site}-{u}", "kind": kind, "unit_id": u,
             "profile": "industrial-plc" if kind == "industrial_load" else "coolmaster-vrf",
             "rated_power_kw": 20.0, "min_setpoint_kw": 0.0, "max_setpoint_kw": 20.0,
             "params": params or {"max_curtail_kw": 10.0}} for u in (1, 2)]}
        return [int(d.id or 0) for d in fleet.add_gateway(s, owner, site, spec).devices]


def _settled(api: Api) -> tuple[int, list[int]]:
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    ids = _plant(api, api.tokens.owner_id, "plant")
    with session_scope(api.engine) as s:
        event_id = add_completed_event(s, "ev-devices", start, ids, api.tokens.owner_id,
                                       declared_kw=10.0, baseline_kw=10.0)
    write_readings(api.engine, [
        Reading(dev, start + timedelta(minutes=15 * k, seconds=30 * j), kw)
        for k, row in enumerate(METERED) for dev, kw in zip(ids, row, strict=True)
        if kw is not None for j in range(30)])
    run = settle_event_db(api.engine, event_id, api.parts.settings, actor="daemon",
                          rebound_h=0.0)
    assert run.method == "fixed"
    return event_id, ids


async def _get(api: Api, path: str, token: str, status: int = 200) -> Any:
    async with api.http.get(f"{api.url}/api/v1{path}", headers=auth(token)) as r:
        assert r.status == status, await r.text()
        return await r.json()


async def test_device_contributions_add_up_to_the_settled_response(api_both: Api) -> None:
    api = api_both
    event_id, ids = _settled(api)
    out = await _get(api, f"/owner/events/{event_id}/devices", api.tokens.owner)
    assert out["baseline"] == "fixed at the first plan"
    by_id = {d["device_id"]: d for d in out["devices"]}
    assert sorted(by_id) == sorted(ids)
    first, second = by_id[ids[0]], by_id[ids[1]]
    # 15-minute intervals: (10-4 + 10-5 + 10-8 + 10-9) / 4 = 3.5 kWh; the second device's last
    # interval was not metered: no response there, (6+5+2+0) / 4 = 3.25 kWh
    assert first["response_kwh"] == pytest.approx(3.5)
    assert second["response_kwh"] == pytest.approx(3.25)
    assert second["unmetered_intervals"] == 1 and first["unmetered_intervals"] == 0
    assert first["baseline_kwh"] == pytest.approx(10.0)
    assert first["share_pct"] + second["share_pct"] == pytest.approx(100.0, abs=0.11)
    assert out["devices_response_kwh"] == pytest.approx(out["settled_response_kwh"],
                                                        abs=out["tolerance_kwh"])
    assert out["settled_response_kwh"] == pytest.approx(6.75)
    assert out["not_attributed_kwh"] == 0.0
    # the operator reads it for that owner; it must say whose
    op = await _get(api, f"/owner/events/{event_id}/devices?owner_id={api.tokens.owner_id}",
                    api.tokens.operator)
    assert op["devices"] == out["devices"]
    err = await _get(api, f"/owner/events/{event_id}/devices", api.tokens.operator, 400)
    assert "owner_id" in err["error"]["message"]


async def test_an_owner_cannot_read_another_owners_share(api: Api) -> None:
    event_id, _ = _settled(api)
    await _get(api, f"/owner/events/{event_id}/devices", api.tokens.other_owner, 404)
    await _get(api, f"/owner/events/{event_id}/devices?owner_id={api.tokens.owner_id}",
               api.tokens.other_owner, 404)
    await _get(api, "/owner/events/999999/devices", api.tokens.owner, 404)
    await _get(api, f"/owner/events/{event_id}/devices?owner_id=0", api.tokens.operator, 400)


async def _preview(api: Api, device_id: int, body: dict[str, Any], token: str,
                   status: int = 200) -> Any:
    async with api.http.post(f"{api.url}/api/v1/owner/devices/{device_id}/preferences/preview",
                             json=body, headers=auth(token)) as r:
        assert r.status == status, await r.text()
        return await r.json()


async def test_a_preview_shows_the_effect_and_saves_nothing(api_both: Api) -> None:
    api = api_both
    # a small building's thermal parameters declared (the comfort limit below is worked on
    # them; undeclared ones are sized from the rated power: vpp.device_kinds)
    ids = _plant(api, api.tokens.owner_id, "mall", "commercial_building",
                 {"max_shed_kw": 8.0, "max_shed_minutes": 120,
                  "thermal_resistance_c_per_kw": 0.05, "thermal_capacitance_kwh_per_c": 40.0})
    now = datetime.now(UTC)
    write_readings(api.engine, [Reading(i, now - timedelta(minutes=1), 15.0) for i in ids])
    with session_scope(api.engine) as s:
        stored = dict(s.get(Device, ids[0]).preferences or {})  # type: ignore[union-attr]
    # a shorter shed time: 8 kW for 60 of the 120 minutes is 4 kW sustained over the window
    out = await _preview(api, ids[0], {"max_shed_minutes": 60}, api.tokens.owner)
    assert out["before_max_kw"] == pytest.approx(8.0)
    assert out["after_max_kw"] == pytest.approx(4.0)
    assert out["lines"][0] == "mall-1 would shed at most 4.0 kW instead of 8.0 kW"
    # a narrower comfort band that still holds the shed (R 0.05 degC/kW, C 40 kWh/degC,
    # COP 3: 8 kW shed rises at most 1.2 degC, inside half of 23-26): unchanged, said plainly
    band = await _preview(api, ids[0], {"comfort_min_c": 23, "comfort_max_c": 26},
                          api.tokens.owner)
    assert band["proposed"]["comfort_min_c"] == 23 and band["proposed"]["comfort_max_c"] == 26
    assert band["after_max_kw"] == band["before_max_kw"] == pytest.approx(8.0)
    assert "comfort band" in band["lines"][1]
    # 24-25 allows 0.5 degC: the 8 kW shed leaves it after -RC ln(1 - 0.5/1.2) = 64.7 min, so
    # 64 of the 120 minutes: 8 x 64 / 120 = 4.27 kW sustained over the window
    band = await _preview(api, ids[0], {"comfort_min_c": 24, "comfort_max_c": 25},
                          api.tokens.owner)
    assert band["after_max_kw"] == pytest.approx(8.0 * 64 / 120, abs=1e-3)
    assert band["lines"] == ["mall-1 would shed at most 4.3 kW instead of 8.0 kW"]
    out = await _preview(api, ids[0], {"participate": False}, api.tokens.owner)
    assert out["after_max_kw"] == 0.0
    # bad input: a clear 400; another owner's device: 404
    err = await _preview(api, ids[0], {"comfort_min_c": 26, "comfort_max_c": 24},
                         api.tokens.owner, 400)
    assert "comfort band inverted" in err["error"]["message"]
    err = await _preview(api, ids[0], {"reserve_soc_pct": 20}, api.tokens.owner, 400)
    assert "does not apply" in err["error"]["message"]
    await _preview(api, ids[0], {"max_shed_minutes": 60}, api.tokens.other_owner, 404)
    with session_scope(api.engine) as s:
        assert (s.get(Device, ids[0]).preferences or {}) == stored  # type: ignore[union-attr]


async def test_history_baselines_add_up_too(api_both: Api) -> None:
    """An event settled by the programme's baseline over the owners' metered history (similar
    days with the day-of adjustment): each device's mean over the owner's days, the
    adjustment split between them, adds up to the settled response."""
    api = api_both
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    ids = _plant(api, api.tokens.owner_id, "plant")
    with session_scope(api.engine) as s:
        event_id = add_completed_event(s, "ev-history", start, ids, api.tokens.owner_id,
                                       declared_kw=10.0, baseline_kw=10.0)

    def kw(i: int, t: datetime) -> float:
        if start <= t < start + timedelta(hours=1):
            return (5.0, 12.0)[i]
        k = (start - t).days
        return (10.0 + k % 3, 20.0 + 2 * (k % 2))[i]

    steps = [start - timedelta(days=14) + timedelta(minutes=15 * n)
             for n in range(14 * 96 + 4)]
    write_readings(api.engine, [Reading(d, t + timedelta(minutes=1), kw(i, t))
                                for t in steps for i, d in enumerate(ids)])
    run = settle_event_db(api.engine, event_id, api.parts.settings, actor="daemon",
                          rebound_h=0.0)
    assert run.method == "history"
    # the day of the event ran below its baseline days before the call: a day-of adjustment
    assert run.settlement.detail["baselines"][str(api.tokens.owner_id)]["adjustment_kw"] < 0
    out = await _get(api, f"/owner/events/{event_id}/devices", api.tokens.owner)
    assert out["baseline"] == "similar_days"
    assert out["settled_response_kwh"] == pytest.approx(run.settlement.response_kwh)
    assert out["devices_response_kwh"] == pytest.approx(out["settled_response_kwh"],
                                                        abs=out["tolerance_kwh"])
    assert out["not_attributed_kwh"] == 0.0
    assert all(d["response_kwh"] > 0 and d["unmetered_intervals"] == 0 for d in out["devices"])
