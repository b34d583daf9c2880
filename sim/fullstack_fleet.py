"""The full-stack sample: which devices, which gateways and ports, which call, what weather.

Pure and deterministic for a scenario, a sample size and a base port, so that the simulator
process (:mod:`sim.fleet_process`) and the driver (:mod:`sim.fullstack`) build the same fleet
without passing it between them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

import numpy as np
import pandas as pd

from sim.clock import SimClock
from sim.fleet import make_device
from sim.fullstack_ocpp import ChargePointSpec, pick_charge_points
from sim.grid import GridCall, GridOperator
from sim.scenarios import behaviour
from sim.scenarios.city import (
    city_load_mw,
    hourly_temperature,
    interval_index,
    season_days,
    simulate_weather,
)
from sim.scenarios.fleet import Fleet, ScenarioDevice, generate_fleet
from sim.scenarios.scenario import Scenario
from sim.server import SimGateway
from vpp.config import OwnerSpec
from vpp.errors import VppError

#: Largest rating each device profile's control registers can express (from the profile files:
#: coolmaster-vrf demand_limit 6000 x 0.1 kW; industrial-plc power_cap 100000 x 0.1 kW; the AC
#: chargers' 32 A on three phases). Devices above it, or with a profile that has no register map
#: yet, are left out of the full-stack sample (they run at city scale only).
PROFILE_MAX_KW = {"coolmaster-vrf": 600.0, "industrial-plc": 10_000.0, "alfen-ng9xx": 22.0,
                  "keba-p30": 22.0, "sunspec": 65.0}  # SunSpec 124.WChaMax: uint16 W, SF 0
HISTORY_DAYS = 8  # telemetry history written before the run (the daemon's baselines need >= 7)


class FullStackError(VppError):
    code = "full_stack_failed"


class SharedClock(SimClock):
    """A :class:`~sim.clock.SimClock` held at ``start`` until :meth:`release` (enrolment and the
    history take real time that must not pass on the simulated clock). ``release(m0)`` with the
    same ``time.monotonic()`` value in two processes gives both the same simulated time
    (CLOCK_MONOTONIC is system-wide)."""

    def __init__(self, accel: float, start: datetime) -> None:
        super().__init__(accel=accel, start=start)
        self._m0: float | None = None  # type: ignore[assignment]

    def release(self, m0: float | None = None) -> float:
        self._m0 = time.monotonic() if m0 is None else m0
        return self._m0

    @property
    def released(self) -> bool:
        return self._m0 is not None

    def now(self) -> datetime:
        if self._m0 is None:
            return self.start
        return self.start + timedelta(seconds=(time.monotonic() - self._m0) * self.accel)


@dataclass
class Sample:
    call: GridCall  # the season's first call, made a real-time call
    city_mw: pd.Series  # the city's load on the call day
    temperature_c: pd.Series  # hourly outdoor temperature, history days to the day after
    fleet: Fleet
    city_devices: int
    servable: int
    city_rated_kw: float  # the whole city fleet's rated power
    owners: list[OwnerSpec]  # the Modbus chargers' enrolment: one gateway per site
    where: dict[str, tuple[int, int]]  # Modbus device name -> (port, unit id)
    charge_points: list[ChargePointSpec] = field(default_factory=list)  # the OCPP chargers

    @property
    def n_gateways(self) -> int:
        """Modbus gateways (the simulator process serves them)."""
        return sum(len(s.gateways) for o in self.owners for s in o.sites)

    @property
    def owner_names(self) -> list[str]:
        """Every owner of the sample, Modbus gateways' first."""
        names = [o.name for o in self.owners]
        return names + sorted({cp.device.owner for cp in self.charge_points} - set(names))

    def enrolled_name(self, dev: ScenarioDevice) -> str:
        """The device's name in the daemon (an OCPP connector's is its charge point's)."""
        cp = self._by_name.get(dev.spec.name)
        return cp.enrolled_name if cp is not None else dev.spec.name

    @cached_property
    def _by_name(self) -> dict[str, ChargePointSpec]:
        return {cp.identity: cp for cp in self.charge_points}


def first_call(scn: Scenario) -> tuple[GridCall, pd.Series, pd.DataFrame]:
    """The season's first call as a real-time call (the scenario's notice and duration), the
    city's load that day, and the season's weather."""
    days = season_days(scn)
    weather = simulate_weather(scn, days, np.random.default_rng([scn.scenario.seed, 1]))
    period = [d for d in days if any(a <= d <= b for a, b in scn.season.periods)]
    calls = GridOperator(scn, weather).calls(period)
    if not calls:
        raise FullStackError("the scenario issues no calls")
    c = calls[0]
    g = scn.grid_operator
    rt = GridCall(
        external_id=f"sim-fs-{c.day:%Y%m%d}", event_type="real_time", direction=c.direction,
        programme=c.programme, issued_at=c.start - timedelta(minutes=g.real_time_notice_minutes),
        start=c.start, end=c.start + timedelta(minutes=g.real_time_duration_minutes),
        requested_kw=c.requested_kw, reason=c.reason + " (real-time at full-stack scale)",
    )
    idx = interval_index([c.day], scn.scenario.timezone, scn.scenario.interval_minutes)
    return rt, city_load_mw(scn, weather, idx), weather


def build_sample(scn: Scenario, n_devices: int, base_port: int) -> Sample:
    """A stratified sample of about ``n_devices`` of the devices a shipped register map can
    serve, as owners / sites / gateways on consecutive ports from ``base_port``."""
    call, city, weather = first_call(scn)
    whole = generate_fleet(scn)
    servable = [d for d in whole.devices
                if d.spec.rated_power_kw <= PROFILE_MAX_KW.get(d.spec.profile, -1.0)]
    if not servable:
        raise FullStackError("no device of the scenario has a register map to serve it")
    fleet = Fleet(servable, whole.seed).sample(int(n_devices * 1.02) + 1, seed=scn.scenario.seed)
    charge_points = pick_charge_points(scn, fleet.devices)
    ocpp = {cp.identity for cp in charge_points}
    owners = Fleet([d for d in fleet.devices if d.spec.name not in ocpp], fleet.seed).owner_specs(
        host="127.0.0.1", first_port=base_port)
    where: dict[str, tuple[int, int]] = {}
    for o in owners:
        for s in o.sites:
            for g in s.gateways:
                for spec in g.devices:
                    where[spec.name] = (g.port, spec.unit_id)
    span = [call.day - timedelta(days=k) for k in range(HISTORY_DAYS, -2, -1)]
    idx = interval_index(span, scn.scenario.timezone, scn.scenario.interval_minutes)
    return Sample(call=call, city_mw=city, temperature_c=hourly_temperature(weather, idx),
                  fleet=fleet, city_devices=len(whole), servable=len(servable),
                  city_rated_kw=float(sum(d.spec.rated_power_kw for d in whole.devices)),
                  owners=owners, where=where, charge_points=charge_points)


def rated_share(sample: Sample) -> float:
    """The sample's share of the city fleet's rated power."""
    return float(sum(d.spec.rated_power_kw for d in sample.fleet.devices)) / sample.city_rated_kw


def physics_seed(scn: Scenario, dev: ScenarioDevice) -> int:
    """The seed :class:`sim.plant.CityPlant` gives a device, so that the served device draws
    the same random behaviour as the history written for it."""
    return scn.scenario.seed * 1_000_003 + dev.index


def build_gateways(scn: Scenario, sample: Sample, clock: SharedClock) -> list[SimGateway]:
    """The Modbus gateways serving the sample (each device's physics configured with the
    scenario behaviour)."""
    served = {d.spec.name: d for d in sample.fleet.devices}
    out = []
    for o in sample.owners:
        for s in o.sites:
            for g in s.gateways:
                devices = {}
                for spec in g.devices:
                    d = served[spec.name]
                    dev = make_device(spec.profile, spec.kind, spec.unit_id, spec.rated_power_kw,
                                      spec.params, clock, seed=physics_seed(scn, d))
                    behaviour.configure(dev.physics, d)
                    devices[spec.unit_id] = dev
                out.append(SimGateway(devices, host=g.host, port=g.port))
    return out
