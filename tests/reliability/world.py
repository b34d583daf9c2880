"""A populated world for the authorisation tests: two owners with a gateway and a device each,
an event each owner's device took part in, and one token per role (plus a revoked one).

Everything goes in through the real API or the real models; nothing is mocked.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy import select as sa_select
from sqlmodel import SQLModel, select

from tests.vpp.api.conftest import Api
from tests.vpp.daemon.harness import auth, call_now
from vpp import fleet
from vpp.db import session_scope
from vpp.models import Device, DispatchPlan, GridEvent, Owner, Role, Setpoint

_ports = itertools.count(20000)
_ids = itertools.count(1)


def device_spec(owner_id: int | None, port: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"site": "s", "host": "127.0.0.1", "port": port, "devices": [
        {"name": "b", "kind": "battery", "unit_id": 1, "profile": "huawei-luna2000",
         "rated_power_kw": 5.0, "min_setpoint_kw": -5.0, "max_setpoint_kw": 5.0,
         "params": {"capacity_kwh": 15.0}}]}
    if owner_id is not None:
        spec["owner_id"] = owner_id
    return spec


def new_port() -> int:
    """A port nobody listens on (probes fail fast); unique per gateway."""
    return next(_ports)


def new_call() -> dict[str, Any]:
    return call_now(f"authz-{next(_ids)}-{datetime.now(UTC).timestamp()}", 1.0)


def accepted_event(api: Api) -> int:
    """An accepted (not yet started) event row, as the intake stores one."""
    call = new_call()
    with session_scope(api.engine) as s:
        ev = GridEvent(external_id=call["external_id"], source="rest", event_type="real_time",
                       programme="test-rt", start=datetime.fromisoformat(call["start"]),
                       end=datetime.fromisoformat(call["end"]), requested_kw=1.0,
                       status="accepted")
        s.add(ev)
        s.flush()
        return int(ev.id or 0)


@dataclass
class World:
    tokens: dict[str, str | None]  # role name -> bearer token (None: anonymous)
    owner: dict[str, int]  # "a"/"b" -> owner id
    gateway: dict[str, int]
    device: dict[str, int]
    event: dict[str, int]


async def request(api: Api, method: str, path: str, token: str | None,
                  body: Any = None) -> tuple[int, Any]:
    headers = auth(token) if token else {}
    async with api.http.request(method, api.url + path, headers=headers,
                                json=body if body is not None else None) as r:
        data = await r.json(content_type=None) if r.content_length != 0 else None
        return r.status, data


def fingerprint(engine: Engine) -> dict[str, Any]:
    """Row counts of every table plus every row of the mutable ones that matter: any state
    change shows up as a difference."""
    out: dict[str, Any] = {}
    with session_scope(engine) as s:
        for name, table in SQLModel.metadata.tables.items():
            out[name] = s.execute(sa_select(func.count()).select_from(table)).scalar_one()
        out["prefs"] = sorted((d.id, repr(d.preferences)) for d in s.exec(select(Device)))
        out["events"] = sorted((e.id, e.status) for e in s.exec(select(GridEvent)))
    return out


async def build_world(api: Api) -> World:
    t = api.tokens
    with session_scope(api.engine) as s:
        o1 = s.get(Owner, t.owner_id)
        _, revoked = fleet.issue_token(s, Role.OWNER, o1, "revoked")
    with session_scope(api.engine) as s:
        from vpp.models import ApiToken
        from vpp.security import hash_token

        row = s.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(revoked))).one()
        fleet.revoke_token(s, int(row.id or 0))
    tokens: dict[str, str | None] = {"operator": t.operator, "owner_a": t.owner,
                                     "owner_b": t.other_owner, "grid": t.grid,
                                     "anonymous": None, "revoked": revoked}
    owner = {"a": t.owner_id, "b": t.other_owner_id}
    gateway, device, event = {}, {}, {}
    for who in ("a", "b"):
        status, gw = await request(api, "POST", "/api/v1/gateways", t.operator,
                                   device_spec(owner[who], new_port()))
        assert status == 202, gw
        gateway[who], device[who] = gw["id"], gw["device_ids"][0]
        status, dec = await request(api, "POST", "/api/v1/grid/calls", t.grid, new_call())
        assert status == 201, dec
        event[who] = dec["event_id"]
        # the device "took part": a plan with one setpoint for it, as the planner writes them
        with session_scope(api.engine) as s:
            start = datetime.now(UTC) - timedelta(minutes=1)
            plan = DispatchPlan(event_id=event[who], horizon_start=start, status="active")
            s.add(plan)
            s.flush()
            s.add(Setpoint(plan_id=int(plan.id or 0), device_id=device[who],
                           interval_start=start, setpoint_kw=-1.0))
    return World(tokens, owner, gateway, device, event)
