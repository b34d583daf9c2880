"""Health, who-am-I, the supervised loops and the live fleet view."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

import vpp
from vpp.api.context import PARTS
from vpp.api.routing import Call, Route, roles
from vpp.api.schemas import FleetStatus, Health, LoopOut, Me, SeriesQuery
from vpp.db import redact
from vpp.models import Device, Owner, Role, table_of

OP = roles(Role.OPERATOR)
ANY = roles(Role.OPERATOR, Role.OWNER, Role.GRID)


async def health(call: Call) -> Health:
    parts = call.request.app[PARTS]
    loops = {st.name: st.state for st in parts.supervisor.statuses()}
    bad = any(st.consecutive_failures for st in parts.supervisor.statuses())
    return Health(status="degraded" if bad else "ok", version=getattr(vpp, "__version__", "0"),
                  database=redact(str(parts.db.engine.url)).split("://")[0], loops=loops)


async def me(call: Call) -> Me:
    p = call.who

    def work(s: Session) -> str | None:
        if p.owner_id is None:
            return None
        o = s.get(Owner, p.owner_id)
        return o.name if o else None

    name = await call.request.app[PARTS].db.run(work)
    return Me(role=p.role.value, owner_id=p.owner_id, owner_name=name, token_id=p.token_id)


async def loops(call: Call) -> list[Any]:
    return call.request.app[PARTS].supervisor.statuses()


async def fleet_status(call: Call) -> dict[str, Any]:
    parts = call.request.app[PARTS]
    q: SeriesQuery = call.query

    def work(s: Session) -> Counter[str]:
        t = table_of(Device)
        return Counter({str(k): int(n) for k, n in
                        s.execute(select(t.c.status, func.count()).group_by(t.c.status))})

    by_status = await parts.db.run(work)
    out: dict[str, Any] = {
        "now": parts.clock(), "devices_total": sum(by_status.values()),
        "by_status": dict(by_status), "devices_online": 0, "fleet_power_kw": None,
        "active_event": None, "baseline_kw": None, "target_kw": None, "delivered_kw": None,
        "series": [],
    }
    out["devices_online"] = parts.fleet.online_count()
    out["fleet_power_kw"] = parts.fleet.fleet_power_kw()
    out.update(await parts.control.live_view(q.points))
    return out


ROUTES = [
    Route("GET", "/api/v1/health", health, "Liveness and the state of the loops", "system", None,
          response=Health),
    Route("GET", "/api/v1/me", me, "The caller's role and owner", "system", ANY, response=Me),
    Route("GET", "/api/v1/daemon/loops", loops, "The supervised loops", "system", OP,
          response=list[LoopOut]),
    Route("GET", "/api/v1/fleet/status", fleet_status,
          "Live fleet power against baseline and target for the active event", "fleet", OP,
          query=SeriesQuery, response=FleetStatus),
]
