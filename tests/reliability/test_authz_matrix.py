"""The authorisation matrix: every route of the app's route table x every role (operator, owner
A, owner B, grid, anonymous, revoked token) gets exactly the expected answer, and a refused
request changes nothing in the database.

The expectations below are written out by hand, independently of the roles in the route table,
so that a route whose roles drift fails here; a route added to the table without an entry here
fails :func:`test_every_route_has_a_matrix_entry`.
"""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.reliability.world import (
    World,
    accepted_event,
    build_world,
    device_spec,
    fingerprint,
    new_call,
    new_port,
    request,
)
from tests.vpp.api.conftest import Api
from vpp import fleet, profiles
from vpp.api.app import ROUTES
from vpp.db import session_scope
from vpp.models import Owner, Role

ROLES = ("operator", "owner_a", "owner_b", "grid", "anonymous", "revoked")


@dataclass(frozen=True)
class Expect:
    """Who may call a route. ``own``: owners only for their own things (others' answer 404,
    or ``foreign`` for a body naming another owner). ``scoped``: a list an owner sees filtered."""

    allowed: frozenset[str] | None  # None: public
    ok: int = 200
    own: bool = False
    scoped: bool = False
    foreign: int = 404


def _e(roles: str | None, ok: int = 200, **kw: Any) -> Expect:
    return Expect(None if roles is None else frozenset(roles.split()), ok, **kw)


EXPECT: dict[tuple[str, str], Expect] = {
    ("GET", "/api/v1/health"): _e(None),
    ("GET", "/api/v1/openapi.json"): _e(None),
    ("GET", "/api/v1/me"): _e("operator owner grid"),
    ("GET", "/api/v1/daemon/loops"): _e("operator"),
    ("GET", "/api/v1/fleet/status"): _e("operator"),
    ("GET", "/api/v1/owners"): _e("operator"),
    ("POST", "/api/v1/owners"): _e("operator", 201),
    ("GET", "/api/v1/owners/{owner_id}"): _e("operator owner", own=True),
    ("GET", "/api/v1/gateways"): _e("operator owner", scoped=True),
    ("POST", "/api/v1/gateways"): _e("operator owner", 202, own=True, foreign=400),
    ("POST", "/api/v1/charge-points"): _e("operator owner", 201, own=True, foreign=400),
    ("GET", "/api/v1/gateways/{gateway_id}"): _e("operator owner", own=True),
    ("POST", "/api/v1/gateways/{gateway_id}/probe"): _e("operator owner", 202, own=True),
    ("PATCH", "/api/v1/gateways/{gateway_id}"): _e("operator owner", own=True),
    ("POST", "/api/v1/gateways/{gateway_id}/retire"): _e("operator owner", own=True),
    # the world's devices took part in an event: with history, deletion is refused (409)
    ("DELETE", "/api/v1/gateways/{gateway_id}"): _e("operator owner", 409, own=True),
    ("GET", "/api/v1/devices"): _e("operator owner", scoped=True),
    ("GET", "/api/v1/devices/{device_id}"): _e("operator owner", own=True),
    ("PATCH", "/api/v1/devices/{device_id}/preferences"): _e("operator owner", own=True),
    ("GET", "/api/v1/devices/{device_id}/telemetry"): _e("operator owner", own=True),
    ("PATCH", "/api/v1/devices/{device_id}"): _e("operator owner", own=True),
    ("POST", "/api/v1/devices/{device_id}/retire"): _e("operator owner", own=True),
    ("DELETE", "/api/v1/devices/{device_id}"): _e("operator owner", 409, own=True),
    ("GET", "/api/v1/device-profiles"): _e("operator owner", scoped=True),
    ("POST", "/api/v1/device-profiles"): _e("operator owner", 201),
    ("GET", "/api/v1/device-profiles/{name}"): _e("operator owner", own=True),
    ("DELETE", "/api/v1/device-profiles/{name}"): _e("operator owner", own=True),
    ("POST", "/api/v1/grid/calls"): _e("operator grid", 201),
    ("GET", "/api/v1/events"): _e("operator grid owner", scoped=True),
    ("GET", "/api/v1/events/{event_id}"): _e("operator grid owner", own=True),
    ("POST", "/api/v1/events/{event_id}/cancel"): _e("operator grid"),
    ("GET", "/api/v1/events/{event_id}/delivery"): _e("operator grid"),
    ("GET", "/api/v1/events/{event_id}/bids"): _e("operator"),
    ("GET", "/api/v1/events/{event_id}/plans"): _e("operator"),
    ("GET", "/api/v1/settlements"): _e("operator"),
    ("GET", "/api/v1/admission"): _e("operator"),
    ("GET", "/api/v1/performance"): _e("operator"),
    # the world's VPP is not suspended: a remedy would change nothing (409)
    ("POST", "/api/v1/performance/remedies"): _e("operator", 409),
    ("GET", "/api/v1/payouts"): _e("operator owner", scoped=True),
    ("GET", "/api/v1/tokens"): _e("operator owner", scoped=True),
    ("POST", "/api/v1/tokens/rotate"): _e("operator owner grid", 201),
    ("POST", "/api/v1/tokens/{token_id}/revoke"): _e("operator owner", own=True),
    ("GET", "/api/v1/console/fleet-summary"): _e("operator"),
    ("GET", "/api/v1/console/devices"): _e("operator"),
    ("GET", "/api/v1/console/forecast"): _e("operator"),
    ("GET", "/api/v1/console/events/{event_id}"): _e("operator"),
    ("GET", "/api/v1/statement"): _e("owner"),
    ("GET", "/api/v1/profile-catalogue"): _e("operator owner"),
    # the world's events are not settled and its devices have no reading: whoever may ask gets
    # 404 / 400 (the answers themselves: tests/vpp/api/test_owner_devices.py)
    ("GET", "/api/v1/owner/events/{event_id}/devices"): _e("operator owner", 404, own=True),
    ("POST", "/api/v1/owner/devices/{device_id}/preferences/preview"):
        _e("operator owner", 400, own=True),
}

#: which owner a list item belongs to, for the scoped lists
ITEM_OWNER = {"/api/v1/gateways": "owner_id", "/api/v1/devices": "owner_id",
              "/api/v1/payouts": "owner_id", "/api/v1/tokens": "owner_id"}


def _spare_token(api: Api, owner_id: int) -> int:
    """A fresh token of the owner, so that every allowed revocation revokes a token nobody
    else in the matrix uses."""
    with session_scope(api.engine) as s:
        row, _ = fleet.issue_token(s, Role.OWNER, s.get(Owner, owner_id), "spare")
        return int(row.id or 0)


def _profile_body(name: str) -> dict[str, Any]:
    with (REPO_ROOT / "config/device_profiles/huawei-luna2000.toml").open("rb") as fh:
        return {**tomllib.load(fh), "name": name}


def _spare_profile(api: Api, owner_id: int) -> str:
    """A fresh stored profile of the owner, so that every allowed deletion can succeed."""
    name = f"spare-{new_port()}"
    with session_scope(api.engine) as s:
        profiles.submit_profile(s, _profile_body(name), owner_id, "test")
    return name


def expected(exp: Expect, role: str, target: str | None) -> int:
    """The exact status ``role`` must get for a route about owner ``target`` ('a', 'b', None)."""
    if exp.allowed is None:
        return exp.ok
    if role in ("anonymous", "revoked"):
        return 401
    base = "owner" if role.startswith("owner_") else role
    if base not in exp.allowed:
        return 403
    if base == "owner" and exp.own and target is not None and role != f"owner_{target}":
        return exp.foreign
    return exp.ok


def test_every_route_has_a_matrix_entry() -> None:
    table = {(r.method, r.path) for r in ROUTES}
    missing = table - set(EXPECT)
    assert not missing, f"routes without an authorisation-matrix entry: {sorted(missing)}"
    assert not set(EXPECT) - table, f"matrix entries for routes that no longer exist: " \
                                    f"{sorted(set(EXPECT) - table)}"
    for r in ROUTES:  # the table agrees with the hand-written matrix
        want = EXPECT[(r.method, r.path)].allowed
        got = None if r.roles is None else frozenset(x.value for x in r.roles)
        assert got == want, (r.method, r.path, got, want)


@pytest.fixture
async def world(api: Api) -> AsyncIterator[World]:
    yield await build_world(api)  # the app's enrolment probes run (and fail: no gateway)


async def _probes_done(api: Api) -> None:
    """Wait for background enrolment probes (they write the gateway's state and an audit row),
    so that the database fingerprint only moves because of the request under test."""
    await api.parts.enrolment.wait()


async def _target_request(api: Api, w: World, method: str, path: str,
                          target: str | None) -> tuple[str, Any]:
    """The concrete path and body for one request about owner ``target``'s things."""
    body: Any = None
    if target is not None:
        path = (path.replace("{owner_id}", str(w.owner[target]))
                .replace("{gateway_id}", str(w.gateway[target]))
                .replace("{device_id}", str(w.device[target]))
                .replace("{event_id}", str(w.event[target])))
        if "{token_id}" in path:
            path = path.replace("{token_id}", str(_spare_token(api, w.owner[target])))
        if "{name}" in path:  # a fresh stored profile of the target owner, unused
            path = path.replace("{name}", _spare_profile(api, w.owner[target]))
    if path.endswith("/cancel"):  # a fresh event each time, so every allowed cancel can succeed
        path = path.replace(f"/events/{w.event[target or 'a']}/", f"/events/{accepted_event(api)}/")
    if path.startswith("/api/v1/owner/events/") and target is not None:  # whose share
        path += f"?owner_id={w.owner[target]}"
    if method == "POST" and path == "/api/v1/owners":
        body = {"name": f"owner via api {new_port()}"}
    elif method == "POST" and path == "/api/v1/gateways":
        body = device_spec(w.owner[target or "a"], new_port())
    elif method == "POST" and path == "/api/v1/charge-points":
        body = {"owner_id": w.owner[target or "a"], "site": "depot",
                "identity": f"CP-{new_port()}", "rated_power_kw": 7.0}
    elif method == "POST" and path == "/api/v1/grid/calls":
        body = new_call()
    elif method == "POST" and path == "/api/v1/performance/remedies":
        body = {"remedied_on": api.parts.clock().date().isoformat(), "note": "matrix"}
    elif method == "POST" and path == "/api/v1/device-profiles":
        body = {"profile": _profile_body(f"via-api-{new_port()}")}
    elif method == "PATCH" and path.startswith("/api/v1/gateways/"):
        body = {"port": new_port()}
    elif path.endswith("/preferences/preview"):
        body = {"participate": False}
    elif method == "PATCH" and path.endswith("/preferences"):
        body = {"participate": True}
    elif method == "PATCH":
        body = {"name": f"renamed-{new_port()}"}
    return path, body


def _targets(method: str, path: str) -> list[str | None]:
    if "{" in path or (method == "POST" and path in ("/api/v1/gateways",
                                                     "/api/v1/charge-points")):
        return ["a", "b"]
    return [None]


async def test_authorisation_matrix(api: Api, world: World) -> None:
    w = world
    checked = 0
    for (method, path), exp in EXPECT.items():
        for target in _targets(method, path):
            for role in ROLES:
                concrete, body = await _target_request(api, w, method, path, target)
                await _probes_done(api)
                before = fingerprint(api.engine)
                status, data = await request(api, method, concrete, w.tokens[role], body)
                want = expected(exp, role, target)
                assert status == want, (role, method, concrete, status, data)
                if status >= 400:
                    await _probes_done(api)
                    assert fingerprint(api.engine) == before, f"{role} {method} {concrete} refused " \
                                                       "but changed the database"
                    assert set(data) == {"error"} and data["error"]["code"], data
                elif exp.scoped and role.startswith("owner_"):
                    mine = w.owner[role[-1]]
                    if path in ITEM_OWNER:
                        assert all(x[ITEM_OWNER[path]] == mine for x in data), (role, path, data)
                    if path == "/api/v1/events":
                        assert {x["id"] for x in data} == {w.event[role[-1]]}, (role, data)
                    other = "b" if role == "owner_a" else "a"
                    if path == "/api/v1/devices":
                        assert w.device[role[-1]] in {x["id"] for x in data}
                        assert w.device[other] not in {x["id"] for x in data}
                checked += 1
    assert checked == sum(len(_targets(m, p)) for m, p in EXPECT) * len(ROLES)


async def test_owner_a_never_touches_owner_b(api: Api, world: World) -> None:
    """Every way owner A could reach owner B's things, including ids in bodies and queries."""
    w = world
    a = w.tokens["owner_a"]
    b_profiles = [_spare_profile(api, w.owner["b"]) for _ in range(2)]
    await _probes_done(api)
    before = fingerprint(api.engine)
    attempts = [
        ("PATCH", f"/api/v1/devices/{w.device['b']}/preferences", {"participate": False}),
        ("PATCH", f"/api/v1/devices/{w.device['b']}/preferences", {"reserve_soc_pct": 50}),
        ("POST", f"/api/v1/gateways/{w.gateway['b']}/probe", None),
        ("POST", "/api/v1/gateways", device_spec(w.owner["b"], new_port())),
        ("POST", "/api/v1/charge-points", {"owner_id": w.owner["b"], "site": "depot",
                                           "identity": "CP-B", "rated_power_kw": 7.0}),
        ("GET", f"/api/v1/devices/{w.device['b']}/telemetry?limit=5", None),
        ("GET", f"/api/v1/events/{w.event['b']}", None),
        ("POST", f"/api/v1/events/{w.event['b']}/cancel", None),
        ("GET", f"/api/v1/owners/{w.owner['b']}", None),
        ("GET", f"/api/v1/gateways/{w.gateway['b']}", None),
        ("PATCH", f"/api/v1/gateways/{w.gateway['b']}", {"port": new_port()}),
        ("POST", f"/api/v1/gateways/{w.gateway['b']}/retire", None),
        ("DELETE", f"/api/v1/gateways/{w.gateway['b']}", None),
        ("PATCH", f"/api/v1/devices/{w.device['b']}", {"max_setpoint_kw": 1.0}),
        ("POST", f"/api/v1/devices/{w.device['b']}/retire", None),
        ("DELETE", f"/api/v1/devices/{w.device['b']}", None),
        ("GET", f"/api/v1/device-profiles/{b_profiles[0]}", None),
        ("DELETE", f"/api/v1/device-profiles/{b_profiles[1]}", None),
    ]
    for method, path, body in attempts:
        status, data = await request(api, method, path, a, body)
        assert status in (400, 403, 404), (path, status, data)
        # a refusal never names B's things beyond the id A already sent
        assert "Rail Works" not in str(data)
    await _probes_done(api)
    assert fingerprint(api.engine) == before
    # what A can list contains nothing of B's
    for path in ("/api/v1/devices", "/api/v1/gateways", "/api/v1/events", "/api/v1/payouts"):
        status, data = await request(api, "GET", path, a)
        assert status == 200
        assert all(x.get("owner_id", w.owner["a"]) == w.owner["a"] for x in data), (path, data)
        assert w.device["b"] not in {x.get("id") for x in data} or path != "/api/v1/devices"
