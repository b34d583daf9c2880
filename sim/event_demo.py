"""One grid call end to end through the daemon's own parts, against simulated devices, on a
manual clock (``vpp settle-demo``).

Every step is the production one: the daemon's parts (:func:`vpp.daemon.parts.build_parts`:
enrolment probe, poller and heartbeats, forecast refresh, intake and bid, planner, dispatch,
delivery watch, settlement) run one after the other each ``step_s`` of simulated time, as
their supervised loops would, on a :class:`sim.clock.ManualClock` (no waiting: a two-hour call
takes seconds). The simulation plays only the outside world:

* the demo fleet (:data:`DEMO_FLEET`, three owners above Hunan's 10 MW minimum) as ``sim`` Modbus gateways on 127.0.0.1 (device physics, watchdogs, register maps),
  enrolled and probed as an operator would;
* ``history_days`` of telemetry from the same simulated devices (one reading per device and
  market interval, as if the daemon had polled them all along), so that bidding and the
  programme's baseline have history;
* the grid operator: a real-time call ``notice_minutes`` before its start, through the
  daemon's intake (notice rules, bid).

Assumptions: the clock starts at local midnight ``history_days`` before the call; the daemon
runs from the call on; settlement runs at the call's end (``daemon.settle_delay_minutes``
later), like the daemon's settle loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import select

from sim.clock import ManualClock
from sim.fleet import gateway_from_spec
from sim.ports import free_port_block
from sim.server import SimGateway
from vpp import fleet
from vpp.config import GatewaySpec, Settings
from vpp.daemon.dbexec import Db
from vpp.daemon.infra import Infra
from vpp.daemon.parts import DaemonParts, build_parts
from vpp.db import session_scope
from vpp.domain.grid_calls import CallDecision, GridCallIn
from vpp.errors import ValidationError
from vpp.models import DispatchPlan, GridEvent, Setpoint
from vpp.telemetry_store import Reading, write_readings


@dataclass(frozen=True)
class DemoEvent:
    """What the run did: the intake's decision, and what reached the devices (kW, counts)."""

    event_id: int
    decision: CallDecision
    steps: int  # daemon steps run (each ``step_s`` simulated seconds)
    setpoints_written: int
    status: str  # the event's status at the end (``settled`` when all went well)
    history_readings: int


#: the demo fleet: three owners, 22 MW rated, 12.5 MW sheddable (Hunan's minimum offer is
#: 10 MW), each device within its profile's limits (the packaged battery profiles are 5 kW
#: home units, so storage is not in it). The malls' thermal parameters are declared, a heavy
#: mall's (undeclared ones are sized from the rating, vpp.device_kinds.design_thermal_params,
#: with a 3 h time constant: the 5 MW plant would hold its 2 MW shed about an hour);
#: 8,000 kWh/degC holds the declared 2 MW shed (6 MW thermal at COP 3) for about 3 h within
#: 2.5 degC
DEMO_FLEET: list[tuple[str, list[dict[str, Any]]]] = [
    ("Shennong City Mall", [
        {"name": "chiller-1", "kind": "commercial_building", "profile": "coolmaster-vrf",
         "rated_power_kw": 5000.0, "min_setpoint_kw": 0.0, "max_setpoint_kw": 5000.0,
         "params": {"max_shed_kw": 2000.0, "max_shed_minutes": 180,
                    "thermal_resistance_c_per_kw": 0.002,
                    "thermal_capacitance_kwh_per_c": 8000.0}},
        {"name": "chiller-2", "kind": "commercial_building", "profile": "coolmaster-vrf",
         "rated_power_kw": 3000.0, "min_setpoint_kw": 0.0, "max_setpoint_kw": 3000.0,
         "params": {"max_shed_kw": 1000.0, "max_shed_minutes": 180,
                    "thermal_resistance_c_per_kw": 0.004,
                    "thermal_capacitance_kwh_per_c": 4000.0}},
    ]),
    ("Zhuzhou Rail Equipment Works", [
        {"name": "furnace", "kind": "industrial_load", "profile": "industrial-plc",
         "rated_power_kw": 10000.0, "min_setpoint_kw": 0.0, "max_setpoint_kw": 10000.0,
         "params": {"max_curtail_kw": 5000.0, "max_curtail_minutes": 180}},
        {"name": "press-line", "kind": "industrial_load", "profile": "industrial-plc",
         "rated_power_kw": 4000.0, "min_setpoint_kw": 0.0, "max_setpoint_kw": 4000.0,
         "params": {"max_curtail_kw": 2000.0, "max_curtail_minutes": 180}},
    ]),
    ("Tianyuan Cold Storage", [
        {"name": "compressors", "kind": "industrial_load", "profile": "industrial-plc",
         "rated_power_kw": 4000.0, "min_setpoint_kw": 0.0, "max_setpoint_kw": 4000.0,
         "params": {"max_curtail_kw": 2500.0, "max_curtail_minutes": 180}},
    ]),
]


def demo_specs(port0: int) -> list[tuple[str, dict[str, Any]]]:
    """(owner name, gateway spec) of the demo fleet, one gateway per owner from ``port0``."""
    return [(name, {"host": "127.0.0.1", "port": port0 + k, "devices": [
        {**d, "unit_id": i + 1} for i, d in enumerate(devices)]})
        for k, (name, devices) in enumerate(DEMO_FLEET)]


def demo_settings(settings: Settings) -> Settings:
    """The daemon's settings for the run: loopback gateways allowed (the simulators)."""
    return settings.model_copy(update={
        "enrolment": settings.enrolment.model_copy(update={"allow_loopback": True})})


async def _enrol(parts: DaemonParts, specs: list[tuple[str, dict[str, Any]]]) -> None:
    """Register each owner's gateway and probe it (the daemon's enrolment job)."""
    def add(s: Any) -> list[int]:
        ids = []
        for k, (name, spec) in enumerate(specs):
            owner = fleet.add_owner(s, name)
            ids.append(int(fleet.add_gateway(s, owner, f"site-{k}", spec).gateway.id or 0))
        return ids

    engine = parts.db.engine
    with session_scope(engine) as s:
        gateway_ids = add(s)
    for gid in gateway_ids:
        parts.enrolment.start(gid)
    await parts.enrolment.wait()


async def _history(engine: Engine, gateways: list[SimGateway], ids: dict[tuple[int, int], int],
                   clock: ManualClock, until: datetime, interval_min: int) -> int:
    """Advance the devices to ``until`` one market interval at a time, storing each device's
    power (kW) at the middle of each interval as a telemetry reading."""
    rows: list[Reading] = []
    step = timedelta(minutes=interval_min)
    while clock.now() + step <= until:
        stamp = clock.now() + step / 2
        clock.advance(step.total_seconds())
        for g in gateways:
            for unit, dev in g.devices.items():
                dev.refresh()
                rows.append(Reading(ids[(g.port, unit)], stamp, float(dev.physics.power_kw)))
    return await asyncio.to_thread(write_readings, engine, rows)


def _device_ids(engine: Engine) -> dict[tuple[int, int], int]:
    from vpp.models import Device, Gateway

    with session_scope(engine) as s:
        rows = s.exec(select(Device, Gateway).where(Device.gateway_id == Gateway.id)).all()
        return {(g.port, d.unit_id): int(d.id or 0) for d, g in rows}


async def _step(parts: DaemonParts) -> None:
    """One pass of the daemon's loops, in their order of dependence."""
    await parts.fleet.poll_step()
    await parts.fleet.heartbeat_step()
    await parts.control.step()
    await parts.settler.step()


async def run_demo_event(settings: Settings, engine: Engine, call_start: datetime, *,
                         hours: float = 2.0, requested_kw: float = 12_000.0,
                         history_days: int = 30, notice_minutes: int = 60,
                         step_s: float = 30.0, external_id: str = "HN-DEMO-A") -> DemoEvent:
    """Run one real-time call of ``hours`` from ``call_start`` (tz-aware, on a market interval)
    through the daemon's parts on ``engine`` (migrated, empty). ``step_s``: simulated seconds
    between two passes of the loops (at most half the shortest device watchdog, 60 s)."""
    if call_start.tzinfo is None:
        raise ValidationError("call_start must be timezone-aware")
    settings = demo_settings(settings)
    interval_min = settings.service.market_interval_minutes
    local0 = call_start.replace(hour=0, minute=0, second=0, microsecond=0)
    clock = ManualClock(local0 - timedelta(days=history_days))
    port0 = free_port_block(len(DEMO_FLEET))
    specs = demo_specs(port0)
    gateways = [gateway_from_spec(GatewaySpec.model_validate(spec), clock, seed=100 * k)
                for k, (_, spec) in enumerate(specs)]
    for g in gateways:
        await g.start()
    infra = Infra.create(settings, Db(engine), clock=clock.now)
    parts = build_parts(infra)
    try:
        await _enrol(parts, specs)
        issued = call_start - timedelta(minutes=notice_minutes)
        n_hist = await _history(engine, gateways, _device_ids(engine), clock, issued,
                                interval_min)
        await parts.fleet.refresh()
        await parts.fleet.poll_step()  # the daemon has been polling: the fleet's state now
        await parts.forecasts.step()  # the daemon's forecast refresh (baselines loop)
        call = GridCallIn.model_validate({
            "external_id": external_id, "event_type": "real_time", "direction": "peak_shaving",
            "start": call_start, "end": call_start + timedelta(hours=hours),
            "requested_kw": requested_kw})
        decision = await parts.intake.receive(call, "sim", "grid-operator")
        steps = 0
        if decision.accepted:
            end = call.end + timedelta(minutes=settings.daemon.settle_delay_minutes)
            while clock.now() <= end or await _open(parts, decision.event_id):
                await _step(parts)
                clock.advance(step_s)
                steps += 1
                if clock.now() > end + timedelta(hours=1):
                    break  # never settled: the status says why
        return DemoEvent(decision.event_id, decision, steps,
                         await parts.db.run(_written, decision.event_id),
                         await parts.db.run(_status, decision.event_id), n_hist)
    finally:
        await parts.fleet.release(list(parts.fleet.last_setpoints))
        await parts.close()
        for g in gateways:
            await g.stop()


async def _open(parts: DaemonParts, event_id: int) -> bool:
    status = await parts.db.run(_status, event_id)
    return status not in ("settled", "unsettled", "rejected", "cancelled")


def _status(s: Any, event_id: int) -> str:
    ev = s.get(GridEvent, event_id)
    return str(ev.status) if ev is not None else "missing"


def _written(s: Any, event_id: int) -> int:
    return int(s.exec(select(func.count()).select_from(Setpoint).join(
        DispatchPlan, Setpoint.plan_id == DispatchPlan.id).where(  # type: ignore[arg-type]
        DispatchPlan.event_id == event_id, Setpoint.status == "written")).one())
