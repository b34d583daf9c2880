"""The operator console's routes: a fleet summary, a page of devices, an event's band and ledger.

At city scale (10,000 devices) the console never fetches the whole fleet: the database counts,
sums and pages (``GROUP BY``, ``COUNT``, ``LIMIT/OFFSET`` with the filters in ``WHERE``), and only
the live state (last reading, online, held setpoint: the fleet runtime's memory, not the
database) is overlaid in Python, per device id, for the devices the answer covers.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Select, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from vpp.api.console_forecast import console_forecast
from vpp.api.context import PARTS
from vpp.api.routes_events import _fmt_yuan
from vpp.api.routing import Call, Route, roles
from vpp.api.schemas_console import (
    BandOut,
    ConsoleDevice,
    DevicePageOut,
    DevicePageQuery,
    EventExtrasOut,
    FleetFilter,
    FleetSummaryOut,
    ForecastOut,
    LedgerEntryOut,
    LedgerTransactionOut,
    SummaryGroup,
    SummaryQuery,
)
from vpp.daemon.fleet_runtime import FleetRuntime
from vpp.errors import NotFoundError
from vpp.models import Device as DeviceRow
from vpp.models import GridEvent, LedgerEntry, LedgerTransaction, Owner, Role, table_of

OP = roles(Role.OPERATOR)
DEV = table_of(DeviceRow)
OWN = table_of(Owner)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(stmt: Select[Any], f: FleetFilter) -> Select[Any]:
    """``stmt`` (over the device table joined to its owner) narrowed by the filter."""
    if f.kind is not None:
        stmt = stmt.where(DEV.c.kind == f.kind)
    if f.status is not None:
        stmt = stmt.where(DEV.c.status == f.status)
    if f.owner_id is not None:
        stmt = stmt.where(DEV.c.owner_id == f.owner_id)
    if f.q:
        like = f"%{_escape_like(f.q.lower())}%"
        stmt = stmt.where(or_(*(func.lower(c).like(like, escape="\\")
                                for c in (DEV.c.name, DEV.c.profile, OWN.c.name))))
    return stmt


def _joined(*cols: Any) -> Select[Any]:
    return sa_select(*cols).select_from(DEV.join(OWN, OWN.c.id == DEV.c.owner_id))


# ------------------------------------------------------------------------------ summary
_DIMENSIONS = {"kind": DEV.c.kind, "status": DEV.c.status, "owner": DEV.c.owner_id}


Live = dict[tuple[str, str], tuple[float | None, int]]


def _live(s: Session, rt: FleetRuntime, q: SummaryQuery) -> Live:
    """(live kW or None, online count) per (dimension, group key): one pass over the filtered
    devices' ids, the readings being in the fleet runtime's memory."""
    power: dict[tuple[str, str], float] = {}
    online: dict[tuple[str, str], int] = defaultdict(int)
    rows = s.execute(_filtered(_joined(DEV.c.id, *_DIMENSIONS.values()), q)).all()
    for device_id, *keys in rows:
        st = rt.latest(device_id)
        up = rt.is_online(device_id)
        for dim, k in zip(_DIMENSIONS, keys, strict=True):
            g = (dim, str(k))
            if st is not None and st.power_kw is not None:
                power[g] = power.get(g, 0.0) + st.power_kw
            online[g] += up
    return {g: (power.get(g), online[g]) for g in set(power) | set(online)}


def _groups(s: Session, live: Live, q: SummaryQuery, dim: str) -> list[SummaryGroup]:
    key = _DIMENSIONS[dim]
    rated = func.sum(DEV.c.rated_power_kw)
    counted = s.execute(_filtered(_joined(key, func.count(), rated), q)
                        .group_by(key).order_by(rated.desc(), key)).all()
    out = []
    for k, n, kw in counted:
        power, online = live.get((dim, str(k)), (None, 0))
        out.append(SummaryGroup(key=str(k), label=str(k), devices=int(n), online=online,
                                rated_kw=float(kw or 0.0), power_kw=power))
    if len(out) <= q.top:
        return out
    rest = out[q.top:]
    other = SummaryGroup(
        key="other", label=f"+{len(rest)}", devices=sum(g.devices for g in rest),
        online=sum(g.online for g in rest), rated_kw=sum(g.rated_kw for g in rest),
        power_kw=_sum_or_none([g.power_kw for g in rest]))
    return [*out[:q.top], other]


def _sum_or_none(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return float(sum(got)) if got else None


async def fleet_summary(call: Call) -> FleetSummaryOut:
    """Devices, online count, rated and live kW by kind, status and owner (each group
    the database's ``GROUP BY``; the largest ``top`` by rated kW, the rest as one)."""
    q: SummaryQuery = call.query
    rt = call.request.app[PARTS].fleet

    def work(s: Session) -> FleetSummaryOut:
        live = _live(s, rt, q)
        by_kind, by_status, by_owner = (_groups(s, live, q, d) for d in _DIMENSIONS)
        shown = [int(g.key) for g in by_owner if g.key != "other"]
        names = dict(s.execute(sa_select(OWN.c.id, OWN.c.name).where(OWN.c.id.in_(shown))).all())
        for g in by_owner:
            if g.key != "other":
                g.label = names.get(int(g.key), g.key)
        return FleetSummaryOut(
            devices=sum(g.devices for g in by_kind), online=sum(g.online for g in by_kind),
            rated_kw=sum(g.rated_kw for g in by_kind),
            power_kw=_sum_or_none([g.power_kw for g in by_kind]), by_kind=by_kind,
            by_status=by_status, by_owner=by_owner)

    return await call.request.app[PARTS].db.run(work)


# ------------------------------------------------------------------------------ devices
_SORT = {"id": DEV.c.id, "name": DEV.c.name, "kind": DEV.c.kind, "owner": OWN.c.name,
         "status": DEV.c.status, "rated": DEV.c.rated_power_kw}
_PAGE_COLS = (DEV.c.id, DEV.c.name, DEV.c.kind, DEV.c.owner_id, OWN.c.name.label("owner_name"),
              DEV.c.profile, DEV.c.status, DEV.c.rated_power_kw)


async def device_page(call: Call) -> DevicePageOut:
    """One page of the filtered fleet (``COUNT`` and ``LIMIT/OFFSET`` in the database), each
    device with its live state; ties in the sort key are broken by id, so pages never overlap."""
    q: DevicePageQuery = call.query
    rt = call.request.app[PARTS].fleet

    def work(s: Session) -> tuple[int, list[Any]]:
        total = s.execute(_filtered(_joined(func.count()), q)).scalar_one()
        key = _SORT[q.sort]
        order = [key.desc(), DEV.c.id.desc()] if q.order == "desc" else [key, DEV.c.id]
        stmt = _filtered(_joined(*_PAGE_COLS), q).order_by(*order).offset(q.offset)
        return int(total), list(s.execute(stmt.limit(q.limit)).mappings().all())

    total, rows = await call.request.app[PARTS].db.run(work)
    items = []
    for r in rows:
        d = ConsoleDevice.model_validate(dict(r))
        st = rt.latest(d.id)
        if st is not None:
            d.power_kw, d.soc_pct, d.last_seen_at = st.power_kw, st.soc_pct, st.ts
        d.setpoint_kw = rt.last_setpoint(d.id)
        items.append(d)
    return DevicePageOut(total=total, offset=q.offset, limit=q.limit, items=items)


# ------------------------------------------------------------------------------ one event
def _band(call: Call, ev: GridEvent) -> tuple[BandOut | None, str | None]:
    from bidding.programme import load_programme
    from vpp.errors import ConfigError, ValidationError

    settings = call.request.app[PARTS].settings
    try:
        prog = load_programme(ev.programme, settings.bidding.programmes_dir, ev.start)
    except (ConfigError, ValidationError, NotFoundError, OSError, ValueError) as exc:
        return None, f"programme {ev.programme!r}: {exc}"
    b = prog.band
    return BandOut(programme=ev.programme, lower_pct=b.lower_pct, upper_pct=b.upper_pct,
                   basis=b.basis), None


def _ledger(s: Session, event_id: int) -> list[LedgerTransactionOut]:
    txs = list(s.exec(select(LedgerTransaction).where(LedgerTransaction.event_id == event_id)
                      .order_by(col(LedgerTransaction.id))))
    legs: dict[int, list[LedgerEntryOut]] = defaultdict(list)
    if txs:
        ids = [int(t.id or 0) for t in txs]
        for e in s.exec(select(LedgerEntry).where(col(LedgerEntry.transaction_id).in_(ids))
                        .order_by(col(LedgerEntry.id))):
            legs[e.transaction_id].append(LedgerEntryOut(
                account=e.account, owner_id=e.owner_id, amount_fen=e.amount_fen,
                amount_yuan=_fmt_yuan(e.amount_fen)))
    return [LedgerTransactionOut(id=int(t.id or 0), kind=t.kind, description=t.description,
                                 reverses_id=t.reverses_id, created_at=t.created_at,
                                 entries=legs[int(t.id or 0)]) for t in txs]


async def event_extras(call: Call) -> EventExtrasOut:
    """The event's paid band (its programme's, in force on its day) and its ledger."""
    event_id = int(call.path["event_id"])

    def work(s: Session) -> tuple[GridEvent, list[LedgerTransactionOut]]:
        ev = s.get(GridEvent, event_id)
        if ev is None:
            raise NotFoundError(f"no event {event_id}")
        return ev, _ledger(s, event_id)

    ev, ledger = await call.request.app[PARTS].db.run(work)
    band, error = _band(call, ev)
    return EventExtrasOut(event_id=event_id, band=band, band_error=error, ledger=ledger)


ROUTES = [
    Route("GET", "/api/v1/console/fleet-summary", fleet_summary,
          "Devices, online, rated and live kW by kind, status and owner", "console", OP,
          query=SummaryQuery, response=FleetSummaryOut),
    Route("GET", "/api/v1/console/devices", device_page,
          "One page of the fleet, filtered, searched and sorted, with live state", "console",
          OP, query=DevicePageQuery, response=DevicePageOut),
    Route("GET", "/api/v1/console/forecast", console_forecast,
          "The latest load forecast (quantile band, median) against metered load", "console",
          OP, response=ForecastOut),
    Route("GET", "/api/v1/console/events/{event_id}", event_extras,
          "An event's paid band and ledger transactions", "console", OP,
          response=EventExtrasOut),
]
