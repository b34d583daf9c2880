"""Grid calls, events, delivery, bids, plans, settlements and payouts.

``POST /grid/calls`` takes day-ahead invitations and real-time calls from the grid (and
operators); it goes through :class:`vpp.daemon.intake.Intake`, the same path OpenADR events take,
and answers with acceptance and the declared capacity. Owners see the events their devices took
part in and only their own payouts.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from vpp.api.context import PARTS
from vpp.api.routing import Call, Route, roles
from vpp.api.schemas import (
    BidOut,
    BidOwnerShareOut,
    CallDecision,
    DeliveryOut,
    EventOut,
    EventsQuery,
    GridCallIn,
    PayoutOut,
    PlanOut,
    SettlementOut,
)
from vpp.bids import owner_shares
from vpp.daemon.delivery import event_delivery, latest_bid
from vpp.daemon.overrides import excluded_out
from vpp.domain.grid_calls import BatteryReserveOut
from vpp.errors import NotFoundError
from vpp.models import (
    Bid,
    Device,
    DispatchPlan,
    GridEvent,
    OwnerPayout,
    Role,
    Setpoint,
    Settlement,
)

OP = roles(Role.OPERATOR)
OP_GRID = roles(Role.OPERATOR, Role.GRID)
ALL = roles(Role.OPERATOR, Role.GRID, Role.OWNER)


def _fmt_yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _owner_event_ids(s: Session, owner_id: int) -> set[int]:
    stmt = (
        select(DispatchPlan.event_id)
        .join(Setpoint, col(Setpoint.plan_id) == DispatchPlan.id)
        .join(Device, col(Device.id) == Setpoint.device_id)
        .where(Device.owner_id == owner_id).distinct()
    )
    ids = {int(i) for i in s.exec(stmt) if i is not None}
    stmt2 = (
        select(Settlement.event_id)
        .join(OwnerPayout, col(OwnerPayout.settlement_id) == Settlement.id)
        .where(OwnerPayout.owner_id == owner_id).distinct()
    )
    return ids | {int(i) for i in s.exec(stmt2)}


def _event_out(s: Session, ev: GridEvent) -> EventOut:
    out = EventOut.model_validate(ev)
    out.excluded_devices = excluded_out(ev)  # devices that left the plan (overrides.py)
    out.battery_reserve = [  # the batteries' reserve for the call (vpp.daemon.tou_dispatch)
        BatteryReserveOut(device_id=int(k), **v)
        for k, v in ((ev.detail or {}).get("battery_reserve") or {}).items()]
    bid = latest_bid(s, int(ev.id or 0))
    out.declared_kw = bid.declared_kw if bid is not None else None
    st = s.exec(
        select(Settlement).where(Settlement.event_id == ev.id)
        .order_by(col(Settlement.version).desc())
    ).first()
    if st is not None:
        out.revenue_fen = st.revenue_fen - st.penalty_fen
        out.revenue_yuan = _fmt_yuan(out.revenue_fen)
        if st.declared_kw and st.response_kwh is not None:
            hours = (ev.end - ev.start).total_seconds() / 3600
            out.delivered_kw = st.response_kwh / hours if hours > 0 else None
    else:
        delivered = (ev.detail or {}).get("delivered_kw")
        out.delivered_kw = float(delivered) if delivered is not None else None
    return out


async def submit_call(call: Call) -> Any:
    body: GridCallIn = call.body
    intake = call.request.app[PARTS].intake
    decision = await intake.receive(body, source="rest", actor=call.who.actor)
    return decision


async def list_events(call: Call) -> list[EventOut]:
    q: EventsQuery = call.query
    scope = call.owner_scope()

    def work(s: Session) -> list[EventOut]:
        stmt = select(GridEvent).order_by(col(GridEvent.start).desc()).limit(q.limit)
        if q.status:
            stmt = stmt.where(GridEvent.status == q.status)
        if scope is not None:
            ids = _owner_event_ids(s, scope)
            stmt = stmt.where(col(GridEvent.id).in_(ids or {-1}))
        return [_event_out(s, ev) for ev in s.exec(stmt)]

    return await call.request.app[PARTS].db.run(work)


def _load_event(s: Session, call: Call, event_id: int) -> GridEvent:
    ev = s.get(GridEvent, event_id)
    if ev is None:
        raise NotFoundError(f"no event {event_id}")
    scope = call.owner_scope()
    if scope is not None and event_id not in _owner_event_ids(s, scope):
        raise NotFoundError(f"no event {event_id}")
    return ev


async def get_event(call: Call) -> EventOut:
    event_id = int(call.path["event_id"])
    return await call.request.app[PARTS].db.run(
        lambda s: _event_out(s, _load_event(s, call, event_id))
    )


async def cancel_event(call: Call) -> EventOut:
    parts = call.request.app[PARTS]
    event_id = int(call.path["event_id"])
    await parts.intake.cancel(event_id, actor=call.who.actor)
    return await parts.db.run(lambda s: _event_out(s, _load_event(s, call, event_id)))


async def event_delivery_route(call: Call) -> dict[str, Any]:
    parts = call.request.app[PARTS]
    event_id = int(call.path["event_id"])
    now = parts.clock()
    minutes = parts.settings.service.market_interval_minutes
    return await parts.db.run(
        lambda s: event_delivery(s, _load_event(s, call, event_id), now, minutes))


async def event_bids(call: Call) -> list[BidOut]:
    event_id = int(call.path["event_id"])

    def work(s: Session) -> list[BidOut]:
        _load_event(s, call, event_id)
        bids = s.exec(select(Bid).where(Bid.event_id == event_id).order_by(col(Bid.id)))
        return [BidOut.model_validate(b).model_copy(update={"owners": [
            BidOwnerShareOut.model_validate(sh) for sh in owner_shares(s, int(b.id or 0))]})
            for b in bids]

    return await call.request.app[PARTS].db.run(work)


async def event_plans(call: Call) -> list[PlanOut]:
    event_id = int(call.path["event_id"])

    def work(s: Session) -> list[PlanOut]:
        _load_event(s, call, event_id)
        out = []
        for p in s.exec(select(DispatchPlan).where(DispatchPlan.event_id == event_id)
                        .order_by(col(DispatchPlan.id))):
            po = PlanOut.model_validate(p)
            po.reason = (p.detail or {}).get("reason")
            po.devices = len((p.detail or {}).get("device_ids", []))
            out.append(po)
        return out

    return await call.request.app[PARTS].db.run(work)


async def list_settlements(call: Call) -> list[Settlement]:
    return await call.request.app[PARTS].db.run(
        lambda s: list(s.exec(select(Settlement).order_by(col(Settlement.id).desc()).limit(500)))
    )


async def list_payouts(call: Call) -> list[PayoutOut]:
    scope = call.owner_scope()

    def work(s: Session) -> list[PayoutOut]:
        stmt = (select(OwnerPayout, Settlement.event_id)
                .join(Settlement, col(Settlement.id) == OwnerPayout.settlement_id)
                .order_by(col(OwnerPayout.id).desc()).limit(1000))
        if scope is not None:
            stmt = stmt.where(OwnerPayout.owner_id == scope)
        return [
            PayoutOut(id=int(p.id or 0), settlement_id=p.settlement_id, event_id=ev_id,
                      owner_id=p.owner_id, amount_fen=p.amount_fen,
                      amount_yuan=_fmt_yuan(p.amount_fen), contribution_kwh=p.contribution_kwh,
                      created_at=p.created_at)
            for p, ev_id in s.exec(stmt)
        ]

    return await call.request.app[PARTS].db.run(work)


ROUTES = [
    Route("POST", "/api/v1/grid/calls", submit_call,
          "Submit a day-ahead invitation or a real-time call", "grid", OP_GRID,
          body=GridCallIn, response=CallDecision, status=201, raises=frozenset({409})),
    Route("GET", "/api/v1/events", list_events, "List events (owners: those they took part in)",
          "events", ALL, query=EventsQuery, response=list[EventOut]),
    Route("GET", "/api/v1/events/{event_id}", get_event, "One event", "events", ALL,
          response=EventOut),
    Route("POST", "/api/v1/events/{event_id}/cancel", cancel_event,
          "Cancel an event (devices are released)", "events", OP_GRID, response=EventOut,
          raises=frozenset({409})),
    Route("GET", "/api/v1/events/{event_id}/delivery", event_delivery_route,
          "Requested, declared, baseline, metered and delivered kW per interval", "events",
          OP_GRID, response=DeliveryOut),
    Route("GET", "/api/v1/events/{event_id}/bids", event_bids, "Bids for an event", "events",
          OP, response=list[BidOut]),
    Route("GET", "/api/v1/events/{event_id}/plans", event_plans, "Dispatch plans of an event",
          "events", OP, response=list[PlanOut]),
    Route("GET", "/api/v1/settlements", list_settlements, "Settlements, newest first",
          "settlement", OP, response=list[SettlementOut]),
    Route("GET", "/api/v1/payouts", list_payouts, "Owner payouts (owners: their own)",
          "settlement", roles(Role.OPERATOR, Role.OWNER), response=list[PayoutOut]),
]
