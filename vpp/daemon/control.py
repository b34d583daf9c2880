"""The control loop: plan, dispatch, watch delivery, re-plan, finish.

One step (every ``daemon.control_period_s``, or at once when a call arrives) walks the open
events (``accepted``, ``active``, and cancelled ones not yet closed):

* an event within one interval of its start and without an active plan is planned
  (:class:`~vpp.daemon.planning.Planner`; reason ``initial``);
* from its start, the current interval's pending setpoints are written
  (:func:`~vpp.daemon.dispatch.dispatch_interval`); after a restart the setpoints already
  written for this interval are taken from the database, not sent again;
* delivery (baseline minus metered power of the plan's devices) is compared with the declared
  capacity; ``daemon.shortfall_checks`` short checks in a row, a planned device going offline,
  changed owner preferences or a plan older than ``scheduler.replan_period_s`` trigger a re-plan
  (at most every ``daemon.min_replan_interval_s``) without the devices that dropped out;
* at its end (or when cancelled) devices are released, leftover setpoints marked ``stale``,
  the plan ``completed`` and the event ``completed`` -- ready for settlement.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import Session, col, select

from vpp.api.schemas import EventOut, LivePoint
from vpp.daemon.delivery import latest_bid, signed_response
from vpp.daemon.dispatch import dispatch_interval, written_setpoints
from vpp.daemon.intake import ACCEPTED, ACTIVE, CANCELLED, COMPLETED
from vpp.daemon.planning import Planner
from vpp.errors import ValidationError
from vpp.models import AuditLog, DispatchPlan, GridEvent, Setpoint
from vpp.timeutil import floor_to_interval

if TYPE_CHECKING:
    from vpp.daemon.services import Services

log = logging.getLogger("vpp.daemon.control")


def _open_events(s: Session, now: datetime) -> list[dict[str, Any]]:
    rows = s.exec(select(GridEvent).where(
        col(GridEvent.status).in_((ACCEPTED, ACTIVE, CANCELLED)),
        col(GridEvent.end) > now - timedelta(days=2),
    ).order_by(col(GridEvent.start))).all()
    out = []
    for ev in rows:
        if ev.status == CANCELLED and (ev.detail or {}).get("closed_at"):
            continue
        plan = s.exec(select(DispatchPlan).where(DispatchPlan.event_id == ev.id,
                                                 DispatchPlan.status == "active")
                      .order_by(col(DispatchPlan.id).desc())).first()
        bid = latest_bid(s, int(ev.id or 0))
        out.append({"event": ev, "plan": plan, "declared_kw": bid.declared_kw if bid else 0.0})
    return out


def _set_status(s: Session, event_id: int, status: str) -> None:
    ev = s.get(GridEvent, event_id)
    if ev is not None and ev.status != status:
        s.add(AuditLog(actor="daemon", action="event_status", subject=f"event:{event_id}",
                       detail={"from": ev.status, "to": status}))
        ev.status = status
        s.add(ev)


def _close(s: Session, event_id: int, now: datetime) -> list[int]:
    """Mark the event finished; return the devices that had setpoints written."""
    ev = s.get(GridEvent, event_id)
    if ev is None:
        return []
    written: set[int] = set()
    for plan in s.exec(select(DispatchPlan).where(DispatchPlan.event_id == event_id)):
        s.execute(update(Setpoint).where(col(Setpoint.plan_id) == plan.id,
                                         col(Setpoint.status) == "pending").values(status="stale"))
        written |= {int(r) for r in s.exec(select(Setpoint.device_id).where(
            Setpoint.plan_id == plan.id, col(Setpoint.written_at).is_not(None))).all()}
        if plan.status == "active":
            plan.status = "completed"
            s.add(plan)
    ev.detail = {**(ev.detail or {}), "closed_at": now.isoformat()}
    if ev.status != CANCELLED:
        _set_status(s, event_id, COMPLETED)
    s.add(ev)
    return sorted(written)


def _save_delivered(s: Session, event_id: int, delivered_kw: float) -> None:
    ev = s.get(GridEvent, event_id)
    if ev is not None:
        ev.detail = {**(ev.detail or {}), "delivered_kw": round(delivered_kw, 3)}
        s.add(ev)


class ControlLoop:
    def __init__(self, services: Services, planner: Planner | None = None) -> None:
        self.services = services
        self.planner = planner or Planner(services)
        self.live: deque[LivePoint] = deque(maxlen=services.settings.daemon.live_points)
        self._short: dict[int, int] = {}
        self._planned_at: dict[int, float] = {}
        self._done: set[tuple[int, datetime]] = set()
        self._resumed: set[int] = set()
        self._prefs_dirty = False
        self._saved_at: dict[int, float] = {}
        self._dispatched_at: dict[int, float] = {}
        self._active: dict[str, Any] = {}
        self._pending_save: tuple[int, float] | None = None

    def wake(self) -> None:
        self.services.supervisor.wake("control")

    def preferences_changed(self, device_id: int) -> None:
        self._prefs_dirty = True
        self.wake()

    # -- the step -------------------------------------------------------------------------
    async def step(self) -> None:
        services = self.services
        now = services.clock()
        events = await services.db.run(_open_events, now)
        active: dict[str, Any] = {}
        for item in events:
            got = await self._handle(item, now)
            if got:
                active = got
        self._prefs_dirty = False
        self._active = active
        self._sample(now, active)
        await self.save_delivery()

    async def _handle(self, item: dict[str, Any], now: datetime) -> dict[str, Any] | None:
        ev: GridEvent = item["event"]
        event_id = int(ev.id or 0)
        services = self.services
        minutes = services.settings.service.market_interval_minutes
        step = timedelta(minutes=minutes)
        if ev.status == CANCELLED or now >= ev.end:
            await self._finish(event_id, now)
            return None
        if now < ev.start - step:
            return None
        plan: DispatchPlan | None = item["plan"]
        reason = self._replan_reason(ev, plan, now)
        if reason is not None:
            exclude = set()
            if plan is not None and services.fleet is not None:
                exclude = {i for i in (plan.detail or {}).get("device_ids", [])
                           if services.fleet.known_offline(int(i))}
            try:
                await self.planner.plan(event_id, reason, exclude)
            except ValidationError as exc:
                log.error("cannot plan: %s", exc.message, extra={"event_id": event_id})
                return None
            self._planned_at[event_id] = time.monotonic()
            self._short[event_id] = 0
            item = next((x for x in await services.db.run(_open_events, now)
                         if x["event"].id == event_id), item)
            plan = item["plan"]
        if plan is None or now < ev.start:
            return None
        if ev.status == ACCEPTED:
            await services.db.run(_set_status, event_id, ACTIVE)
            ev.status = ACTIVE
        tz = ZoneInfo(services.settings.service.timezone)
        current = floor_to_interval(now.astimezone(tz), minutes)
        plan_id = int(plan.id or 0)
        if plan_id not in self._resumed:
            # after a restart: what the devices already hold is in the database
            held = await services.db.run(written_setpoints, plan_id, current)
            if services.fleet is not None:
                for device_id, kw in held.items():
                    services.fleet.restore_setpoint(device_id, kw)
            self._resumed.add(plan_id)
        key = (plan_id, current)
        if key not in self._done:
            report = await dispatch_interval(services, event_id, plan_id, current)
            self._done.add(key)
            if report.sent:
                self._dispatched_at[event_id] = time.monotonic()
            t_recv = services.intake.received_at.pop(event_id, None) if services.intake else None
            if t_recv is not None and report.sent:
                services.metrics.call_to_dispatch.observe(time.perf_counter() - t_recv)
        return self._watch(ev, plan, item["declared_kw"], current, step)

    def _replan_reason(self, ev: GridEvent, plan: DispatchPlan | None, now: datetime
                       ) -> str | None:
        event_id = int(ev.id or 0)
        if plan is None:
            return "initial"
        settings = self.services.settings
        planned = self._planned_at.get(event_id)
        # after a restart the plan's age comes from the database, so that a restart does not
        # open the door to an immediate re-plan
        since = (time.monotonic() - planned if planned is not None
                 else (now - plan.created_at).total_seconds())
        if since < settings.daemon.min_replan_interval_s:
            return None
        fleet = self.services.fleet
        # not yet polled (just after a restart) is not offline: re-planning then would write
        # the current interval a second time
        if fleet is not None and any(fleet.known_offline(int(i))
                                     for i in (plan.detail or {}).get("device_ids", [])):
            return "device_offline"
        if self._short.get(event_id, 0) >= settings.daemon.shortfall_checks:
            return "shortfall"
        if self._prefs_dirty:
            return "preferences"
        age = (now - plan.created_at).total_seconds()
        if age >= settings.scheduler.replan_period_s:
            return "periodic"
        return None

    def _watch(self, ev: GridEvent, plan: DispatchPlan, declared_kw: float, current: datetime,
               step: timedelta) -> dict[str, Any]:
        """Compare delivery with the declared capacity; count short checks."""
        event_id = int(ev.id or 0)
        d = plan.detail or {}
        starts = [datetime.fromisoformat(x) for x in d.get("intervals", [])]
        idx = next((i for i, t in enumerate(starts) if t <= current < t + step), None)
        ids = [int(i) for i in d.get("device_ids", [])]
        fleet = self.services.fleet
        power = fleet.fleet_power_kw(ids) if fleet is not None else None
        baseline = d["baseline_kw"][idx] if idx is not None else None
        delivered = None
        if power is not None and baseline is not None:
            delivered = signed_response(ev.direction, float(baseline), power)
            self.services.metrics.delivered_kw.labels(str(event_id)).set(delivered)
            settle_s = max(3 * self.services.settings.daemon.control_period_s, 10.0)
            ramping = time.monotonic() - self._dispatched_at.get(event_id, 0.0) < settle_s
            tol = self.services.settings.daemon.shortfall_tolerance_pct / 100
            if not ramping and delivered < declared_kw * (1 - tol):
                self._short[event_id] = self._short.get(event_id, 0) + 1
            else:
                self._short[event_id] = 0
        return {"event": ev, "baseline_kw": baseline, "declared_kw": declared_kw,
                "delivered_kw": delivered, "power_kw": power}

    async def _finish(self, event_id: int, now: datetime) -> None:
        services = self.services
        devices = await services.db.run(_close, event_id, now)
        if services.fleet is not None and devices:
            errors = await services.fleet.release(devices)
            for device_id, err in errors.items():
                log.error("device not released: %s", err,
                          extra={"event_id": event_id, "device_id": device_id})
        try:
            services.metrics.delivered_kw.remove(str(event_id))
        except KeyError:
            pass
        log.info("event finished; devices released",
                 extra={"event_id": event_id, "released": len(devices)})
        services.supervisor.wake("settle")

    # -- the live view --------------------------------------------------------------------
    def _sample(self, now: datetime, active: dict[str, Any]) -> None:
        fleet = self.services.fleet
        if active:
            power = active["power_kw"]
            base = active["baseline_kw"]
            target = base - active["declared_kw"] if base is not None else None
            if active["event"].direction != "peak_shaving" and base is not None:
                target = base + active["declared_kw"]
            delivered = active["delivered_kw"]
            ev = active["event"]
            if delivered is not None and time.monotonic() - self._saved_at.get(ev.id, 0) > 15:
                self._saved_at[ev.id] = time.monotonic()
                self._pending_save = (int(ev.id), delivered)
        else:
            power = fleet.fleet_power_kw() if fleet is not None else None
            base = target = None
        if power is not None:
            self.live.append(LivePoint(ts=now, fleet_kw=round(power, 3),
                                       baseline_kw=None if base is None else round(base, 3),
                                       target_kw=None if target is None else round(target, 3)))

    async def save_delivery(self) -> None:
        pending = self._pending_save
        if pending:
            self._pending_save = None
            await self.services.db.run(_save_delivered, *pending)

    async def live_view(self, points: int) -> dict[str, Any]:
        a = self._active
        series = list(self.live)[-points:]
        out: dict[str, Any] = {"series": series}
        if a:
            out["active_event"] = EventOut.model_validate(a["event"]).model_copy(
                update={"declared_kw": a["declared_kw"], "delivered_kw": a["delivered_kw"]})
            out["baseline_kw"] = a["baseline_kw"]
            if a["baseline_kw"] is not None:
                sign = -1 if a["event"].direction == "peak_shaving" else 1
                out["target_kw"] = a["baseline_kw"] + sign * a["declared_kw"]
            out["delivered_kw"] = a["delivered_kw"]
        return out

    def close(self) -> None:
        self.planner.close()
