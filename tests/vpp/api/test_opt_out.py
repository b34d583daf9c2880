"""Opting a device out for a while (``preferences.opt_out_until``) through the real aiohttp
server, on SQLite and PostgreSQL: stored as an aware time, refused (400) in the past, naive or
more than 7 days ahead, ended by itself (an ended one neither acts nor blocks a later change),
cleared with null, and its effect shown by the preview interval by interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.vpp.api.conftest import Api
from tests.vpp.api.test_owner_devices import _plant, _preview
from tests.vpp.daemon.harness import auth
from vpp.db import session_scope
from vpp.models import Device
from vpp.telemetry_store import Reading, write_readings


async def _patch(api: Api, device_id: int, body: dict[str, Any], status: int = 200) -> Any:
    async with api.http.patch(f"{api.url}/api/v1/devices/{device_id}/preferences", json=body,
                              headers=auth(api.tokens.owner)) as r:
        assert r.status == status, await r.text()
        return await r.json()


def _stored(api: Api, device_id: int) -> dict[str, Any]:
    with session_scope(api.engine) as s:
        d = s.get(Device, device_id)
        assert d is not None
        return dict(d.preferences or {})


async def test_an_opt_out_is_checked_stored_and_ends_by_itself(api_both: Api) -> None:
    api = api_both
    ids = _plant(api, api.tokens.owner_id, "mall", "commercial_building",
                 {"max_shed_kw": 8.0, "max_shed_minutes": 120})
    now = datetime.now(UTC)
    write_readings(api.engine, [Reading(i, now - timedelta(minutes=1), 15.0) for i in ids])
    dev = ids[0]
    # refused: in the past, without an offset, beyond a week (and said why)
    err = await _patch(api, dev, {"opt_out_until": (now - timedelta(hours=1)).isoformat()}, 400)
    assert "is not after now" in err["error"]["message"]
    err = await _patch(api, dev, {"opt_out_until": (now + timedelta(days=8)).isoformat()}, 400)
    assert "more than 7 days ahead" in err["error"]["message"]
    assert "participate to false" in err["error"]["message"]
    naive = (now + timedelta(hours=2)).replace(tzinfo=None).isoformat()
    await _patch(api, dev, {"opt_out_until": naive}, 400)
    assert _stored(api, dev) == {}
    # stored as given (any offset), read back as the same instant
    until = (now + timedelta(hours=20)).replace(microsecond=0)
    out = await _patch(api, dev, {"opt_out_until": until.astimezone(
        datetime.now().astimezone().tzinfo).isoformat()})
    assert datetime.fromisoformat(out["preferences"]["opt_out_until"]) == until
    assert datetime.fromisoformat(_stored(api, dev)["opt_out_until"]) == until
    # null ends it now
    out = await _patch(api, dev, {"opt_out_until": None})
    assert "opt_out_until" not in out["preferences"]
    # one that has ended does nothing and does not block the next change: it is dropped
    with session_scope(api.engine) as s:
        d = s.get(Device, dev)
        assert d is not None
        d.preferences = {"opt_out_until": (now - timedelta(minutes=5)).isoformat()}
        s.add(d)
    out = await _patch(api, dev, {"comfort_min_c": 23})
    assert out["preferences"] == {"comfort_min_c": 23}


async def test_the_preview_shows_an_opt_out_interval_by_interval(api_both: Api) -> None:
    api = api_both
    # thermal parameters declared whose band holds the 8 kW shed throughout (R 0.05 degC/kW:
    # 1.2 degC steady), so the preview shows the opt-out alone (undeclared, a 20 kW building's
    # sized ones hold it 59 minutes: vpp.device_kinds.design_thermal_params)
    ids = _plant(api, api.tokens.owner_id, "mall", "commercial_building",
                 {"max_shed_kw": 8.0, "max_shed_minutes": 120,
                  "thermal_resistance_c_per_kw": 0.05, "thermal_capacitance_kwh_per_c": 40.0})
    now = datetime.now(UTC)
    write_readings(api.engine, [Reading(i, now - timedelta(minutes=1), 15.0) for i in ids])
    # beyond the 2-hour window: nothing to offer in it, and the expiry said
    until = now + timedelta(hours=3)
    out = await _preview(api, ids[0], {"opt_out_until": until.isoformat()}, api.tokens.owner)
    assert out["before_max_kw"] == pytest.approx(8.0)
    assert out["after_max_kw"] == 0.0 and set(out["after_kw"]) == {0.0}
    assert "left out of the events that start before" in out["lines"][1]
    # ending in the window: out for the intervals that start before it, back after
    until = now + timedelta(minutes=50)
    out = await _preview(api, ids[0], {"opt_out_until": until.isoformat()}, api.tokens.owner)
    start = datetime.fromisoformat(out["window_start"])
    step = timedelta(minutes=out["interval_minutes"])
    for k, (before, after) in enumerate(zip(out["before_kw"], out["after_kw"], strict=True)):
        assert after == (0.0 if start + k * step < until else before), k
    assert out["after_kw"][-1] > 0
    assert _stored(api, ids[0]) == {}  # a preview saves nothing
