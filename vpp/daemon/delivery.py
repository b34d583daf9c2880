"""Delivery of an event: baseline, target and metered fleet power per interval.

The plan (``DispatchPlan.detail``, written by :mod:`vpp.daemon.planning`) holds the interval
starts, the participating devices, the fleet baseline and the target per interval; metered
power comes from telemetry (mean per device per interval, summed over the devices).
Delivered response = baseline - metered for peak shaving, metered - baseline for valley filling.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from vpp.models import Bid, DispatchPlan, GridEvent, Setpoint, TelemetryReading, table_of

#: Share of the plan's devices that must have readings in an interval for it to count.
MIN_COVERAGE = 0.5


def latest_plan(session: Session, event_id: int) -> DispatchPlan | None:
    return session.exec(
        sm_select(DispatchPlan).where(DispatchPlan.event_id == event_id)
        .order_by(col(DispatchPlan.id).desc())
    ).first()


def latest_bid(session: Session, event_id: int) -> Bid | None:
    return session.exec(
        sm_select(Bid).where(Bid.event_id == event_id).order_by(col(Bid.id).desc())
    ).first()


def declared_by_owner(bid: Bid) -> dict[int, float] | None:
    """The owners taking part in an event: those with a declared share above zero in the bid
    (kW), or ``None`` for a bid without per-owner shares. Planning dispatches only their
    devices and settlement settles only them, so the two count the same response."""
    owners = (bid.detail or {}).get("owners")
    if owners is None:
        return None
    return {int(o["owner_id"]): float(o["declared_kw"]) for o in owners
            if float(o["declared_kw"]) > 0}


def metered_kw(session: Session, device_ids: list[int], start: datetime,
               end: datetime) -> tuple[float | None, int]:
    """Sum over devices of each one's mean power in ``[start, end)``; and how many reported."""
    if not device_ids:
        return None, 0
    t = table_of(TelemetryReading)
    stmt = (
        select(t.c.device_id, func.avg(t.c.power_kw))
        .where(t.c.device_id.in_(device_ids), t.c.ts >= start, t.c.ts < end,
               t.c.power_kw.is_not(None))
        .group_by(t.c.device_id)
    )
    rows = session.execute(stmt).all()
    if not rows:
        return None, 0
    return float(sum(float(v) for _, v in rows)), len(rows)


def signed_response(direction: str, baseline_kw: float, metered: float) -> float:
    return baseline_kw - metered if direction == "peak_shaving" else metered - baseline_kw


def event_delivery(session: Session, event: GridEvent, now: datetime) -> dict[str, Any]:
    """Everything ``GET /events/{id}/delivery`` answers (see :class:`vpp.api.schemas.DeliveryOut`)."""
    bid = latest_bid(session, int(event.id or 0))
    declared = float(bid.declared_kw) if bid is not None else 0.0
    plan = latest_plan(session, int(event.id or 0))
    intervals: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    if plan is not None:
        d = plan.detail or {}
        starts = [datetime.fromisoformat(s) for s in d.get("intervals", [])]
        step = timedelta(minutes=plan.interval_minutes)
        device_ids = [int(i) for i in d.get("device_ids", [])]
        baseline = d.get("baseline_kw", [None] * len(starts))
        target = d.get("target_kw", [None] * len(starts))
        for i, t0 in enumerate(starts):
            a, b = max(t0, event.start), min(t0 + step, event.end)
            row: dict[str, Any] = {
                "interval_start": t0, "requested_kw": event.requested_kw,
                "declared_kw": declared, "target_kw": target[i], "baseline_kw": baseline[i],
                "metered_kw": None, "delivered_kw": None,
            }
            if a < now and a < b:
                m, n = metered_kw(session, device_ids, a, min(b, now))
                if m is not None and n >= MIN_COVERAGE * max(len(device_ids), 1):
                    row["metered_kw"] = m
                    if baseline[i] is not None:
                        row["delivered_kw"] = signed_response(event.direction, baseline[i], m)
            intervals.append(row)
        st = table_of(Setpoint)
        for status, n in session.execute(
            select(st.c.status, func.count())
            .where(st.c.plan_id == plan.id)
            .group_by(st.c.status)
        ).all():
            counts[str(status)] = int(n)
    measured = [r["delivered_kw"] for r in intervals if r["delivered_kw"] is not None]
    delivered = sum(measured) / len(measured) if measured else None
    return {
        "event_id": event.id, "status": event.status, "requested_kw": event.requested_kw,
        "declared_kw": declared, "delivered_kw": delivered,
        "performance_pct": (100.0 * delivered / declared) if delivered is not None and declared
        else None,
        "setpoints": dict(counts), "intervals": intervals,
    }
