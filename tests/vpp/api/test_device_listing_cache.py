"""The cached device listing: every change is visible on the next request, scopes never mix."""

from __future__ import annotations

import asyncio

from sqlalchemy import update

from tests.vpp.api.conftest import Api
from tests.vpp.api.test_auth_and_errors import _enrol_unreachable, _req
from vpp.api import routes_fleet
from vpp.db import session_scope
from vpp.models import Device


def _by_id(devices: list[dict]) -> dict[int, dict]:
    return {d["id"]: d for d in devices}


async def test_a_change_is_visible_on_the_next_listing(api: Api) -> None:
    rt = api.parts.fleet  # the daemon's runtime, not polling in this test
    mine = await _enrol_unreachable(api, api.tokens.owner_id, 1601)
    theirs = await _enrol_unreachable(api, api.tokens.other_owner_id, 1602)
    dev, other = mine["device_ids"][0], theirs["device_ids"][0]
    op, owner = api.tokens.operator, api.tokens.owner

    _, first, _ = await _req(api, "GET", "/api/v1/devices", op)
    assert set(_by_id(first)) == {dev, other}
    # owner scope: its own cache entry, never the operator's listing
    _, own = (await _req(api, "GET", "/api/v1/devices", owner))[:2]
    assert [d["id"] for d in own] == [dev]

    # a preference changed through the API
    status, _, _ = await _req(api, "PATCH", f"/api/v1/devices/{dev}/preferences", owner,
                              json={"participate": False})
    assert status == 200
    for token in (op, owner):
        _, listing, _ = await _req(api, "GET", "/api/v1/devices", token)
        assert _by_id(listing)[dev]["preferences"] == {"participate": False}

    # a status written by this process (as the poller does), through the ORM
    with session_scope(api.engine) as s:
        row = s.get(Device, dev)
        assert row is not None
        row.status, row.status_detail = "offline", "no answer"
        s.add(row)
    _, listing, _ = await _req(api, "GET", "/api/v1/devices", owner)
    assert (listing[0]["status"], listing[0]["status_detail"]) == ("offline", "no answer")

    # a setpoint the runtime holds, and the end of a poll cycle
    rt.restore_setpoint(dev, 2.5)
    _, listing, _ = await _req(api, "GET", "/api/v1/devices", op)
    assert _by_id(listing)[dev]["setpoint_kw"] == 2.5
    await rt.poll_step()  # no gateways: a cycle that reads nothing, but it ends
    assert rt.version >= 2
    _, after_cycle, _ = await _req(api, "GET", "/api/v1/devices", op)
    assert after_cycle == listing

    # a change this process cannot see (Core statement, as another process would write it):
    # served from the cache until it is LISTING_MAX_AGE_S old, then read again
    before = _by_id(listing)[other]["status_detail"]  # what its failed probe wrote
    with session_scope(api.engine) as s:
        s.execute(update(Device).where(Device.id == other).values(status_detail="elsewhere"))
    _, listing, _ = await _req(api, "GET", "/api/v1/devices", op)
    assert _by_id(listing)[other]["status_detail"] == before != "elsewhere"  # the cache
    await asyncio.sleep(routes_fleet.LISTING_MAX_AGE_S + 0.05)
    _, listing, _ = await _req(api, "GET", "/api/v1/devices", op)
    assert _by_id(listing)[other]["status_detail"] == "elsewhere"
