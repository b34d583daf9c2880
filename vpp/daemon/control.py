"""The control loop: plan, dispatch, watch delivery and devices, re-plan, end the call, bring the
devices back over the plan's tail, release.

One step (every ``daemon.control_period_s``, or at once when a call arrives) walks the open
events (``accepted``, ``active``, cancelled ones not yet closed, and any event whose plan is
still active -- in its tail):

* an event within one interval of its start and without an active plan is planned
  (:class:`~vpp.daemon.planning.Planner`; reason ``initial``);
* from its start, the current interval's pending setpoints are written
  (:func:`~vpp.daemon.dispatch.dispatch_interval`); after a restart the setpoints already
  written for this interval are taken from the database, not sent again;
* every device's latest reading is judged against the setpoint it holds
  (:mod:`vpp.daemon.overrides`): a device that overrides it leaves the event for good
  (recorded, audit logged, released) and a re-plan (``override``) moves its share to the others;
* delivery (baseline minus metered power of the plan's devices) is compared with the declared
  capacity; ``daemon.shortfall_checks`` short checks in a row (``shortfall``, the *measured*
  shortfall recorded as the plan's ``trigger``), a planned device going offline, changed owner
  preferences or a plan older than ``scheduler.replan_period_s`` trigger a re-plan (at most
  every ``daemon.min_replan_interval_s``) without the devices that dropped out. A re-plan that
  changes nothing is not written, and each one in a row doubles the wait before the next
  (up to ``scheduler.replan_period_s``);
* at the call's end the event becomes ``completed`` (settlement may run) while its plan stays
  active: the plan's tail setpoints (``[scheduler] event_tail_minutes``) bring the devices back
  as planned; at the tail's end (or at once when the event is cancelled) the devices are
  released, leftover setpoints marked ``stale`` and the plan ``completed``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from vpp.daemon.delivery import latest_bid, signed_response
from vpp.daemon.dispatch import dispatch_interval, written_setpoints
from vpp.daemon.overrides import OverrideWatch, excluded_ids, excluded_out, exclusion_entry
from vpp.daemon.planning import Planner
from vpp.domain.grid_calls import OPEN_EVENT_STATUSES, EventOut, EventStatus, LivePoint
from vpp.errors import ValidationError
from vpp.models import AuditLog, DispatchPlan, GridEvent, Setpoint
from vpp.timeutil import floor_to_interval

if TYPE_CHECKING:
    from vpp.daemon.fleet_runtime import FleetRuntime
    from vpp.daemon.infra import Infra

log = logging.getLogger("vpp.daemon.control")


def _open_events(s: Session, now: datetime) -> list[dict[str, Any]]:
    in_tail = select(DispatchPlan.event_id).where(DispatchPlan.status == "active")
    rows = s.exec(select(GridEvent).where(
        or_(col(GridEvent.status).in_((*OPEN_EVENT_STATUSES, EventStatus.CANCELLED)),
            col(GridEvent.id).in_(in_tail)),
        col(GridEvent.end) > now - timedelta(days=2),
    ).order_by(col(GridEvent.start))).all()
    out = []
    for ev in rows:
        if ev.status == EventStatus.CANCELLED and (ev.detail or {}).get("closed_at"):
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


def _end_call(s: Session, event_id: int) -> bool:
    """The call's window is over: the event is ``completed`` (ready for settlement); its plan
    stays active for the tail. Returns whether the status changed."""
    ev = s.get(GridEvent, event_id)
    if ev is None or ev.status not in OPEN_EVENT_STATUSES:
        return False
    _set_status(s, event_id, EventStatus.COMPLETED)
    return True


def _close(s: Session, event_id: int, now: datetime) -> list[int]:
    """Mark the event's dispatch finished; return the devices to release: those that had
    setpoints written, less those already released when they left the event."""
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
    if ev.status in OPEN_EVENT_STATUSES:
        _set_status(s, event_id, EventStatus.COMPLETED)
    s.add(ev)
    return sorted(written - excluded_ids(ev))


def _save_delivered(s: Session, event_id: int, delivered_kw: float) -> None:
    ev = s.get(GridEvent, event_id)
    if ev is not None:
        ev.detail = {**(ev.detail or {}), "delivered_kw": round(delivered_kw, 3)}
        s.add(ev)


def _tail_end(ev: GridEvent, plan: DispatchPlan | None) -> datetime:
    """When the plan's dispatch ends: its ``tail_end`` (plans made before the tail was
    dispatched have none: the call's end)."""
    end = (plan.detail or {}).get("tail_end") if plan is not None else None
    return datetime.fromisoformat(end) if end else ev.end


class ControlLoop:
    def __init__(self, infra: Infra, fleet: FleetRuntime, planner: Planner) -> None:
        """``fleet``: the devices dispatched, watched and released; ``planner``: the plans."""
        self.infra = infra
        self.fleet = fleet
        self.planner = planner
        self.overrides = OverrideWatch(infra, fleet)
        self._received_at: dict[int, float] = {}  # event id -> perf_counter at the call
        self.live: deque[LivePoint] = deque(maxlen=infra.settings.daemon.live_points)
        self._short: dict[int, int] = {}
        self._short_kw: dict[int, list[tuple[float, float]]] = {}  # (declared, delivered)
        self._useless: dict[int, int] = {}  # re-plans in a row that changed nothing
        self._planned_at: dict[int, float] = {}
        self._done: set[tuple[int, datetime]] = set()
        self._resumed: set[int] = set()
        self._prefs_dirty = False
        self._saved_at: dict[int, float] = {}
        self._dispatched_at: dict[int, float] = {}
        self._active: dict[str, Any] = {}
        self._pending_save: tuple[int, float] | None = None

    def call_accepted(self, event_id: int, received_perf_s: float) -> None:
        """An accepted call (its receipt on :func:`time.perf_counter`, for the call-to-dispatch
        metric): plan and dispatch it now."""
        self._received_at[event_id] = received_perf_s
        self.wake()

    def wake(self) -> None:
        self.infra.supervisor.wake("control")

    def preferences_changed(self, device_id: int) -> None:
        self._prefs_dirty = True
        self.wake()

    # -- the step -------------------------------------------------------------------------
    async def step(self) -> None:
        infra = self.infra
        now = infra.clock()
        events = await infra.db.run(_open_events, now)
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
        minutes = self.infra.settings.service.market_interval_minutes
        step = timedelta(minutes=minutes)
        if ev.status == EventStatus.CANCELLED:
            await self._finish(event_id, now)
            return None
        if now >= ev.end:
            await self._tail(item, now)
            return None
        if now < ev.start - step:
            return None
        plan: DispatchPlan | None = item["plan"]
        if plan is not None and now >= ev.start:
            await self._check_overrides(ev, now)
        reason = self._replan_reason(ev, plan, now)
        if reason is not None:
            if not await self._replan(ev, plan, reason):
                return None
            item = next((x for x in await self.infra.db.run(_open_events, now)
                         if x["event"].id == event_id), item)
            plan = item["plan"]
        if plan is None or now < ev.start:
            return None
        if ev.status == EventStatus.ACCEPTED:
            await self.infra.db.run(_set_status, event_id, EventStatus.ACTIVE)
            ev.status = EventStatus.ACTIVE
        current = await self._dispatch(event_id, plan, now)
        return self._watch(ev, plan, item["declared_kw"], current, step)

    async def _tail(self, item: dict[str, Any], now: datetime) -> None:
        """After the call: the event is completed at once (settlement may run); the plan's
        tail setpoints are written until its tail ends, then the devices are released."""
        ev: GridEvent = item["event"]
        event_id = int(ev.id or 0)
        plan: DispatchPlan | None = item["plan"]
        tail_end = _tail_end(ev, plan)
        if await self.infra.db.run(_end_call, event_id):
            ev.status = EventStatus.COMPLETED
            log.info("call ended; devices come back over the plan's tail",
                     extra={"event_id": event_id, "tail_end": tail_end.isoformat()})
            self.infra.supervisor.wake("settle")
        if plan is None or now >= tail_end:
            await self._finish(event_id, now)
            return
        await self._check_overrides(ev, now)
        await self._dispatch(event_id, plan, now)

    async def _dispatch(self, event_id: int, plan: DispatchPlan, now: datetime) -> datetime:
        """Write the current interval's pending setpoints of ``plan`` once; returns the
        interval's start."""
        infra = self.infra
        minutes = infra.settings.service.market_interval_minutes
        tz = ZoneInfo(infra.settings.service.timezone)
        current = floor_to_interval(now.astimezone(tz), minutes)
        plan_id = int(plan.id or 0)
        if plan_id not in self._resumed:
            # after a restart: what the devices already hold is in the database
            held = await infra.db.run(written_setpoints, plan_id, current)
            for device_id, kw in held.items():
                self.fleet.restore_setpoint(device_id, kw)
            verified = await infra.db.run(written_setpoints, plan_id, current, True)
            await self.overrides.wrote(event_id, verified, now)
            self._resumed.add(plan_id)
        key = (plan_id, current)
        if key not in self._done:
            report = await dispatch_interval(infra, self.fleet, event_id, plan_id, current)
            self._done.add(key)
            await self.overrides.wrote(event_id, report.held, infra.clock())
            if report.sent:
                self._dispatched_at[event_id] = time.monotonic()
            t_recv = self._received_at.pop(event_id, None)
            if t_recv is not None and report.sent:
                infra.metrics.call_to_dispatch.observe(time.perf_counter() - t_recv)
        return current

    async def _check_overrides(self, ev: GridEvent, now: datetime) -> None:
        """Take the devices that override their setpoints out of the event."""
        event_id = int(ev.id or 0)
        found = self.overrides.check(event_id, excluded_ids(ev))
        if found:
            found = await self.overrides.reassert(event_id, found, now)
        if not found:
            return
        await self.overrides.exclude(event_id, found, now)
        ev.detail = {**(ev.detail or {}), "excluded_devices": {
            **{str(o.device_id): exclusion_entry(o, now) for o in found},
            **(ev.detail or {}).get("excluded_devices", {})}}

    def _exclude(self, ev: GridEvent, plan: DispatchPlan | None) -> set[int]:
        """Devices a re-plan leaves out: those that left the event, and planned devices
        found offline."""
        out = excluded_ids(ev)
        fleet = self.fleet
        if plan is not None:
            out |= {int(i) for i in (plan.detail or {}).get("device_ids", [])
                    if fleet.known_offline(int(i))}
        return out

    async def _replan(self, ev: GridEvent, plan: DispatchPlan | None, reason: str) -> bool:
        """Plan ``ev``; False when it cannot be planned."""
        event_id = int(ev.id or 0)
        trigger = self._shortfall_measured(event_id) if reason == "shortfall" else None
        try:
            out = await self.planner.plan(event_id, reason, self._exclude(ev, plan), trigger)
        except ValidationError as exc:
            log.error("cannot plan: %s", exc.message, extra={"event_id": event_id})
            if plan is not None:  # a re-plan that failed waits like one that ran
                self._planned_at[event_id] = time.monotonic()
            return False
        self._planned_at[event_id] = time.monotonic()
        self._short[event_id] = 0
        self._short_kw.pop(event_id, None)
        self._useless[event_id] = 0 if out.changed else self._useless.get(event_id, 0) + 1
        return True

    def _shortfall_measured(self, event_id: int) -> dict[str, float]:
        """The measured shortfall (kW) over the short checks that triggered a re-plan."""
        checks = self._short_kw.get(event_id) or [(0.0, 0.0)]
        declared = sum(c[0] for c in checks) / len(checks)
        delivered = sum(c[1] for c in checks) / len(checks)
        return {"measured_shortfall_kw": round(declared - delivered, 3),
                "measured_delivered_kw": round(delivered, 3), "declared_kw": round(declared, 3)}

    def _replan_reason(self, ev: GridEvent, plan: DispatchPlan | None, now: datetime
                       ) -> str | None:
        event_id = int(ev.id or 0)
        if plan is None:
            return "initial"
        settings = self.infra.settings
        d = settings.daemon
        planned = self._planned_at.get(event_id)
        # after a restart the plan's age comes from the database, so that a restart does not
        # open the door to an immediate re-plan
        since = (time.monotonic() - planned if planned is not None
                 else (now - plan.created_at).total_seconds())
        # the plan still counts on a device that left the event (found this step, or before
        # a restart): move its share at once (devices found in a row: together)
        in_plan = {int(i) for i in (plan.detail or {}).get("device_ids", [])}
        if in_plan & excluded_ids(ev) and since >= d.control.override_replan_after_s:
            return "override"
        # each re-plan in a row that changed nothing doubles the wait before the next
        wait = min(d.min_replan_interval_s * 2 ** self._useless.get(event_id, 0),
                   max(d.min_replan_interval_s, settings.scheduler.replan_period_s))
        if since < wait:
            return None
        fleet = self.fleet
        # not yet polled (just after a restart) is not offline: re-planning then would write
        # the current interval a second time
        if any(fleet.known_offline(int(i))
               for i in (plan.detail or {}).get("device_ids", [])):
            return "device_offline"
        if self._short.get(event_id, 0) >= d.shortfall_checks:
            return "shortfall"
        if self._prefs_dirty:
            return "preferences"
        age = (now - plan.created_at).total_seconds()
        if age >= settings.scheduler.replan_period_s:
            return "periodic"
        return None

    def _watch(self, ev: GridEvent, plan: DispatchPlan, declared_kw: float, current: datetime,
               step: timedelta) -> dict[str, Any]:
        """Compare delivery with the declared capacity; count short checks and keep what
        they measured (the shortfall a ``shortfall`` re-plan reports)."""
        event_id = int(ev.id or 0)
        d = plan.detail or {}
        starts = [datetime.fromisoformat(x) for x in d.get("intervals", [])]
        idx = next((i for i, t in enumerate(starts) if t <= current < t + step), None)
        ids = [int(i) for i in d.get("device_ids", [])]
        fleet = self.fleet
        power = fleet.fleet_power_kw(ids)
        baseline = d["baseline_kw"][idx] if idx is not None else None
        delivered = None
        if power is not None and baseline is not None:
            delivered = signed_response(ev.direction, float(baseline), power)
            self.infra.metrics.delivered_kw.labels(str(event_id)).set(delivered)
            settle_s = max(3 * self.infra.settings.daemon.control_period_s, 10.0)
            ramping = time.monotonic() - self._dispatched_at.get(event_id, 0.0) < settle_s
            tol = self.infra.settings.daemon.shortfall_tolerance_pct / 100
            if not ramping and delivered < declared_kw * (1 - tol):
                self._short[event_id] = self._short.get(event_id, 0) + 1
                checks = self._short_kw.setdefault(event_id, [])
                checks.append((declared_kw, delivered))
                del checks[:-self.infra.settings.daemon.shortfall_checks]
            else:
                self._short[event_id] = 0
                self._short_kw.pop(event_id, None)
        return {"event": ev, "baseline_kw": baseline, "declared_kw": declared_kw,
                "delivered_kw": delivered, "power_kw": power}

    async def _finish(self, event_id: int, now: datetime) -> None:
        infra = self.infra
        devices = await infra.db.run(_close, event_id, now)
        if devices:
            errors = await self.fleet.release(devices)
            for device_id, err in errors.items():
                log.error("device not released: %s", err,
                          extra={"event_id": event_id, "device_id": device_id})
        try:
            infra.metrics.delivered_kw.remove(str(event_id))
        except KeyError:
            pass
        self.overrides.forget(event_id)
        for state in (self._short, self._short_kw, self._useless):
            state.pop(event_id, None)
        log.info("event finished; devices released",
                 extra={"event_id": event_id, "released": len(devices)})
        infra.supervisor.wake("settle")

    # -- the live view --------------------------------------------------------------------
    def _sample(self, now: datetime, active: dict[str, Any]) -> None:
        fleet = self.fleet
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
            power = fleet.fleet_power_kw()
            base = target = None
        if power is not None:
            self.live.append(LivePoint(ts=now, fleet_kw=round(power, 3),
                                       baseline_kw=None if base is None else round(base, 3),
                                       target_kw=None if target is None else round(target, 3)))

    async def save_delivery(self) -> None:
        pending = self._pending_save
        if pending:
            self._pending_save = None
            await self.infra.db.run(_save_delivered, *pending)

    async def live_view(self, points: int) -> dict[str, Any]:
        a = self._active
        series = list(self.live)[-points:]
        out: dict[str, Any] = {"series": series}
        if a:
            out["active_event"] = EventOut.model_validate(a["event"]).model_copy(
                update={"declared_kw": a["declared_kw"], "delivered_kw": a["delivered_kw"],
                        "excluded_devices": excluded_out(a["event"])})
            out["baseline_kw"] = a["baseline_kw"]
            if a["baseline_kw"] is not None:
                sign = -1 if a["event"].direction == "peak_shaving" else 1
                out["target_kw"] = a["baseline_kw"] + sign * a["declared_kw"]
            out["delivered_kw"] = a["delivered_kw"]
        return out

    def close(self) -> None:
        self.planner.close()
