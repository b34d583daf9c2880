"""Alerts pushed to the operator console over a WebSocket (``/dashboard/alerts``).

What an operator must act on, each from the record the daemon already keeps:

* ``gateway_offline``: a gateway with devices, every one of them offline (the poller's status);
* ``event_shortfall``: an open event whose current plan falls short of the offer (the plan's
  ``shortfall_kw``);
* ``device_out_of_limits``: a device taken out of an open event because it was measured
  outside the setpoint it was given (the override judge's exclusions, :mod:`vpp.daemon.overrides`).

A browser's WebSocket cannot send an Authorization header, so the page sends its token as the
first message (``{"token": "..."}``, within :data:`AUTH_TIMEOUT_S`); only operator tokens are
served. The server then sends the whole list (``{"alerts": [...], "at": ...}``) at once and again
whenever it changes, checking every :data:`CHECK_PERIOD_S`; the list is computed at most once
per period for all connections. The socket is outside ``/api/v1`` (not an HTTP operation of the
OpenAPI document, as ``/metrics`` is not).
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from datetime import datetime
from typing import Literal

from aiohttp import WSMsgType, web
from sqlalchemy import case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from vpp.api.auth import lookup_token
from vpp.api.context import PARTS
from vpp.api.errors import AuthError
from vpp.daemon.overrides import excluded_out
from vpp.domain.base import OutModel
from vpp.domain.grid_calls import OPEN_EVENT_STATUSES
from vpp.models import Device, DispatchPlan, GridEvent, Role, table_of

AUTH_TIMEOUT_S = 10.0
CHECK_PERIOD_S = 2.0
MAX_ALERTS = 200  # per kind: the page is for acting, not for a census
SHORTFALL_MIN_KW = 0.01


class Alert(OutModel):
    kind: Literal["gateway_offline", "event_shortfall", "device_out_of_limits"]
    subject: str  # "gateway:3", "event:7", "device:12"
    message: str  # English, with the figures (kW); the page translates the kind
    value_kw: float | None = None
    since: datetime | None = None


def _offline_gateways(s: Session) -> list[Alert]:
    d = table_of(Device)
    up = func.sum(case((d.c.status == "offline", 0), else_=1))
    rows = s.execute(sa_select(d.c.gateway_id, func.count()).where(d.c.status != "retired")
                     .group_by(d.c.gateway_id).having(up == 0)
                     .order_by(d.c.gateway_id).limit(MAX_ALERTS)).all()
    return [Alert(kind="gateway_offline", subject=f"gateway:{g}",
                  message=f"gateway {g}: all {n} devices offline") for g, n in rows]


def _open_events(s: Session) -> list[Alert]:
    out: list[Alert] = []
    events = s.exec(select(GridEvent).where(col(GridEvent.status).in_(
        [x.value for x in OPEN_EVENT_STATUSES])).order_by(col(GridEvent.id))).all()
    for ev in events:
        plan = s.exec(select(DispatchPlan).where(DispatchPlan.event_id == ev.id)
                      .order_by(col(DispatchPlan.id).desc())).first()
        if plan is not None and plan.shortfall_kw > SHORTFALL_MIN_KW:
            out.append(Alert(kind="event_shortfall", subject=f"event:{ev.id}",
                             message=f"event {ev.id} ({ev.external_id}): plan {plan.id} short "
                                     f"by {plan.shortfall_kw:.1f} kW",
                             value_kw=plan.shortfall_kw, since=plan.created_at))
        for x in excluded_out(ev)[:MAX_ALERTS]:
            out.append(Alert(kind="device_out_of_limits", subject=f"device:{x.device_id}",
                             message=f"device {x.device_id} ({x.kind}) in event {ev.id}: "
                                     f"measured {x.measured_kw:.1f} kW against setpoint "
                                     f"{x.setpoint_kw:.1f} kW ({x.reason})",
                             value_kw=x.measured_kw, since=x.at))
    return out


def current_alerts(s: Session) -> list[Alert]:
    return _offline_gateways(s) + _open_events(s)


class _Shared:
    """The latest list, computed at most once per :data:`CHECK_PERIOD_S` for all sockets."""

    def __init__(self) -> None:
        self.at = -1e9
        self.body = ""
        self.lock = asyncio.Lock()

    async def get(self, app: web.Application) -> str:
        async with self.lock:
            if time.monotonic() - self.at >= CHECK_PERIOD_S * 0.9:
                alerts = await app[PARTS].db.run(current_alerts)
                self.body = json.dumps({"alerts": [a.model_dump(mode="json") for a in alerts]})
                self.at = time.monotonic()
            return self.body


_shared: weakref.WeakKeyDictionary[web.Application, _Shared] = weakref.WeakKeyDictionary()


async def _authenticate(ws: web.WebSocketResponse, app: web.Application) -> bool:
    """The first message must carry an operator token; else close with the reason."""
    try:
        msg = await ws.receive(timeout=AUTH_TIMEOUT_S)
    except TimeoutError:
        await ws.close(code=4401, message=b"send {\"token\": ...} first")
        return False
    token = ""
    if msg.type == WSMsgType.TEXT:
        try:
            data = json.loads(msg.data)
            token = data.get("token", "") if isinstance(data, dict) else ""
        except ValueError:
            token = ""
    if not isinstance(token, str) or not token or len(token) > 200:
        await ws.close(code=4400, message=b"first message: {\"token\": \"...\"}")
        return False
    try:
        who = await app[PARTS].db.run(lookup_token, token)
    except AuthError as exc:
        await ws.close(code=4401, message=str(exc).encode()[:120])
        return False
    if who.role is not Role.OPERATOR:
        await ws.close(code=4403, message=b"alerts are for operator tokens")
        return False
    return True


async def alerts_socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    if not await _authenticate(ws, request.app):
        return ws
    shared = _shared.setdefault(request.app, _Shared())
    sent = None
    while not ws.closed:
        try:
            body = await shared.get(request.app)
        except Exception as exc:  # noqa: BLE001 -- database down: say so, keep the socket
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            body = json.dumps({"error": f"alerts unavailable: {first[:200]}"})
        if body != sent:
            await ws.send_str(body)
            sent = body
        try:  # sleep, but notice the page going away (or a message, which is ignored)
            msg = await ws.receive(timeout=CHECK_PERIOD_S)
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
        except TimeoutError:
            continue
    return ws


def add_alert_socket(app: web.Application) -> None:
    app.router.add_get("/dashboard/alerts", alerts_socket, name="dashboard_alerts")
