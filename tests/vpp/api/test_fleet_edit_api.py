"""The fleet routes of issue 23 on the real API: edit, retire and remove gateways and devices
(owners their own, operators all; history kept; audited), the gateway host policy at
enrolment and edits, and device profiles submitted by owners."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from typing import Any

from sqlmodel import select

from sim.clock import ManualClock
from sim.server import SimGateway
from tests.conftest import REPO_ROOT, free_port
from tests.sim.helpers import BY_PROFILE, sim_device
from tests.vpp.api.conftest import Api
from tests.vpp.daemon.harness import auth
from vpp.db import session_scope
from vpp.models import AuditLog, Device, TelemetryReading

BATTERY = {"name": "b", "kind": "battery", "unit_id": 1, "profile": "huawei-luna2000",
           "rated_power_kw": 5.0, "min_setpoint_kw": -5.0, "max_setpoint_kw": 5.0,
           "params": {"capacity_kwh": 15.0}}


async def req(api: Api, method: str, path: str, token: str, body: Any = None
              ) -> tuple[int, Any]:
    async with api.http.request(method, api.url + path, headers=auth(token), json=body) as r:
        return r.status, await r.json()


async def enrol(api: Api, token: str, host: str, port: int, **device: Any) -> tuple[int, Any]:
    return await req(api, "POST", "/api/v1/gateways", token,
                     {"site": "s", "host": host, "port": port,
                      "devices": [{**BATTERY, **device}]})


def packaged(name: str) -> dict[str, Any]:
    with (REPO_ROOT / "config/device_profiles" / f"{name}.toml").open("rb") as fh:
        return tomllib.load(fh)


async def test_owners_edit_retire_and_remove_their_own(api_both: Api) -> None:
    api, t = api_both, api_both.tokens
    status, gw = await enrol(api, t.owner, "10.0.0.5", 502)
    assert status == 202, gw
    dev = gw["device_ids"][0]
    _, theirs = await enrol(api, t.other_owner, "10.0.0.6", 502)
    other_dev = theirs["device_ids"][0]
    # someone else's: not found, whatever the verb
    for method, path, body in [
        ("PATCH", f"/api/v1/devices/{other_dev}", {"max_setpoint_kw": 3.0}),
        ("POST", f"/api/v1/devices/{other_dev}/retire", None),
        ("DELETE", f"/api/v1/devices/{other_dev}", None),
        ("PATCH", f"/api/v1/gateways/{theirs['id']}", {"port": 1502}),
        ("POST", f"/api/v1/gateways/{theirs['id']}/retire", None),
        ("DELETE", f"/api/v1/gateways/{theirs['id']}", None),
    ]:
        status, err = await req(api, method, path, t.owner, body)
        assert status == 404 and err["error"]["code"] == "not_found", (path, err)
    # edits are validated like enrolment
    status, out = await req(api, "PATCH", f"/api/v1/devices/{dev}", t.owner,
                            {"max_setpoint_kw": 3.0, "min_setpoint_kw": -3.0})
    assert status == 200 and out["max_setpoint_kw"] == 3.0, out
    status, err = await req(api, "PATCH", f"/api/v1/devices/{dev}", t.owner,
                            {"max_setpoint_kw": 50.0})
    assert status == 400 and "exceed rated_power_kw=5.0" in err["error"]["message"], err
    status, err = await req(api, "PATCH", f"/api/v1/devices/{dev}", t.owner,
                            {"profile": "keba-p30"})
    assert status == 400 and "is for a ev_charger, not a battery" in err["error"]["message"]
    status, err = await req(api, "PATCH", f"/api/v1/devices/{dev}", t.owner, {"colour": "red"})
    assert status == 400
    # the gateway host policy applies to edits
    status, err = await req(api, "PATCH", f"/api/v1/gateways/{gw['id']}", t.owner,
                            {"host": "169.254.169.254"})
    assert status == 400 and "link-local" in err["error"]["message"], err
    status, out = await req(api, "PATCH", f"/api/v1/gateways/{gw['id']}", t.owner,
                            {"host": "10.0.0.7", "port": 1502})
    assert status == 200 and (out["host"], out["port"]) == ("10.0.0.7", 1502), out
    # history is kept: with telemetry, a device is retired, not deleted
    with session_scope(api.engine) as s:
        s.add(TelemetryReading(device_id=dev, ts=datetime.now(UTC), power_kw=1.0))
    status, err = await req(api, "DELETE", f"/api/v1/devices/{dev}", t.owner)
    assert status == 409 and "has history (telemetry)" in err["error"]["message"], err
    status, out = await req(api, "POST", f"/api/v1/devices/{dev}/retire", t.owner)
    assert status == 200 and out["status"] == "retired"
    status, out = await req(api, "POST", f"/api/v1/gateways/{gw['id']}/retire", t.owner)
    assert status == 200 and out["enrolment_state"] == "retired"
    # an operator may act on every owner's fleet; without history it is deleted
    status, out = await req(api, "DELETE", f"/api/v1/gateways/{theirs['id']}", t.operator)
    assert status == 200 and out == {"removed": f"gateway {theirs['id']}"}
    status, _ = await req(api, "GET", f"/api/v1/devices/{other_dev}", t.operator)
    assert status == 404
    with session_scope(api.engine) as s:
        audit = {(a.action, a.actor.split(":")[0]) for a in s.exec(select(AuditLog))}
    for action in ("device_edited", "gateway_edited", "device_retired", "gateway_retired",
                   "gateway_removed"):
        assert action in {a for a, _ in audit}, action


async def test_enrolment_polices_the_host_and_the_profile(api: Api) -> None:
    t = api.tokens
    for host, reason in [("169.254.169.254", "link-local"), ("8.8.8.8", "not in the allowed"),
                         ("0.0.0.0", "unspecified"), ("http://10.0.0.1", "not an IP address")]:
        status, err = await enrol(api, t.owner, host, 502)
        assert status == 400 and reason in err["error"]["message"], (host, err)
    status, err = await enrol(api, t.owner, "10.0.0.1", 22)
    assert status == 400 and "port 22 is not allowed" in err["error"]["message"]
    status, err = await enrol(api, t.owner, "10.0.0.1", 502, profile="nope")
    assert status == 400 and "unknown device profile 'nope'" in err["error"]["message"]
    status, err = await enrol(api, t.owner, "10.0.0.1", 502, kind="ev_charger",
                              min_setpoint_kw=0.0, params={})
    assert status == 400 and "is for a battery, not a ev_charger" in err["error"]["message"]
    with session_scope(api.engine) as s:
        assert s.exec(select(Device)).all() == []


async def test_owners_submit_profiles_usable_for_their_enrolments(api: Api) -> None:
    t = api.tokens
    mine = {**packaged("huawei-luna2000"), "name": "mall-luna"}
    status, out = await req(api, "POST", "/api/v1/device-profiles", t.owner, {"profile": mine})
    assert status == 201 and out["owner_id"] == t.owner_id and out["kind"] == "battery", out
    # validated like the packaged files; names unique, packaged ones taken
    bad = {**mine, "name": "broken", "measure": {"power_kw": {"point": "nope"}}}
    status, err = await req(api, "POST", "/api/v1/device-profiles", t.owner, {"profile": bad})
    assert status == 400 and "unknown point 'nope'" in err["error"]["message"], err
    for name in ("huawei-luna2000", "mall-luna", "sunspec"):
        status, err = await req(api, "POST", "/api/v1/device-profiles", t.other_owner,
                                {"profile": {**mine, "name": name}})
        assert status == 409 and "taken" in err["error"]["message"], (name, err)
    # visible to its owner and operators only
    for token, names in [(t.owner, ["mall-luna"]), (t.operator, ["mall-luna"]),
                         (t.other_owner, [])]:
        status, out = await req(api, "GET", "/api/v1/device-profiles", token)
        assert status == 200 and [p["name"] for p in out] == names
    status, _ = await req(api, "GET", "/api/v1/device-profiles/mall-luna", t.other_owner)
    assert status == 404
    # the other owner cannot use it; its owner can, and the probe resolves it
    status, err = await enrol(api, t.other_owner, "127.0.0.1", free_port(), profile="mall-luna")
    assert status == 400 and "unknown device profile 'mall-luna'" in err["error"]["message"]
    sim = SimGateway({1: sim_device(BY_PROFILE["huawei-luna2000"], ManualClock(), 1)},
                     port=free_port())
    async with sim:
        status, gw = await enrol(api, t.owner, "127.0.0.1", sim.port, profile="mall-luna")
        assert status == 202, gw
        await api.parts.enrolment.wait()  # the app's own probe
    status, gw = await req(api, "GET", f"/api/v1/gateways/{gw['id']}", t.owner)
    assert gw["enrolment_state"] == "active", gw
    # in use: not deleted
    status, err = await req(api, "DELETE", "/api/v1/device-profiles/mall-luna", t.owner)
    assert status == 409 and "used by 1 device" in err["error"]["message"]


async def test_a_failed_enrolment_does_not_block_the_corrected_one(api: Api) -> None:
    """Enrolled through the API at a port where the probe fails: the owner's corrected
    enrolment at that endpoint replaces it (before: 409 "already registered"), and another
    owner's failed, history-less gateway holds no claim on an endpoint either."""
    t = api.tokens
    sim = SimGateway({1: sim_device(BY_PROFILE["huawei-luna2000"], ManualClock(), 1)},
                     port=free_port())
    async with sim:  # the app's own probes
        status, first = await enrol(api, t.other_owner, "127.0.0.1", sim.port, unit_id=7)
        assert status == 202, first
        await api.parts.enrolment.wait()
        status, first = await req(api, "GET", f"/api/v1/gateways/{first['id']}", t.operator)
        assert first["enrolment_state"] == "failed", first
        assert "wrong unit id" in (first["last_error"] or ""), first
        status, gw = await enrol(api, t.owner, "127.0.0.1", sim.port)
        assert status == 202, gw
        await api.parts.enrolment.wait()
    status, gws = await req(api, "GET", "/api/v1/gateways", t.operator)
    assert [(g["owner_id"], g["enrolment_state"]) for g in gws] == [(t.owner_id, "active")]
    # an active gateway at the endpoint is a conflict that says what to do
    status, err = await enrol(api, t.other_owner, "127.0.0.1", sim.port)
    assert status == 409 and f"gateway {gw['id']}, active" in err["error"]["message"], err
    with session_scope(api.engine) as s:
        replaced = s.exec(select(AuditLog).where(AuditLog.action == "gateway_replaced")).all()
    assert [a.subject for a in replaced] == [f"gateway:{first['id']}"]
