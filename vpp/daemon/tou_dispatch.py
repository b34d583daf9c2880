"""Batteries between calls in the daemon: the schedule against the programme's tariff
(:func:`vpp.scheduler.tou.tou_schedule`), applied while ``[scheduler] tou_schedule`` is on.

One plan per market interval (the loop runs at the control period; it plans again when the
interval, the batteries to schedule or the next call change):

* **Batteries**: active, polled and online, with a state of charge, not in an event's active
  plan (a call and its tail own their devices: calls first), of the scheduler's view
  (:func:`vpp.scheduler.device_view.scheduler_device`, the owner's reserve SoC included).
* **Horizon**: from the current interval to the start of the next open event (accepted, not
  started), at most ``[scheduler] horizon_intervals``; nothing is written when a call starts
  within the current interval (its plan takes over).
* **Reserve**: for a day-ahead call ahead, the planner's plan of that call (the same inputs and
  :class:`~vpp.scheduler.call_solver.CallSolver` as its real plan) with every battery full;
  :func:`~vpp.scheduler.tou.call_reserves` reads what it draws from each. Stored once in the
  event's ``detail["battery_reserve"]`` (device id -> target SoC %, reserve kWh), which the
  event's API view shows; the schedule ends the horizon at it.
* **Export rule**: the host site's load is its last reading (site import minus the battery's
  power), held over the horizon (ASSUMPTION: no site-load forecast yet); a battery without a
  site meter does not discharge below zero unless the programme counts export
  (:func:`bidding.export_rule.battery_discharge_cap_kw`).
* **Write**: the current interval's setpoint through :meth:`FleetRuntime.apply` (clamped to the
  device's limits, read back), only where it moved by more than ``[daemon.control]
  unchanged_pct`` of the rating from what the device holds.

The schedule's solve runs in its own one-thread executor, the call's plan for its reserve on
the planner's solver thread; never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd
from sqlmodel import Session, col, select

from bidding.export_rule import battery_discharge_cap_kw
from bidding.programme import load_programme
from vpp.daemon.plan_inputs import PlanInputs
from vpp.device_kinds import BatteryParams, DeviceKind, parse_params
from vpp.errors import NotFoundError, ValidationError
from vpp.models import Device, DeviceStatus, DispatchPlan, GridEvent
from vpp.scheduler.device_view import scheduler_device
from vpp.scheduler.inputs import FleetDevice, Params
from vpp.scheduler.model import SolverOptions
from vpp.scheduler.tou import BatteryReserve, TouPlan, call_reserves, tou_schedule

if TYPE_CHECKING:
    from vpp.daemon.fleet_runtime import FleetRuntime
    from vpp.daemon.infra import Infra
    from vpp.daemon.planning import Planner

log = logging.getLogger("vpp.daemon.tou")


@dataclass(frozen=True)
class TouInputs:
    """One schedule's inputs: the batteries, the horizon (its first interval, aware) and its
    length, the tariff per interval, the discharge caps (kW), the next call (None: none within
    the horizon) and its reserves (None: not computed yet)."""

    devices: list[FleetDevice]
    start: datetime
    n_intervals: int
    price_yuan_per_kwh: np.ndarray
    discharge_cap_kw: np.ndarray
    next_event_id: int | None
    reserves: tuple[BatteryReserve, ...] | None


class TouDispatcher:
    """The daemon's part that runs the batteries between calls (module docstring)."""

    def __init__(self, infra: Infra, fleet: FleetRuntime, planner: Planner) -> None:
        self.infra = infra
        self.fleet = fleet
        self.planner = planner
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vpp-tou")
        #: what the last plan was made for: its interval, batteries and next call
        self._done: tuple[datetime, tuple[int, ...], int | None] | None = None
        self.last: TouPlan | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def step(self) -> None:
        """Plan and write the current interval (at most once per interval and fleet state)."""
        if not self.infra.settings.scheduler.tou_schedule:
            return
        h0 = self.infra.calendar.floor(self.infra.clock())
        inp = await self.infra.db.run(self._inputs, h0)
        if inp is None:
            return
        key = (h0, tuple(d.device_id for d in inp.devices), inp.next_event_id)
        if self._done == key:
            return
        if inp.reserves is None:  # a call ahead whose reserve is not known yet
            inp = replace(inp, reserves=await self._reserves(inp))
        loop = asyncio.get_running_loop()
        plan = await loop.run_in_executor(self._pool, self._solve, inp)
        self.last = plan
        await self._write(inp, plan)
        self._done = key

    # -- inputs (database thread) ----------------------------------------------------------
    def _inputs(self, s: Session, h0: datetime) -> TouInputs | None:
        settings = self.infra.settings
        cal = self.infra.calendar
        held = set()
        for plan in s.exec(select(DispatchPlan).where(DispatchPlan.status == "active")):
            held |= {int(i) for i in (plan.detail or {}).get("device_ids", [])}
        nxt = s.exec(select(GridEvent).where(
            col(GridEvent.status).in_(("accepted",)), col(GridEvent.start) >= h0)
            .order_by(col(GridEvent.start))).first()
        n = settings.scheduler.horizon_intervals
        reserves: tuple[BatteryReserve, ...] | None = ()
        event_id = None
        if nxt is not None and nxt.start < h0 + n * cal.step:
            n = int((nxt.start - h0) / cal.step)
            event_id = int(nxt.id or 0)
            reserves = _stored_reserves(nxt, n)
        if n < 2:
            return None  # a call starts now: its plan owns the batteries
        devices, caps = self._batteries(s, held, n, h0)
        if not devices:
            return None
        prog = load_programme(settings.bidding.programme, settings.bidding.programmes_dir,
                              h0.date())
        index = pd.date_range(h0, periods=n, freq=f"{cal.interval_minutes}min")
        base = np.zeros((len(devices), n))
        cap = battery_discharge_cap_kw(prog.export_counts, base, caps[:, None] + base)
        if reserves:
            ids = {d.device_id for d in devices}
            reserves = tuple(r for r in reserves if r.device_id in ids)
        return TouInputs(devices, h0, n, prog.tariff.price_series(index).to_numpy(), cap,
                         event_id, reserves)

    def _batteries(self, s: Session, held: set[int], n: int, h0: datetime
                   ) -> tuple[list[FleetDevice], np.ndarray]:
        """The batteries to schedule and their host site's load (kW; NaN: no site meter)."""
        cal = self.infra.calendar
        out, host = [], []
        rows = s.exec(select(Device).where(Device.status == DeviceStatus.ACTIVE.value,
                                           Device.kind == DeviceKind.BATTERY.value)
                      .order_by(col(Device.id)))
        for d in rows:
            did = int(d.id or 0)
            st = self.fleet.latest(did)
            if did in held or st is None or not self.fleet.is_online(did):
                continue
            try:
                fd = scheduler_device(
                    did, DeviceKind.BATTERY,
                    cast(Params, parse_params(DeviceKind.BATTERY, d.params)),
                    rated_power_kw=d.rated_power_kw, min_setpoint_kw=d.min_setpoint_kw,
                    max_setpoint_kw=d.max_setpoint_kw, owner=str(d.owner_id), state=st,
                    preferences=d.preferences or {}, sessions=(), horizon_intervals=n,
                    interval_minutes=cal.interval_minutes)
            except ValidationError as exc:
                log.warning("battery left out of the schedule: %s", exc,
                            extra={"device_id": did})
                continue
            out.append(fd)
            site = st.site_import_kw
            host.append(np.nan if site is None else max(site - st.power_kw, 0.0))
        return out, np.array(host, dtype=float)

    # -- the next call's reserve ------------------------------------------------------------
    async def _reserves(self, inp: TouInputs) -> tuple[BatteryReserve, ...]:
        """The reserve of the next call (module docstring), stored with the event; none for a
        call that is not day-ahead or cannot be planned yet (said in the log)."""
        event_id = inp.next_event_id
        assert event_id is not None
        try:
            call = await self.infra.db.run(self._call_inputs, event_id)
            if call is None:  # not a day-ahead peak-shaving call: nothing to hold
                await self.infra.db.run(_store_reserves, event_id, ())
                return ()
            full = [_full(d) for d in call.devices]
            plan = await self.planner.solve_on_solver_thread(full, call.request())
        except (ValidationError, NotFoundError) as exc:
            log.warning("no battery reserve for the call: %s", exc,
                        extra={"event_id": event_id})
            return ()  # tried again next interval
        got = call_reserves(plan, [d for d in full if d.kind is DeviceKind.BATTERY], 0,
                            call.n_event_intervals)
        await self.infra.db.run(_store_reserves, event_id, got)
        ids = {d.device_id for d in inp.devices}
        return tuple(replace(r, call_start_index=inp.n_intervals) for r in got
                     if r.device_id in ids)

    def _call_inputs(self, s: Session, event_id: int) -> PlanInputs | None:
        ev = s.get(GridEvent, event_id)
        if ev is None or ev.event_type != "day_ahead" or ev.direction != "peak_shaving":
            return None
        return self.planner.plan_inputs(s, event_id, ev.start)

    # -- solve and write ----------------------------------------------------------------------
    def _solve(self, inp: TouInputs) -> TouPlan:
        sch = self.infra.settings.scheduler
        return tou_schedule(inp.devices, np.zeros((len(inp.devices), inp.n_intervals)),
                            inp.price_yuan_per_kwh,
                            interval_minutes=self.infra.calendar.interval_minutes,
                            reserves=inp.reserves or (), discharge_cap_kw=inp.discharge_cap_kw,
                            options=SolverOptions(eps=sch.eps, polishing=sch.polishing))

    async def _write(self, inp: TouInputs, plan: TouPlan) -> None:
        tol = self.infra.settings.daemon.control.unchanged_pct / 100.0
        written = 0
        for k, d in enumerate(inp.devices):
            kw = float(plan.plan.setpoint_kw[k, 0])
            last = self.fleet.last_setpoints.get(d.device_id)
            if last is not None and abs(last - kw) <= tol * d.rated_power_kw:
                continue
            r = await self.fleet.apply(d.device_id, kw)
            if r.error is not None:
                log.warning("schedule setpoint not written: %s", r.error,
                            extra={"device_id": d.device_id})
            else:
                written += 1
        log.info("batteries between calls", extra={
            "interval_start": inp.start.isoformat(), "batteries": len(inp.devices),
            "written": written, "intervals": inp.n_intervals, "next_event_id": inp.next_event_id,
            "reserve_kwh": round(sum(r.reserve_kwh for r in inp.reserves or ()), 3),
            "status": plan.plan.status})


def _full(d: FleetDevice) -> FleetDevice:
    """A battery at its SoC ceiling with no end-of-horizon SoC to meet (a call's reserve is
    what its plan draws from a full battery); other devices as they are."""
    if isinstance(d.params, BatteryParams):
        return replace(d, soc_pct=d.params.soc_max_pct, terminal_soc_pct=d.params.soc_min_pct)
    return d


def _stored_reserves(ev: GridEvent, n: int) -> tuple[BatteryReserve, ...] | None:
    """The reserves stored with ``ev`` (ending a horizon of ``n`` intervals at its start);
    None when none were computed for it yet."""
    stored = (ev.detail or {}).get("battery_reserve")
    if stored is None:
        return None
    return tuple(BatteryReserve(int(k), n, float(v["target_soc_pct"]), float(v["reserve_kwh"]))
                 for k, v in stored.items())


def _store_reserves(s: Session, event_id: int, reserves: tuple[BatteryReserve, ...]) -> None:
    ev = s.get(GridEvent, event_id)
    if ev is None:
        return
    ev.detail = {**(ev.detail or {}), "battery_reserve": {
        str(r.device_id): {"target_soc_pct": round(r.target_soc_pct, 2),
                           "reserve_kwh": round(r.reserve_kwh, 3)} for r in reserves}}
    s.add(ev)

