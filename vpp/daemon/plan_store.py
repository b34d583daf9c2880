"""A solved plan into the database: one ``DispatchPlan`` row and its ``Setpoint`` rows.

Setpoint rows cover the plan's whole horizon from the current interval: the call's intervals
and the tail after it (``[scheduler] event_tail_minutes``), so that the control loop brings
the devices back from the event over the tail, as planned (the buildings' rebound within the
plan's cap, the plants' make-up, the batteries' recharge), instead of releasing them all at
once at the call's end. ``detail`` keeps the call's intervals under the keys it always had
(``intervals``, ``baseline_kw``, ``target_kw``, ``planned_kw``: what delivery and settlement
read) and the tail under ``tail_intervals`` / ``tail_baseline_kw`` / ``tail_planned_kw``, with
``tail_end``, the end of the plan's dispatch.

A re-plan that changes nothing -- the same devices, every setpoint from the current interval
on within ``[daemon.control] unchanged_pct`` of the device's rated power (at least
``MIN_CHANGE_KW``) of the active plan's, and none of those rows ``failed`` (a failed write is
retried by writing the re-plan) -- is not written: no rows, no re-sent writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import insert, update
from sqlmodel import Session, col, select

from vpp.daemon.plan_inputs import PlanInputs
from vpp.models import DispatchPlan, Setpoint
from vpp.scheduler.plan import SolvedPlan

#: Setpoints closer than this (kW) are the same whatever the device's rating (register steps).
MIN_CHANGE_KW = 0.05


@dataclass
class Stored:
    plan_id: int  # the new plan, or the active one when the re-plan changed nothing
    changed: bool


def _key(t: datetime) -> float:
    return round(t.timestamp(), 3)


def unchanged(s: Session, event_id: int, ids: list[int], starts: list[datetime],
              setpoint_kw: np.ndarray, tol_kw: np.ndarray) -> int | None:
    """The active plan's id when its setpoints from ``starts[0]`` on are those of the new plan
    (device ``ids`` x ``starts``, kW) within ``tol_kw`` per device; else None."""
    active = s.exec(select(DispatchPlan).where(DispatchPlan.event_id == event_id,
                                               DispatchPlan.status == "active")
                    .order_by(col(DispatchPlan.id).desc())).first()
    if active is None:
        return None
    rows = list(s.exec(select(Setpoint).where(Setpoint.plan_id == active.id,
                                              Setpoint.interval_start >= starts[0])))
    if any(r.status == "failed" for r in rows):
        return None  # a write that failed is retried by the new plan's rows
    old = {(r.device_id, _key(r.interval_start)): r.setpoint_kw for r in rows}
    new = {(did, _key(t)): (float(setpoint_kw[i, k]), float(tol_kw[i]))
           for i, did in enumerate(ids) for k, t in enumerate(starts)}
    if old.keys() != new.keys():
        return None
    if all(abs(old[k] - v) <= tol for k, (v, tol) in new.items()):
        return int(active.id or 0)
    return None


def _detail(inp: PlanInputs, result: SolvedPlan, reason: str, wall_s: float,
            trigger: dict[str, float] | None, starts: list[datetime]) -> dict[str, Any]:
    n_event = inp.n_event_intervals
    sl, tail = inp.event_slice, inp.tail_slice
    ids = [int(i) for i in result.device_ids]
    owners = inp.owner_of_device
    base_all = np.asarray(result.baseline_kw)
    power = np.asarray(result.power_kw)
    base = base_all[:, sl]
    owner_base: dict[str, list[float]] = {}
    for i, did in enumerate(ids):
        key = str(owners[did])
        prev = owner_base.get(key, [0.0] * n_event)
        owner_base[key] = [round(a + float(b), 4) for a, b in zip(prev, base[i], strict=True)]
    step = timedelta(minutes=inp.interval_minutes)
    return {
        "reason": reason,
        "trigger": trigger or {},
        "intervals": [t.isoformat() for t in inp.intervals],
        "device_ids": ids,
        "baseline_kw": [round(float(v), 3) for v in base.sum(axis=0)],
        "target_kw": [float(inp.declared_kw)] * n_event,
        "planned_kw": [round(float(v), 3) for v in power[:, sl].sum(axis=0)],
        "tail_intervals": [t.isoformat() for t in starts[n_event:]],
        "tail_baseline_kw": [round(float(v), 3) for v in base_all[:, tail].sum(axis=0)],
        "tail_planned_kw": [round(float(v), 3) for v in power[:, tail].sum(axis=0)],
        "tail_end": (starts[-1] + step).isoformat(),
        "owner_baseline_kw": owner_base,
        "status": str(result.status),
        "iterations": int(result.iterations),
        "warnings": list(getattr(result, "warnings", []))[:20],
        "binding": [b.describe() for b in getattr(result, "binding", [])][:10],
        "wall_seconds": round(wall_s, 4),
    }


def store_plan(s: Session, inp: PlanInputs, result: SolvedPlan, reason: str, wall_s: float,
               unchanged_pct: float, trigger: dict[str, float] | None = None) -> Stored:
    """Store ``result`` (a scheduler plan over ``inp``'s horizon) unless it changes nothing;
    earlier active plans of the event become ``superseded`` with their pending rows."""
    ev = inp.event
    first, n = inp.first_index, inp.n_intervals
    starts = inp.horizon_starts()
    ids = [int(i) for i in result.device_ids]
    sp = np.asarray(result.dispatch_setpoint_kw)[:, first:n]
    pw = np.asarray(result.power_kw)[:, first:n]
    rated = {d.device_id: d.rated_power_kw for d in inp.devices}
    tol = np.array([max(MIN_CHANGE_KW, unchanged_pct / 100.0 * abs(rated.get(i, 0.0)))
                    for i in ids])
    if reason != "initial":
        same = unchanged(s, int(ev.id or 0), ids, starts, sp, tol)
        if same is not None:
            return Stored(same, False)
    for old in s.exec(select(DispatchPlan).where(DispatchPlan.event_id == ev.id,
                                                DispatchPlan.status == "active")):
        old.status = "superseded"
        s.add(old)
        s.execute(update(Setpoint).where(col(Setpoint.plan_id) == old.id,
                                         col(Setpoint.status) == "pending")
                  .values(status="superseded"))
    short = np.nan_to_num(np.asarray(result.shortfall_kw)[inp.event_slice])
    plan = DispatchPlan(
        event_id=ev.id, horizon_start=inp.horizon_start, interval_minutes=inp.interval_minutes,
        status="active", objective=float(result.objective_yuan),
        shortfall_kw=float(short.max()) if short.size else 0.0,
        solve_seconds=float(result.solve_time_s),
        detail=_detail(inp, result, reason, wall_s, trigger, starts),
    )
    s.add(plan)
    s.flush()
    rows = [
        {"plan_id": plan.id, "device_id": did, "interval_start": starts[t],
         "setpoint_kw": float(sp[i, t]), "requested_kw": float(pw[i, t]), "status": "pending"}
        for i, did in enumerate(ids) for t in range(len(starts))
    ]
    if rows:
        s.execute(insert(Setpoint), rows)
    return Stored(int(plan.id or 0), True)
