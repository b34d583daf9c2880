"""Owners, gateways (enrolment), devices, preferences and telemetry.

Operators see and manage everything; an owner token sees only its owner's gateways and devices
(others' answer 404, as if they did not exist). Gateways are registered by the same
:func:`vpp.fleet.add_gateway` the CLI uses; the enrolment probe then runs in the background
(:mod:`vpp.daemon.enrolment_jobs`) and ``GET /gateways/{id}`` reports its progress.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bidding.participants import OPT_OUT_MAX, current_preferences, opt_out_until
from vpp import fleet
from vpp.api import routes_fleet_edit
from vpp.api.context import PARTS
from vpp.api.routing import Call, Route, roles
from vpp.api.schemas import (
    TELEMETRY_MAX_SPAN,
    DeviceOut,
    GatewayEnrol,
    GatewayOut,
    OwnerCreate,
    OwnerOut,
    Preferences,
    ProbeProgress,
    TelemetryPoint,
    TelemetryQuery,
)
from vpp.daemon.parts import DaemonParts
from vpp.db import row_version
from vpp.device_kinds import BatteryParams, DeviceKind, parse_params
from vpp.errors import NotFoundError, ValidationError
from vpp.gateway_hosts import HostPolicy
from vpp.models import AuditLog, Device, Gateway, Owner, Role, TelemetryReading, table_of

OP = roles(Role.OPERATOR)
OP_OWNER = roles(Role.OPERATOR, Role.OWNER)


def _parts(call: Call) -> DaemonParts:
    return call.request.app[PARTS]


# ----------------------------------------------------------------------------------- owners
async def list_owners(call: Call) -> list[Owner]:
    return await _parts(call).db.run(
        lambda s: list(s.exec(select(Owner).order_by(col(Owner.id))).all())
    )


async def create_owner(call: Call) -> Owner:
    body: OwnerCreate = call.body
    actor = call.who.actor

    def work(s: Session) -> Owner:
        owner = fleet.add_owner(s, body.name, body.contact)
        s.add(AuditLog(actor=actor, action="owner_added", subject=f"owner:{owner.id}",
                       detail={"name": owner.name}))
        return owner

    return await _parts(call).db.run(work)


async def get_owner(call: Call) -> Owner:
    owner_id = int(call.path["owner_id"])
    call.check_owner(owner_id, f"owner {owner_id}")
    return await _parts(call).db.run(lambda s: fleet.get_owner(s, owner_id))


# ----------------------------------------------------------------------------------- gateways
def _gateway_out(s: Session, gw: Gateway, progress: ProbeProgress | None) -> GatewayOut:
    ids = list(s.exec(select(Device.id).where(Device.gateway_id == gw.id).order_by(col(Device.id))))
    out = GatewayOut.model_validate(gw)
    out.device_ids = [int(i) for i in ids if i is not None]
    out.probe = progress
    return out


async def list_gateways(call: Call) -> list[GatewayOut]:
    scope = call.owner_scope()
    jobs = _parts(call).enrolment

    def work(s: Session) -> list[GatewayOut]:
        stmt = select(Gateway).order_by(col(Gateway.id))
        if scope is not None:
            stmt = stmt.where(Gateway.owner_id == scope)
        return [_gateway_out(s, g, jobs.progress(g.id)) for g in s.exec(stmt)]

    return await _parts(call).db.run(work)


async def _load_gateway(call: Call, gateway_id: int) -> GatewayOut:
    jobs = _parts(call).enrolment

    def work(s: Session) -> GatewayOut:
        gw = s.get(Gateway, gateway_id)
        if gw is None:
            raise NotFoundError(f"no gateway {gateway_id}")
        call.check_owner(gw.owner_id, f"gateway {gateway_id}")
        return _gateway_out(s, gw, jobs.progress(gateway_id))

    return await _parts(call).db.run(work)


async def get_gateway(call: Call) -> GatewayOut:
    return await _load_gateway(call, int(call.path["gateway_id"]))


async def enrol_gateway(call: Call) -> GatewayOut:
    body: GatewayEnrol = call.body
    if call.who.role is Role.OWNER:
        if body.owner_id is not None and body.owner_id != call.who.owner_id:
            raise ValidationError("body.owner_id: an owner enrols gateways only for itself")
        owner_id = call.who.owner_id
    else:
        if body.owner_id is None:
            raise ValidationError("body.owner_id: field required when an operator enrols")
        owner_id = body.owner_id
    actor = call.who.actor
    spec = {"host": body.host, "port": body.port,
            "devices": [d.model_dump(mode="json") for d in body.devices]}

    hosts = HostPolicy.from_settings(_parts(call).settings.enrolment)

    def work(s: Session) -> int:
        owner = fleet.get_owner(s, int(owner_id or 0))
        enrolled = fleet.add_gateway(s, owner, body.site, spec, body.region, hosts=hosts,
                                     actor=actor)
        s.add(AuditLog(actor=actor, action="gateway_enrol_requested",
                       subject=f"gateway:{enrolled.gateway.id}", detail={"via": "api"}))
        return int(enrolled.gateway.id or 0)

    gateway_id = await _parts(call).db.run(work)
    jobs = _parts(call).enrolment
    jobs.start(gateway_id)
    out = await _load_gateway(call, gateway_id)
    return out


async def reprobe_gateway(call: Call) -> GatewayOut:
    gateway_id = int(call.path["gateway_id"])
    await _load_gateway(call, gateway_id)  # existence and ownership
    jobs = _parts(call).enrolment
    jobs.start(gateway_id)
    return await _load_gateway(call, gateway_id)


# ----------------------------------------------------------------------------------- devices
def _device_out(d: Device | DeviceOut, parts: DaemonParts) -> DeviceOut:
    """The row with the fleet runtime's live state (last reading, held setpoint)."""
    out = d if isinstance(d, DeviceOut) else DeviceOut.model_validate(d)
    rt = parts.fleet
    st = rt.latest(int(d.id or 0))
    if st is not None:
        out.power_kw, out.soc_pct, out.last_seen_at = st.power_kw, st.soc_pct, st.ts
    out.setpoint_kw = rt.last_setpoint(int(d.id or 0))
    return out


DEVICE_LIST = TypeAdapter(list[DeviceOut])


@dataclass
class _ListingCache:
    """The serialized device listing per owner scope (``None``: the operator's), each kept
    with the version it was built under: (the fleet runtime's version, which moves after every
    poll cycle and setpoint; the device table's committed-change count in this process)."""

    entries: dict[int | None, tuple[tuple[int, int], float, bytes]] = field(default_factory=dict)


LISTING_MAX_AGE_S = 1.0  # bound for changes this process cannot see (another process's writes)


_listing_caches: weakref.WeakKeyDictionary[web.Application, _ListingCache] = (
    weakref.WeakKeyDictionary())


def _listing_version(parts: DaemonParts) -> tuple[int, int]:
    rt = parts.fleet
    return rt.version, row_version(table_of(Device).name)


async def list_devices(call: Call) -> web.Response:
    """Served from a cache of the serialized listing while nothing it shows can have changed.

    Listing 1,000 devices (query, validation, live-state overlay, JSON) was the largest share
    of the daemon's Python time under the load benchmark; the listing changes at most once per
    poll cycle, so between cycles it is the same bytes. A change made in this process (API,
    enrolment, poller status, setpoint) is visible on the next request; one made by another
    process (the CLI) at most :data:`LISTING_MAX_AGE_S` later.
    """
    scope = call.owner_scope()
    parts = _parts(call)
    cache = _listing_caches.setdefault(call.request.app, _ListingCache())
    version = _listing_version(parts)  # before reading: a change meanwhile moves it
    now = time.monotonic()
    hit = cache.entries.get(scope)
    if hit is not None and hit[0] == version and now - hit[1] < LISTING_MAX_AGE_S:
        body = hit[2]
    else:
        body = DEVICE_LIST.dump_json(await _list_devices(parts, scope))
        cache.entries[scope] = (version, now, body)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


async def _list_devices(parts: DaemonParts, scope: int | None) -> list[DeviceOut]:
    def work(s: Session) -> list[DeviceOut]:
        # rows, not ORM objects, validated in the worker thread: listing 1,000 devices was
        # 45% of the daemon's Python time under the load benchmark (py-spy), ORM loading and
        # from-attributes validation on the event loop; this is about half of that
        t = table_of(Device)
        stmt = sa_select(*t.c).order_by(t.c.id)
        if scope is not None:
            stmt = stmt.where(t.c.owner_id == scope)
        res = s.execute(stmt)
        keys = list(res.keys())  # once, not per row as RowMapping does
        return DEVICE_LIST.validate_python([dict(zip(keys, r, strict=True)) for r in res.all()])

    return [_device_out(d, parts) for d in await parts.db.run(work)]


async def _load_device(call: Call, device_id: int) -> Device:
    def work(s: Session) -> Device:
        d = s.get(Device, device_id)
        if d is None:
            raise NotFoundError(f"no device {device_id}")
        call.check_owner(d.owner_id, f"device {device_id}")
        return d

    return await _parts(call).db.run(work)


async def get_device(call: Call) -> DeviceOut:
    d = await _load_device(call, int(call.path["device_id"]))
    return _device_out(d, _parts(call))


def check_preferences(device: Device, prefs: dict[str, Any], now: datetime) -> None:
    """Refuse preferences that do not apply to the device's kind or break its parameters, and
    an opt-out that does not end after ``now`` and within :data:`OPT_OUT_MAX`."""
    _check_opt_out(prefs, now)
    kind = DeviceKind(device.kind)
    allowed = {"participate", "opt_out_until"} | {
        DeviceKind.COMMERCIAL_BUILDING: {"comfort_min_c", "comfort_max_c", "max_shed_minutes"},
        DeviceKind.INDUSTRIAL_LOAD: {"max_shed_minutes"},
        DeviceKind.EV_CHARGER: {"ev_departure", "ev_energy_needed_kwh"},
        DeviceKind.V2G_CHARGER: {"ev_departure", "ev_energy_needed_kwh"},
        DeviceKind.BATTERY: {"reserve_soc_pct"},
        DeviceKind.PV_INVERTER: set(),
    }[kind]
    for key in prefs:
        if key not in allowed:
            raise ValidationError(
                f"body.{key}: does not apply to a {kind.value} "
                f"(valid: {', '.join(sorted(allowed))})"
            )
    lo, hi = prefs.get("comfort_min_c"), prefs.get("comfort_max_c")
    if lo is not None and hi is not None and lo >= hi:
        raise ValidationError(f"body: comfort band inverted: comfort_min_c={lo} >= comfort_max_c={hi}")
    params = parse_params(kind, device.params)
    if "reserve_soc_pct" in prefs and isinstance(params, BatteryParams):
        r = prefs["reserve_soc_pct"]
        if not params.soc_min_pct <= r <= params.soc_max_pct:
            raise ValidationError(
                f"body.reserve_soc_pct: {r} outside the battery's range "
                f"[{params.soc_min_pct}, {params.soc_max_pct}]"
            )
    if "max_shed_minutes" in prefs:
        limit = getattr(params, "max_shed_minutes", None) or getattr(
            params, "max_curtail_minutes", 24 * 60)
        if prefs["max_shed_minutes"] > limit:
            raise ValidationError(
                f"body.max_shed_minutes: {prefs['max_shed_minutes']} exceeds the device's "
                f"declared {limit} minutes"
            )


def _check_opt_out(prefs: dict[str, Any], now: datetime) -> None:
    if "opt_out_until" not in prefs:
        return
    until = opt_out_until(prefs)
    if until is None:
        raise ValidationError("body.opt_out_until: not an ISO 8601 time with its offset")
    if until <= now:
        raise ValidationError(f"body.opt_out_until: {until.isoformat()} is not after now "
                              f"({now.isoformat(timespec='seconds')}); the device takes part "
                              "already")
    if until > now + OPT_OUT_MAX:
        raise ValidationError(f"body.opt_out_until: {until.isoformat()} is more than "
                              f"{OPT_OUT_MAX.days} days ahead; to leave the device out longer, "
                              "set participate to false")


def merged_preferences(stored: dict[str, Any] | None, changes: dict[str, Any],
                       now: datetime) -> dict[str, Any]:
    """The stored preferences (without an ended opt-out) with ``changes``; ``None`` clears."""
    merged = {**current_preferences(stored, now), **changes}
    return {k: v for k, v in merged.items() if v is not None}


async def update_preferences(call: Call) -> DeviceOut:
    device_id = int(call.path["device_id"])
    body: Preferences = call.body
    changes = body.model_dump(exclude_unset=True, mode="json")
    actor = call.who.actor
    now = _parts(call).clock()

    def work(s: Session) -> Device:
        d = s.get(Device, device_id)
        if d is None:
            raise NotFoundError(f"no device {device_id}")
        call.check_owner(d.owner_id, f"device {device_id}")
        merged = merged_preferences(d.preferences, changes, now)
        check_preferences(d, merged, now)
        d.preferences = merged
        s.add(d)
        s.add(AuditLog(actor=actor, action="preferences_changed", subject=f"device:{d.id}",
                       detail={"changes": changes}))
        return d

    parts = _parts(call)
    d = await parts.db.run(work)
    parts.control.preferences_changed(device_id)
    return _device_out(d, parts)


async def device_telemetry(call: Call) -> list[TelemetryReading]:
    device_id = int(call.path["device_id"])
    await _load_device(call, device_id)
    q: TelemetryQuery = call.query
    parts = _parts(call)
    end = q.end or parts.clock()
    start = q.start or end - timedelta(hours=1)
    if start >= end:
        raise ValidationError("query.start: must be before end")
    if end - start > TELEMETRY_MAX_SPAN:
        raise ValidationError(f"query: the window is at most {TELEMETRY_MAX_SPAN.days} days "
                              f"(asked {start.isoformat()} to {end.isoformat()})")

    def work(s: Session) -> list[TelemetryReading]:
        t = TelemetryReading
        rows = s.exec(
            select(t).where(t.device_id == device_id, col(t.ts) >= start, col(t.ts) < end)
            .order_by(col(t.ts).desc()).limit(q.limit)
        ).all()
        return list(reversed(rows))

    return await parts.db.run(work)


ROUTES = [
    *routes_fleet_edit.ROUTES,
    Route("GET", "/api/v1/owners", list_owners, "List owners", "owners", OP,
          response=list[OwnerOut]),
    Route("POST", "/api/v1/owners", create_owner, "Add an owner", "owners", OP,
          body=OwnerCreate, response=OwnerOut, status=201, raises=frozenset({409})),
    Route("GET", "/api/v1/owners/{owner_id}", get_owner, "One owner", "owners", OP_OWNER,
          response=OwnerOut),
    Route("GET", "/api/v1/gateways", list_gateways, "List gateways (owners: their own)",
          "gateways", OP_OWNER, response=list[GatewayOut]),
    Route("POST", "/api/v1/gateways", enrol_gateway,
          "Enrol a gateway; the probe runs in the background", "gateways", OP_OWNER,
          body=GatewayEnrol, response=GatewayOut, status=202, raises=frozenset({404, 409})),
    Route("GET", "/api/v1/gateways/{gateway_id}", get_gateway,
          "A gateway with its enrolment progress", "gateways", OP_OWNER, response=GatewayOut),
    Route("POST", "/api/v1/gateways/{gateway_id}/probe", reprobe_gateway,
          "Probe a gateway again", "gateways", OP_OWNER, response=GatewayOut, status=202),
    Route("GET", "/api/v1/devices", list_devices, "List devices (owners: their own)",
          "devices", OP_OWNER, response=list[DeviceOut]),
    Route("GET", "/api/v1/devices/{device_id}", get_device, "One device with its live state",
          "devices", OP_OWNER, response=DeviceOut),
    Route("PATCH", "/api/v1/devices/{device_id}/preferences", update_preferences,
          "Change the owner's preferences of a device", "devices", OP_OWNER,
          body=Preferences, response=DeviceOut),
    Route("GET", "/api/v1/devices/{device_id}/telemetry", device_telemetry,
          "Telemetry of one device (default: the last hour)", "devices", OP_OWNER,
          query=TelemetryQuery, response=list[TelemetryPoint]),
]
