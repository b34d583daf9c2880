"""Authentication, roles, owner isolation and the JSON error contract, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import logging

import pytest
from sqlmodel import select

from tests.vpp.api.conftest import Api
from tests.vpp.daemon.harness import auth
from vpp import fleet
from vpp.api.errors import ERROR_CODES
from vpp.db import session_scope
from vpp.models import ApiToken
from vpp.security import hash_token


async def _req(api: Api, method: str, path: str, token: str | None = None, **kw):  # noqa: ANN202
    headers = kw.pop("headers", {})
    if token:
        headers.update(auth(token))
    async with api.http.request(method, api.url + path, headers=headers, **kw) as r:
        return r.status, await r.json(), r.headers


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "},
    {"Authorization": "Bearer vpp_not-a-real-token"}, {"Authorization": "Bearer nonsense"},
])
async def test_requests_without_a_valid_token_are_refused(api: Api, headers: dict) -> None:
    status, body, h = await _req(api, "GET", "/api/v1/devices", headers=headers)
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert h["WWW-Authenticate"] == "Bearer"


async def test_revoked_token_is_refused(api_both: Api) -> None:
    api = api_both
    status, _, _ = await _req(api, "GET", "/api/v1/me", api.tokens.grid)
    assert status == 200
    with session_scope(api.engine) as s:
        row = s.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(api.tokens.grid))).one()
        fleet.revoke_token(s, int(row.id or 0))
    status, body, _ = await _req(api, "GET", "/api/v1/me", api.tokens.grid)
    assert status == 401 and "revoked" in body["error"]["message"]


async def test_tokens_are_stored_hashed_and_never_logged(api: Api,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await _req(api, "GET", "/api/v1/me", api.tokens.owner)
    await _req(api, "GET", "/api/v1/owners", api.tokens.owner)  # 403: logged or not, no token
    await _req(api, "GET", "/api/v1/me", api.tokens.owner + "x")
    assert api.tokens.owner not in caplog.text
    with session_scope(api.engine) as s:
        stored = [r.token_hash for r in s.exec(select(ApiToken)).all()]
    assert api.tokens.owner not in stored and hash_token(api.tokens.owner) in stored


@pytest.mark.parametrize(("role", "method", "path", "status"), [
    ("owner", "GET", "/api/v1/owners", 403),
    ("grid", "GET", "/api/v1/devices", 403),
    ("owner", "POST", "/api/v1/grid/calls", 403),
    ("grid", "GET", "/api/v1/payouts", 403),
    ("operator", "GET", "/api/v1/owners", 200),
    ("grid", "GET", "/api/v1/events", 200),
    ("owner", "GET", "/api/v1/payouts", 200),
])
async def test_roles(api: Api, role: str, method: str, path: str, status: int) -> None:
    token = getattr(api.tokens, role)
    got, body, _ = await _req(api, method, path, token)
    assert got == status, body
    if status == 403:
        assert body["error"]["code"] == "forbidden"


async def _enrol_unreachable(api: Api, owner_id: int, port: int) -> dict:
    """Enrol a gateway on a loopback port nobody listens on, through the API; its probe (the
    app's enrolment job) fails, and has ended when this returns."""
    spec = {"owner_id": owner_id, "site": "s", "host": "127.0.0.1", "port": port, "devices": [
        {"name": "b", "kind": "battery", "unit_id": 1, "profile": "huawei-luna2000",
         "rated_power_kw": 5.0, "min_setpoint_kw": -5.0, "max_setpoint_kw": 5.0,
         "params": {"capacity_kwh": 15.0}}]}
    status, body, _ = await _req(api, "POST", "/api/v1/gateways", api.tokens.operator, json=spec)
    assert status == 202, body
    await api.parts.enrolment.wait()
    return body


async def test_owners_see_only_their_own(api_both: Api) -> None:
    api = api_both
    mine = await _enrol_unreachable(api, api.tokens.owner_id, 1502)
    theirs = await _enrol_unreachable(api, api.tokens.other_owner_id, 1503)
    status, devices, _ = await _req(api, "GET", "/api/v1/devices", api.tokens.owner)
    assert status == 200 and [d["id"] for d in devices] == mine["device_ids"]
    other_dev = theirs["device_ids"][0]
    for method, path, body in [
        ("GET", f"/api/v1/devices/{other_dev}", None),
        ("GET", f"/api/v1/devices/{other_dev}/telemetry", None),
        ("PATCH", f"/api/v1/devices/{other_dev}/preferences", {"participate": False}),
        ("GET", f"/api/v1/gateways/{theirs['id']}", None),
        ("GET", f"/api/v1/owners/{api.tokens.other_owner_id}", None),
    ]:
        status, err, _ = await _req(api, method, path, api.tokens.owner, json=body)
        assert status == 404 and err["error"]["code"] == "not_found", (path, err)
    # an owner cannot enrol for someone else
    spec = {"owner_id": api.tokens.other_owner_id, "site": "s", "host": "10.0.0.9",
            "devices": mine and [{"name": "b", "kind": "battery", "unit_id": 1,
                                  "profile": "huawei-luna2000", "rated_power_kw": 5.0,
                                  "min_setpoint_kw": -5.0, "max_setpoint_kw": 5.0,
                                  "params": {"capacity_kwh": 15.0}}]}
    status, err, _ = await _req(api, "POST", "/api/v1/gateways", api.tokens.owner, json=spec)
    assert status == 400 and "only for itself" in err["error"]["message"]


async def test_preferences_are_checked_against_the_kind(api: Api) -> None:
    gw = await _enrol_unreachable(api, api.tokens.owner_id, 1504)
    dev = gw["device_ids"][0]
    path = f"/api/v1/devices/{dev}/preferences"
    status, body, _ = await _req(api, "PATCH", path, api.tokens.owner,
                                 json={"reserve_soc_pct": 30, "participate": True})
    assert status == 200 and body["preferences"] == {"reserve_soc_pct": 30, "participate": True}
    for payload, fragment in [
        ({"comfort_min_c": 22}, "does not apply to a battery"),
        ({"reserve_soc_pct": 5}, "outside the battery's range"),
        ({"reserve_soc_pct": 130}, "body.reserve_soc_pct"),
        ({"ev_departure": "25:00"}, "body.ev_departure"),
        ({"colour": "red"}, "unknown field"),
    ]:
        status, err, _ = await _req(api, "PATCH", path, api.tokens.owner, json=payload)
        assert status == 400, (payload, err)
        assert err["error"]["code"] == "invalid_input" and fragment in err["error"]["message"]


@pytest.mark.parametrize(("payload", "fragment"), [
    ({}, "body.external_id: field required"),
    ({"external_id": "x", "event_type": "real_time", "start": "2026-07-01T10:00:00",
      "end": "2026-07-01T11:00:00+08:00", "requested_kw": 5}, "body.start"),
    ({"external_id": "x", "event_type": "real_time", "start": "2026-07-01T11:00:00+08:00",
      "end": "2026-07-01T10:00:00+08:00", "requested_kw": 5}, "must be after start"),
    ({"external_id": "x", "event_type": "sometimes", "start": "2026-07-01T10:00:00+08:00",
      "end": "2026-07-01T11:00:00+08:00", "requested_kw": 5}, "body.event_type"),
    ({"external_id": "x", "event_type": "real_time", "start": "2026-07-01T10:00:00+08:00",
      "end": "2026-07-01T11:00:00+08:00", "requested_kw": -5}, "body.requested_kw"),
])
async def test_bad_calls_get_a_specific_400(api: Api, payload: dict, fragment: str) -> None:
    status, body, _ = await _req(api, "POST", "/api/v1/grid/calls", api.tokens.grid, json=payload)
    assert status == 400
    assert body["error"]["code"] == "invalid_input"
    assert fragment in body["error"]["message"], body


async def test_call_outside_the_programme_is_rejected_with_the_reason(api: Api) -> None:
    payload = {"external_id": "rt-late", "event_type": "real_time",
               "start": "2026-07-01T10:07:00+08:00", "end": "2026-07-01T11:07:00+08:00",
               "requested_kw": 5}
    status, body, _ = await _req(api, "POST", "/api/v1/grid/calls", api.tokens.grid, json=payload)
    assert status == 201
    assert body["accepted"] is False and body["status"] == "rejected"
    assert "15-minute intervals" in body["reason"] or "ended" in body["reason"]
    # the same call again: evaluated afresh in the same event (a rejection commits nothing),
    # not a second event (the idempotence and conflicts of accepted calls: test_intake_notice)
    status, again, _ = await _req(api, "POST", "/api/v1/grid/calls", api.tokens.grid, json=payload)
    assert status == 201 and not again["duplicate"] and again["event_id"] == body["event_id"]
    assert again["status"] == "rejected" and again["reason"] == body["reason"]


async def test_transport_level_errors_are_json(api: Api) -> None:
    status, body, _ = await _req(api, "GET", "/api/v1/nothing-here", api.tokens.operator)
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body, _ = await _req(api, "DELETE", "/api/v1/devices", api.tokens.operator)
    assert status == 405 and body["error"]["code"] == "method_not_allowed"
    status, body, _ = await _req(api, "POST", "/api/v1/grid/calls", api.tokens.grid,
                                 data=b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, body, _ = await _req(api, "GET", "/api/v1/devices/abc", api.tokens.operator)
    assert status == 400 and "path.device_id" in body["error"]["message"]
    status, body, _ = await _req(api, "GET", "/api/v1/events?limit=0", api.tokens.operator)
    assert status == 400 and "query.limit" in body["error"]["message"]
    status, body, _ = await _req(api, "POST", "/api/v1/grid/calls", api.tokens.grid,
                                 data=io.BytesIO(b"x" * (2 << 20)))
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert {"unauthorized", "forbidden", "not_found", "invalid_input", "conflict"} <= set(ERROR_CODES)
