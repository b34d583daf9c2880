"""Registering an OCPP charge point through the REST API (``POST /api/v1/charge-points``) and the
CLI (``vpp gateway add-ocpp``), both on the shared enrolment path
(:func:`vpp.ocpp_gateways.add_ocpp_gateway`): the password is answered once and only its salted
hash is stored; bad input is a 400/404/409 with the one error body, or a non-zero exit with one
line; ``vpp gateway edit`` (and ``PATCH /gateways/{id}``) refuse a charge point, which has no
endpoint to move. The real aiohttp app over a real SQLite database; nothing is mocked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from tests.conftest import run_cli as run
from tests.vpp.api.conftest import Api, _serve
from vpp.db import make_engine, session_scope
from vpp.models import AuditLog, Device, Gateway
from vpp.ocpp_gateways import check_password


@pytest.fixture
async def api(sqlite_engine: Engine, tmp_path: Path) -> AsyncIterator[Api]:
    """The API tests' server (the real app over the daemon's parts) on SQLite."""
    async for a in _serve(sqlite_engine, tmp_path):
        yield a


async def post(api: Api, token: str, body: Any, path: str = "/api/v1/charge-points"
               ) -> tuple[int, Any]:
    async with api.http.post(api.url + path, json=body,
                             headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json()


async def test_an_owner_registers_a_charge_point_and_gets_its_password_once(api: Api) -> None:
    body = {"site": "depot", "identity": "CP-REST-1", "connector_ids": [1, 2],
            "rated_power_kw": 11.0}
    status, out = await post(api, api.tokens.owner, body)
    assert status == 201, out
    gw = out["gateway"]
    assert gw["owner_id"] == api.tokens.owner_id and gw["enrolment_state"] == "registered"
    assert (gw["host"], gw["port"]) == ("CP-REST-1", 0) and len(gw["device_ids"]) == 2
    assert out["url"].endswith("/ocpp/CP-REST-1") and 16 <= len(out["password"]) <= 40
    with session_scope(api.engine) as s:
        row = s.get(Gateway, gw["id"])
        assert row is not None and row.protocol == "ocpp"
        assert row.ocpp_password_hash and out["password"] not in row.ocpp_password_hash
        assert check_password(out["password"], row.ocpp_password_hash)
        devs = s.exec(select(Device).where(Device.gateway_id == gw["id"])).all()
        assert sorted(d.unit_id for d in devs) == [1, 2]
        assert {(d.kind, d.profile, d.status, d.max_setpoint_kw) for d in devs} == {
            ("ev_charger", "ocpp", "pending", 11.0)}
        assert all(d.params["max_charge_kw_per_connector"] == 11.0 for d in devs)
        actions = [a.action for a in s.exec(select(AuditLog))]
        assert "gateway_registered" in actions and "gateway_enrol_requested" in actions
    # the password is never answered again: the gateway's own view has no such field
    async with api.http.get(f"{api.url}/api/v1/gateways/{gw['id']}",
                            headers={"Authorization": f"Bearer {api.tokens.owner}"}) as r:
        assert "password" not in await r.json()

    # the same identity again: 409 (an enrolled-or-not charge point is not silently replaced
    # for another owner); an operator must name the owner; an owner only itself
    status, err = await post(api, api.tokens.operator,
                             {**body, "owner_id": api.tokens.other_owner_id})
    assert status == 409 and err["error"]["code"] == "conflict", err
    assert "charge point CP-REST-1 is already registered" in err["error"]["message"]
    assert "vpp gateway remove" in err["error"]["message"]
    status, err = await post(api, api.tokens.operator, {**body, "identity": "CP-REST-2"})
    assert status == 400 and "owner_id" in err["error"]["message"]
    status, err = await post(api, api.tokens.owner, {**body, "identity": "CP-REST-3",
                                                     "owner_id": api.tokens.other_owner_id})
    assert status == 400 and "only for itself" in err["error"]["message"]
    status, err = await post(api, api.tokens.operator, {**body, "identity": "CP-REST-4",
                                                        "owner_id": 99999})
    assert status == 404 and err["error"]["code"] == "not_found"
    for bad in ({"identity": "has/slash"}, {"identity": "x" * 49},
                {"connector_ids": [1, 1]}, {"connector_ids": [0]}, {"rated_power_kw": 0},
                {"password": "chosen-by-the-owner-123"}):
        status, err = await post(api, api.tokens.owner, {**body, "identity": "CP-REST-5", **bad})
        assert status == 400 and set(err) == {"error"}, (bad, err)
    status, err = await post(api, api.tokens.grid, {**body, "identity": "CP-REST-6"})
    assert status == 403

    # moving a charge point makes no sense: refused, nothing changed
    async with api.http.patch(f"{api.url}/api/v1/gateways/{gw['id']}", json={"port": 9000},
                              headers={"Authorization": f"Bearer {api.tokens.owner}"}) as r:
        err = await r.json()
        assert r.status == 400 and "OCPP charge point" in err["error"]["message"], err
    with session_scope(api.engine) as s:
        row = s.get(Gateway, gw["id"])
        assert row is not None and (row.host, row.port) == ("CP-REST-1", 0)


def test_the_cli_registers_a_charge_point_and_refuses_to_edit_it(
        cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "owner", "add", "depot-co")[0] == 0
    code, out, err = run(capsys, "gateway", "add-ocpp", "--owner", "depot-co", "--site", "yard",
                         "--identity", "CP-CLI-1", "--connectors", "1-2", "--rated-kw", "7")
    assert code == 0, err
    assert "password (shown once): " in out
    password = out.split("password (shown once): ", 1)[1].split()[0]
    engine = make_engine(f"sqlite:///{cli_env}")
    try:
        with session_scope(engine) as s:
            gw = s.exec(select(Gateway).where(Gateway.host == "CP-CLI-1")).one()
            # a generated password (192 random bits) is kept as a salted SHA-256; one the
            # owner chose as PBKDF2 (slow against guessing); both check, neither accepts another
            assert str(gw.ocpp_password_hash).startswith("sha256$")
            assert check_password(password, gw.ocpp_password_hash)
            assert not check_password(password[:-1] + "x", gw.ocpp_password_hash)
            gateway_id = gw.id
            assert len(s.exec(select(Device).where(Device.gateway_id == gw.id)).all()) == 2
    finally:
        engine.dispose()
    chosen = "owner-chosen-password-1"
    assert run(capsys, "gateway", "add-ocpp", "--owner", "depot-co", "--site", "yard",
               "--identity", "CP-CLI-3", "--rated-kw", "7", "--password", chosen)[0] == 0
    engine = make_engine(f"sqlite:///{cli_env}")
    try:
        with session_scope(engine) as s:
            stored = s.exec(select(Gateway).where(Gateway.host == "CP-CLI-3")).one()
            assert str(stored.ocpp_password_hash).startswith("pbkdf2_sha256$")
            assert check_password(chosen, stored.ocpp_password_hash)
            assert not check_password(password, stored.ocpp_password_hash)
    finally:
        engine.dispose()
    code, _, err = run(capsys, "gateway", "edit", str(gateway_id), "--port", "9000")
    assert code != 0 and "OCPP charge point 'CP-CLI-1'" in err and "Traceback" not in err
    code, _, err = run(capsys, "gateway", "add-ocpp", "--owner", "depot-co", "--site", "yard",
                       "--identity", "bad/identity", "--rated-kw", "7")
    assert code != 0 and "identity" in err and "Traceback" not in err
    code, _, err = run(capsys, "gateway", "add-ocpp", "--owner", "depot-co", "--site", "yard",
                       "--identity", "CP-CLI-2", "--rated-kw", "7", "--password", "short")
    assert code != 0 and "password" in err and "Traceback" not in err
