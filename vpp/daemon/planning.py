"""Plan an event: database and telemetry in, :mod:`vpp.scheduler` in an executor, plan rows out.

The horizon is the event's intervals plus ``[scheduler] event_tail_minutes`` (4 h) in which
the rebound of buildings, the industrial make-up and the batteries' recharge to their state of
charge at the call must fit (setpoints are written for the call and the tail, see
:mod:`vpp.daemon.plan_store`); intervals
before the current one are pinned (``now_index``), so every plan of one event has the same QP
structure and a re-plan re-solves it warm. Devices: enrolled, active, polled (their
state is known), not opted out (``preferences.participate = false``, or ``opt_out_until`` after
the event's start: :func:`bidding.participants.opted_out`) and of an owner with a
declared share in the event's bid (settlement counts only those owners); owner preferences
narrow their parameters (comfort band, shed minutes, reserve state of charge, EV departure).

Baselines are fixed once per event, at its first plan or ahead of it, and stored in
``GridEvent.detail`` (``baseline_kw`` over the call, ``tail_baseline_kw`` over the tail): re-plans,
restarts and settlement all use the same numbers. They follow the simulator's rule
(:mod:`forecasting.device_baselines`, read from the telemetry table by
:mod:`vpp.daemon.plan_baselines`): each owner's programme baseline days, each device's mean over
them; where there are none, the mean of the minutes before the call, else the last reading.
The scheduler's view of each device is :func:`vpp.scheduler.device_view.scheduler_device`
and the solve :class:`vpp.scheduler.call_solver.CallSolver`, both shared with the simulator.

The call asks the QP for the bid's declared reduction in every interval and at most
``[scheduler] target_margin_pct`` (5%) more, never past the programme's band ceiling (over-
delivery there is unpaid comfort and rebound: the peak price alone made the first 100-building
run shed 25% over); over the tail the fleet's power stays between its baseline and baseline x
(1 + ``[scheduler] rebound_max_pct``/100), both soft (:mod:`vpp.scheduler.call_rows`). A
valley-filling call is the same plan with the sign reversed (``direction_sign`` -1): the
declared rise above the baseline, the same ceiling, and over the tail the fleet between
baseline x (1 - pct/100) and its baseline.

The solve runs in a one-thread executor (never on the event loop) through
:class:`vpp.scheduler.service.Scheduler`, which keeps the built QP while the fleet's structure is
unchanged and merges identical devices into exact virtual devices (``aggregate=True``). The result is one ``DispatchPlan`` row (``detail``: intervals, devices, fleet
baseline and target, per-owner baselines) and one ``Setpoint`` row per device and interval of
the call and its tail, written in bulk; older plans of the event become ``superseded``; a
re-plan that changes nothing is not written (:mod:`vpp.daemon.plan_store`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
from sqlmodel import Session, col, select

from bidding.core import direction_sign
from bidding.participants import DeviceStanding, opted_out, participants
from bidding.programme import load_programme
from vpp.bids import declared_by_owner
from vpp.daemon.delivery import latest_bid
from vpp.daemon.plan_baselines import fix_event_baselines
from vpp.daemon.plan_inputs import PlanInputs
from vpp.daemon.plan_store import Stored, store_plan
from vpp.device_kinds import (
    DeviceKind,
    parse_params,
)
from vpp.errors import NotFoundError, ValidationError
from vpp.models import (
    Device,
    DeviceStatus,
    GridEvent,
)
from vpp.scheduler.call_solver import CallRequest, CallSolver
from vpp.scheduler.device_view import ev_session_from_preferences, scheduler_device
from vpp.scheduler.inputs import FleetDevice, Params
from vpp.scheduler.partition import PartitionedScheduler
from vpp.scheduler.plan import SolvedPlan
from vpp.telemetry_store import interval_means

if TYPE_CHECKING:
    from vpp.daemon.fleet_runtime import FleetRuntime
    from vpp.daemon.infra import Infra

log = logging.getLogger("vpp.daemon.planning")



@dataclass
class PlanOutcome:
    plan_id: int
    devices: int
    shortfall_kw: float
    solve_seconds: float
    current_interval: datetime
    changed: bool = True  # False: a re-plan equal to the active plan, not written


def event_intervals(ev: GridEvent, minutes: int) -> list[datetime]:
    step = timedelta(minutes=minutes)
    n = math.ceil((ev.end - ev.start) / step)
    return [ev.start + i * step for i in range(n)]


def _shed_so_far(s: Session, devices: list[Device], baseline_kw: dict[str, list[float]],
                 past: list[datetime], minutes: int) -> dict[int, float]:
    """Energy (kWh) each load has shed in the event's past intervals ``past``: its fixed
    baseline minus its metered interval mean, where positive. An interval without readings
    counts as shed at the load's full depth, so that a re-plan never gives a load more shed
    time than its declared limit (comfort and production first)."""
    loads = [d for d in devices if d.kind in (DeviceKind.COMMERCIAL_BUILDING.value,
                                              DeviceKind.INDUSTRIAL_LOAD.value)]
    if not past or not loads:
        return {}
    dt_h = minutes / 60.0
    means = interval_means(s.connection(), [int(d.id or 0) for d in loads], past[0],
                           past[-1] + timedelta(minutes=minutes), minutes)
    got = {(int(r.device_id), pd.Timestamp(r.interval_start)): float(r.power_kw)
           for r in means.itertuples() if np.isfinite(r.power_kw)}
    out = {}
    for d in loads:
        did = int(d.id or 0)
        row = baseline_kw.get(str(did))
        if row is None:
            continue
        params = parse_params(DeviceKind(d.kind), d.params)
        depth = float(getattr(params, "max_shed_kw", getattr(params, "max_curtail_kw", 0.0)))
        kwh = 0.0
        for i, t in enumerate(past):
            kw = got.get((did, pd.Timestamp(t).tz_convert("UTC")))
            kwh += (depth if kw is None else max(row[i] - kw, 0.0)) * dt_h
        out[did] = kwh
    return out


@dataclass(frozen=True)
class _EventBaselines:
    """The event's fixed baselines, kW per device id (str): over the call and over the tail."""
    call_kw: dict[str, list[float]]
    tail_kw: dict[str, list[float]]


@dataclass(frozen=True)
class _PlanFleet:
    """The devices planned (with a state) and their baselines (kW per horizon interval)."""
    devices: list[FleetDevice]
    baseline_rows: list[np.ndarray]


class Planner:
    def __init__(self, infra: Infra, fleet: FleetRuntime) -> None:
        """``fleet``: which devices are online and their latest states (charge, power)."""
        self.infra = infra
        self.fleet = fleet
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vpp-solver")
        sch = infra.settings.scheduler
        minutes = infra.calendar.interval_minutes
        # fleets above [scheduler] partition_size: split by owner, solved on Dask (the cluster
        # at dask_scheduler_address, or an in-process one started at the first such plan)
        self.solver = CallSolver(sch, minutes, PartitionedScheduler(
            sch.partition_size, sch.dask_scheduler_address, minutes))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.solver.close()

    # -- baselines ------------------------------------------------------------------------
    def fix_baselines(self, s: Session, event_id: int) -> int:
        """Fix an accepted event's baselines ahead of its start; returns the devices covered."""
        ev = s.get(GridEvent, event_id)
        if ev is None:
            raise NotFoundError(f"no event {event_id}")
        if "baseline_kw" in (ev.detail or {}):
            return len(ev.detail["baseline_kw"])
        devices = self._devices(s, set(), start=ev.start)
        if not devices:
            raise ValidationError(f"event {event_id}: no active, polled device yet")
        intervals = event_intervals(ev, self.infra.calendar.interval_minutes)
        ev.detail = {**(ev.detail or {}), **self._fixed_baselines(s, ev, devices, intervals)}
        s.add(ev)
        return len(ev.detail["baseline_kw"])

    def _fixed_baselines(self, s: Session, ev: GridEvent, devices: list[Device],
                         intervals: list[datetime]) -> dict[str, Any]:
        """The event's baselines to store (:func:`vpp.daemon.plan_baselines.
        fix_event_baselines`): over the call (``baseline_kw``, what settlement uses) and over
        the planning tail after it (``tail_baseline_kw``), by the same method."""
        return fix_event_baselines(s, self.infra.db.engine, ev, devices, intervals,
                                   self.infra.settings, self.infra.calendar,
                                   self.fleet.latest).detail()

    def _devices(self, s: Session, exclude: set[int],
                 owner_declared_kw: dict[int, float] | None = None, *,
                 start: datetime) -> list[Device]:
        """The devices taking part in an event starting at ``start``
        (:func:`bidding.participants.participants`)."""
        fleet = self.fleet
        rows = list(s.exec(select(Device).where(Device.status == DeviceStatus.ACTIVE.value)
                           .order_by(col(Device.id))))
        keep = set(participants([DeviceStanding(
            device_id=int(d.id or 0), owner_id=d.owner_id, active=True,
            opted_out=opted_out(d.preferences, start), excluded=int(d.id or 0) in exclude,
            online=fleet.is_online(int(d.id or 0))) for d in rows],
            owner_declared_kw))
        return [d for d in rows if int(d.id or 0) in keep]

    async def solve_on_solver_thread(self, devices: Sequence[FleetDevice],
                                     request: CallRequest) -> SolvedPlan:
        """Solve ``request`` for ``devices`` on the planner's solver thread (its CallSolver
        serves one plan at a time): for another part that plans a call as the planner would
        (the batteries' reserve for a day-ahead call, :mod:`vpp.daemon.tou_dispatch`)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, lambda: self.solver.solve(devices, request, self.solver.options()))

    def plan_inputs(self, s: Session, event_id: int, now: datetime) -> PlanInputs:
        """The inputs of a plan of ``event_id`` at ``now`` with every device (see
        :meth:`_prepare`)."""
        return self._prepare(s, event_id, now, set())

    # -- inputs ---------------------------------------------------------------------------
    def _prepare(self, s: Session, event_id: int, now: datetime,
                 exclude: set[int]) -> PlanInputs:
        """The inputs of one plan of ``event_id`` at ``now`` (aware) without the devices in
        ``exclude``; the event's baselines are fixed (stored) at its first plan."""
        settings = self.infra.settings
        ev = s.get(GridEvent, event_id)
        if ev is None:
            raise NotFoundError(f"no event {event_id}")
        bid = latest_bid(s, event_id)
        if bid is None:
            raise ValidationError(f"event {event_id} has no bid to plan for")
        cal = self.infra.calendar
        minutes = cal.interval_minutes
        intervals = event_intervals(ev, minutes)
        h0 = cal.floor(max(now, ev.start))
        # only the owners in the bid are dispatched: settlement counts only their response,
        # and an owner who declared nothing is not asked to shed without pay
        devices = self._devices(s, exclude, declared_by_owner(s, bid), start=ev.start)
        stored = self._event_baselines(s, ev, devices, intervals)
        step = timedelta(minutes=minutes)
        first = next((i for i, t in enumerate(intervals) if t + step > h0), None)
        if first is None:
            raise ValidationError(f"event {event_id} has ended; nothing to plan")
        # One horizon per event (its intervals and the rebound/make-up tail), the past pinned
        # (``now_index = first``): every re-plan of the event, interval after interval, has the
        # same structure and re-solves the built QP warm instead of rebuilding it.
        n = max(len(intervals) + settings.scheduler.tail_intervals(minutes), 2)
        fleet = self._plan_fleet(s, devices, stored, intervals, h0, first, n)
        if not fleet.devices:
            raise ValidationError(f"event {event_id}: no active, polled device to plan with")
        index = pd.date_range(intervals[0], periods=n, freq=f"{minutes}min")
        try:
            programme = load_programme(ev.programme, settings.bidding.programmes_dir,
                                       h0.date())
            price = programme.tariff.price_series(index).to_numpy()
        except (ValidationError, NotFoundError) as exc:
            raise ValidationError(f"event {event_id}: no tariff for the horizon: {exc}") from None
        return PlanInputs(
            event=ev, devices=fleet.devices, baseline_kw=np.vstack(fleet.baseline_rows),
            price_yuan_per_kwh=price, horizon_start=h0, n_intervals=n,
            first_index=first, n_event_intervals=len(intervals) - first,
            intervals=intervals[first:], declared_kw=bid.declared_kw,
            band_upper_pct=float(programme.band.upper_pct),
            direction_sign=direction_sign(ev.direction),
            interval_minutes=minutes, owner_of_device={int(d.id or 0): d.owner_id for d in devices})

    def _event_baselines(self, s: Session, ev: GridEvent, devices: list[Device],
                         intervals: list[datetime]) -> _EventBaselines:
        """The event's stored baselines (kW per device id), fixed and stored now if not yet."""
        detail = dict(ev.detail or {})
        if "baseline_kw" not in detail:
            detail |= self._fixed_baselines(s, ev, devices, intervals)
            ev.detail = detail
            s.add(ev)
        return _EventBaselines(detail["baseline_kw"], detail.get("tail_baseline_kw") or {})

    def _plan_fleet(self, s: Session, devices: list[Device], stored: _EventBaselines,
                    intervals: list[datetime], h0: datetime, first: int, n: int) -> _PlanFleet:
        """The scheduler's view of each device with a state (and a valid one), its baseline
        over the ``n`` horizon intervals, and the energy it already shed (kWh) before
        ``first``; a device left out is logged."""
        cal = self.infra.calendar
        minutes, tz, step = cal.interval_minutes, cal.zone, cal.step
        fleet = _PlanFleet([], [])
        shed_past = _shed_so_far(s, devices, stored.call_kw, intervals[:first], minutes)
        for d in devices:
            did = int(d.id or 0)
            st = self.fleet.latest(did)
            if st is None:
                continue
            row = stored.call_kw.get(str(did))
            if row is None:  # joined after the event's baselines were fixed: hold its power
                row = [float(st.power_kw)] * len(intervals)
            # the tail's baseline as fixed with the event's (events fixed before the tail was
            # stored, or a device that joined later: its last value held)
            row = (row + list(stored.tail_kw.get(str(did), [])))[:n]
            vals = np.array(row + [row[-1]] * (n - len(row)), dtype=float)
            try:
                fd = scheduler_device(
                    did, DeviceKind(d.kind), cast(Params, parse_params(DeviceKind(d.kind), d.params)),
                    rated_power_kw=d.rated_power_kw, min_setpoint_kw=d.min_setpoint_kw,
                    max_setpoint_kw=d.max_setpoint_kw, owner=str(d.owner_id), state=st,
                    preferences=d.preferences or {}, horizon_intervals=n,
                    sessions=ev_session_from_preferences(d.preferences or {}, h0.astimezone(tz),
                                                         step, first),
                    interval_minutes=minutes)
                if did in shed_past:
                    # the rebound / make-up of that energy comes after the event, where the
                    # plan writes no setpoints: not re-planned (as a debt it could make the
                    # re-plan infeasible with less of the horizon left to recover it)
                    fd = replace(fd, shed_used_kwh=shed_past[did])
                fleet.devices.append(fd)
            except ValidationError as exc:
                log.warning("device left out of the plan: %s", exc, extra={"device_id": did})
                continue
            fleet.baseline_rows.append(vals)
        return fleet

    def _solve(self, inp: PlanInputs) -> SolvedPlan:
        """In the solver thread, through :class:`vpp.scheduler.call_solver.CallSolver` (the
        simulator's path too): one built QP per horizon length, so a re-plan of the same event
        re-solves instead of rebuilding; a fleet above ``[scheduler] partition_size`` devices
        goes to the partitioned path. An event's first plan runs to the tolerance; a re-plan,
        which holds up the control loop, stops at ``[scheduler] replan_time_limit_s`` with
        OSQP's iterate as its plan."""
        sch = self.infra.settings.scheduler
        limit = sch.replan_time_limit_s if inp.reason != "initial" else 0.0
        return self.solver.solve(inp.devices, inp.request(), self.solver.options(limit))

    def _store(self, s: Session, inp: PlanInputs, result: SolvedPlan, reason: str,
               wall_s: float) -> Stored:
        """The plan and its setpoint rows over the call and the tail (:mod:`.plan_store`);
        a re-plan that changes nothing is not written."""
        return store_plan(s, inp, result, reason, wall_s,
                          self.infra.settings.daemon.control.unchanged_pct,
                          inp.trigger)

    async def plan(self, event_id: int, reason: str, exclude: set[int] | None = None,
                   trigger: dict[str, float] | None = None) -> PlanOutcome:
        """Plan (or re-plan) ``event_id`` without the devices in ``exclude``. ``trigger``: what
        the control loop measured that made it re-plan (kW), kept in the plan's detail."""
        infra = self.infra
        t0 = time.perf_counter()
        now = infra.clock()
        inp = replace(await infra.db.run(self._prepare, event_id, now, set(exclude or ())),
                      reason=reason, trigger=trigger)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._pool, self._solve, inp)
        wall = time.perf_counter() - t0
        stored = await infra.db.run(self._store, inp, result, reason, wall)
        infra.metrics.solve_seconds.observe(float(result.solve_time_s))
        short = float(np.nan_to_num(np.asarray(result.shortfall_kw)[inp.event_slice]).max())
        # the plan's own shortfall (what the devices cannot cover on paper) is not the
        # measured one that triggered a "shortfall" re-plan: both are logged, by name
        extra = {"event_id": event_id, "plan_id": stored.plan_id, "reason": reason,
                 "devices": len(inp.devices), "planned_shortfall_kw": round(short, 1),
                 "solve_s": round(float(result.solve_time_s), 3), **(trigger or {})}
        if stored.changed:
            infra.metrics.plans.labels(reason).inc()
            log.info("planned", extra=extra)
        else:
            log.info("re-plan changes nothing (same devices, same setpoints); not written",
                     extra=extra)
        return PlanOutcome(stored.plan_id, len(inp.devices), short,
                           float(result.solve_time_s), inp.intervals[0], stored.changed)
