"""Delivery of an event, measured the way settlement measures it.

One measurement (:func:`measure_event`) serves both the live view and the settlement against
the baselines fixed at the event's first plan (:func:`vpp.daemon.settle.settle_one`): the
event's intervals (start to end, whatever plans came and went), the devices that have a fixed
baseline (``GridEvent.detail.baseline_kw``) of the owners with a declared share in the bid,
those baselines, and each device's mean metered power per interval from telemetry (averaged in
the database, :func:`vpp.telemetry_store.interval_means`).

``GET /events/{id}/delivery`` (:func:`event_delivery`):

* before the event is settled: per interval the fleet baseline, metered load and response
  (``baseline - metered`` for peak shaving, ``metered - baseline`` for valley filling) over
  those devices; a device without a reading in an interval counts as no response there (its
  load taken to be its baseline), as in settlement, once at least ``MIN_COVERAGE`` of the
  devices reported in it (else the interval is not measured yet). The event's delivered kW is
  the mean over the measured intervals.
* once settled: the settlement's own per-interval record and totals (whichever baseline it
  used, history or fixed; ``measured_by`` says which), so that the two always agree.

The target per interval is the reduction asked of the fleet by the latest plan covering it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from bidding.settlement import fill_unmetered
from vpp.bids import (
    declared_by_owner,  # an event bid's owner shares (vpp.bids)
    latest_bid,  # the one query for an event's bid (importers use it from here)
)
from vpp.errors import ValidationError
from vpp.models import Bid, Device, DispatchPlan, GridEvent, Setpoint, Settlement, table_of
from vpp.telemetry_store import interval_means

#: Share of the event's devices that must have readings in an interval for it to count.
MIN_COVERAGE = 0.5


def latest_plan(session: Session, event_id: int) -> DispatchPlan | None:
    return session.exec(
        sm_select(DispatchPlan).where(DispatchPlan.event_id == event_id)
        .order_by(col(DispatchPlan.id).desc())
    ).first()


def signed_response(direction: str, baseline_kw: float, metered: float) -> float:
    return baseline_kw - metered if direction == "peak_shaving" else metered - baseline_kw


def event_intervals(ev: GridEvent, minutes: int) -> list[datetime]:
    """The starts of the event's intervals, from its start to its end (aware UTC)."""
    step = timedelta(minutes=minutes)
    n = -(-(ev.end - ev.start) // step)
    return [ev.start + i * step for i in range(n)]


def device_metered(s: Session, device_ids: list[int], intervals: list[datetime],
                   step: timedelta) -> np.ndarray:
    """(devices x intervals) metered kW: each device's mean power per interval, averaged by the
    database (:func:`vpp.telemetry_store.interval_means`, inside the session's transaction);
    NaN where a device has no reading in an interval."""
    minutes = int(step.total_seconds() // 60)
    idx = pd.DatetimeIndex(intervals).tz_convert("UTC")
    if (idx.floor(f"{minutes}min") != idx).any():
        raise ValidationError(f"event intervals starting {idx[0].isoformat()} are not aligned to "
                              f"{minutes}-minute intervals in UTC")
    means = interval_means(s.connection(), device_ids, intervals[0], intervals[-1] + step,
                           minutes)
    table = means.pivot_table(index="device_id", columns="interval_start", values="power_kw",
                              aggfunc="first", dropna=False)
    return table.reindex(index=device_ids, columns=idx).to_numpy(dtype=float)


@dataclass(frozen=True)
class EventMeasurement:
    """An event measured against its fixed baselines (kW, devices x intervals)."""

    intervals: list[datetime]
    owners: list[int]  # sorted; owners with a declared share and a device with a baseline
    declared_kw: dict[int, float]  # per owner
    device_ids: list[int]  # sorted
    owner_row: np.ndarray  # per device: its owner's index in ``owners``
    baseline_kw: np.ndarray
    metered_kw: np.ndarray  # NaN where a device has no reading in an interval

    def by_owner(self, device_kw: np.ndarray) -> np.ndarray:
        """(owners x intervals) sums of a (devices x intervals) array."""
        out = np.zeros((len(self.owners), len(self.intervals)))
        np.add.at(out, self.owner_row, device_kw)
        return out


def measure_event(s: Session, ev: GridEvent, bid: Bid, minutes: int) -> EventMeasurement:
    """The event's devices, fixed baselines and metered power (see the module docstring).
    ValidationError when it was never planned or no declared owner has a baseline."""
    base_dev: dict[str, list[float]] = (ev.detail or {}).get("baseline_kw") or {}
    if not base_dev:
        raise ValidationError(f"event {ev.id} has no baselines (it was never planned)")
    declared = declared_by_owner(s, bid) or {}
    owner_of = {int(d.id or 0): d.owner_id for d in s.exec(sm_select(Device).where(
        col(Device.id).in_([int(k) for k in base_dev])))}
    owners = sorted(o for o in declared if o in set(owner_of.values()))
    if not owners:
        raise ValidationError(f"event {ev.id}: no owner with a declared share and a baseline")
    intervals = event_intervals(ev, minutes)
    row = {o: i for i, o in enumerate(owners)}
    dev_ids = sorted(d for d, o in owner_of.items() if o in row)
    rows = [np.asarray(base_dev[str(d)], dtype=float) for d in dev_ids]
    bad = next((len(r) for r in rows if len(r) != len(intervals)), None)
    if bad is not None:
        raise ValidationError(f"event {ev.id}: its fixed baselines cover {bad} intervals, the "
                              f"event {len(intervals)}")
    base = np.array(rows).reshape(len(dev_ids), len(intervals))
    metered = device_metered(s, dev_ids, intervals, timedelta(minutes=minutes))
    return EventMeasurement(
        intervals=intervals, owners=owners, declared_kw={o: declared[o] for o in owners},
        device_ids=dev_ids, owner_row=np.array([row[owner_of[d]] for d in dev_ids], dtype=np.int64),
        baseline_kw=base, metered_kw=metered)


def _plan_values(s: Session, event_id: int) -> tuple[dict[datetime, float], Counter[str]]:
    """Per interval start, the target of the latest plan covering it; and the setpoint counts
    (by status) of the latest plan."""
    target: dict[datetime, float] = {}
    last: DispatchPlan | None = None
    for plan in s.exec(sm_select(DispatchPlan).where(DispatchPlan.event_id == event_id)
                       .order_by(col(DispatchPlan.id))):
        d = plan.detail or {}
        for t, v in zip(d.get("intervals", []), d.get("target_kw", []), strict=False):
            target[datetime.fromisoformat(t)] = float(v)
        last = plan
    counts: Counter[str] = Counter()
    if last is not None:
        st = table_of(Setpoint)
        for status, n in s.execute(select(st.c.status, func.count())
                                   .where(st.c.plan_id == last.id).group_by(st.c.status)).all():
            counts[str(status)] = int(n)
    return target, counts


def _live_rows(m: EventMeasurement, direction: str, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for k, t0 in enumerate(m.intervals):
        row: dict[str, Any] = {"interval_start": t0, "baseline_kw": float(m.baseline_kw[:, k].sum()),
                               "metered_kw": None, "delivered_kw": None}
        raw = m.metered_kw[:, k]
        if t0 < now and np.isfinite(raw).sum() >= MIN_COVERAGE * max(len(raw), 1):
            filled, _ = fill_unmetered(raw, m.baseline_kw[:, k])
            row["metered_kw"] = float(np.nansum(filled))
            row["delivered_kw"] = signed_response(direction, row["baseline_kw"],
                                                  row["metered_kw"])
        rows.append(row)
    return rows


def _settled_rows(st: Settlement) -> list[dict[str, Any]]:
    out = []
    for r in st.detail["result"]["intervals"]:
        if r.get("in_event", True):
            out.append({"interval_start": datetime.fromisoformat(r["interval_start"]).astimezone(UTC),
                        "baseline_kw": r["baseline_kw"], "metered_kw": r["metered_kw"],
                        "delivered_kw": r["response_kw"]})
    return out


def _current_settlement(s: Session, event_id: int) -> Settlement | None:
    return s.exec(sm_select(Settlement).where(Settlement.event_id == event_id)
                  .order_by(col(Settlement.version).desc())).first()


def _measured_by(st: Settlement) -> str:
    how = ("baselines fixed at the first plan" if st.detail.get("baseline")
           else "the programme's baseline from metered history")
    return f"settlement v{st.version} ({how})"


def _empty_rows(event: GridEvent, minutes: int) -> list[dict[str, Any]]:
    return [{"interval_start": t, "baseline_kw": None, "metered_kw": None, "delivered_kw": None}
            for t in event_intervals(event, minutes)]


def event_delivery(session: Session, event: GridEvent, now: datetime,
                   minutes: int) -> dict[str, Any]:
    """Everything ``GET /events/{id}/delivery`` answers (:class:`vpp.api.schemas.DeliveryOut`);
    ``minutes`` is the market interval."""
    event_id = int(event.id or 0)
    bid = latest_bid(session, event_id)
    declared = float(bid.declared_kw) if bid is not None else 0.0
    target, counts = _plan_values(session, event_id)
    st = _current_settlement(session, event_id)
    rows: list[dict[str, Any]] = []
    delivered: float | None = None
    performance: float | None = None
    measured_by = "not measured (the event was never planned)"  # a rejected call: no intervals
    if st is not None:
        rows = _settled_rows(st)
        declared = float(st.declared_kw)
        hours = float(st.detail["result"]["duration_h"])
        delivered = st.response_kwh / hours if hours else None
        performance = 100.0 * st.performance_ratio
        measured_by = _measured_by(st)
    elif bid is not None and (event.detail or {}).get("baseline_kw"):
        try:
            m = measure_event(session, event, bid, minutes)
        except ValidationError as exc:  # the event's state, not the request: nulls, said why
            rows = _empty_rows(event, minutes)
            measured_by = f"not measured: {exc.message}"
        else:
            rows = _live_rows(m, event.direction, now)
            declared = sum(m.declared_kw.values())
            measured = [r["delivered_kw"] for r in rows if r["delivered_kw"] is not None]
            delivered = sum(measured) / len(measured) if measured else None
            performance = (100.0 * delivered / declared
                           if delivered is not None and declared else None)
            measured_by = "live, against the baselines fixed at the first plan"
    elif bid is not None:  # accepted, not planned yet (a bid's window passed the programme)
        rows = _empty_rows(event, minutes)
    for r in rows:
        r.update(requested_kw=event.requested_kw, declared_kw=declared,
                 target_kw=target.get(r["interval_start"]))
    return {
        "event_id": event.id, "status": event.status, "requested_kw": event.requested_kw,
        "declared_kw": declared, "delivered_kw": delivered, "performance_pct": performance,
        "measured_by": measured_by, "setpoints": dict(counts), "intervals": rows,
    }
