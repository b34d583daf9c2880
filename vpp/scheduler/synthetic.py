"""Synthetic fleets and data for the CLI, tests and benchmarks (seeded, reproducible).

A mixed fleet of batteries, EV chargers, commercial buildings and industrial loads with parameters
drawn from plausible ranges (ratings, durations, efficiencies), continuous random states (no two
devices alike), baselines shaped by a day profile, and an illustrative time-of-use tariff. The
tariff ratio (peak : flat : valley = 1.6 : 1 : 0.4, valley 23:00-07:00) is the **unverified**
Hunan figure of ``shared/domain/demand-response-rules.md``: for demonstrations only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from vpp.device_kinds import (
    BatteryParams,
    CommercialBuildingParams,
    DeviceKind,
    EvChargerParams,
    IndustrialLoadParams,
)
from vpp.scheduler.inputs import EvSession, FleetDevice, Params

MIX = {"battery": 0.4, "ev": 0.3, "building": 0.15, "industrial": 0.15}


def tou_price(n: int, *, interval_minutes: int, flat_yuan_per_kwh: float = 0.65,
              start_hour: float = 0.0) -> np.ndarray:
    """Illustrative time-of-use price per interval (yuan/kWh), horizon starting at ``start_hour``."""
    hours = (start_hour + np.arange(n) * interval_minutes / 60.0) % 24
    price = np.full(n, flat_yuan_per_kwh)
    price[(hours >= 23) | (hours < 7)] = 0.4 * flat_yuan_per_kwh
    price[((hours >= 10) & (hours < 12)) | ((hours >= 17) & (hours < 21))] = 1.6 * flat_yuan_per_kwh
    return price


def _day_shape(n: int, interval_minutes: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    h = np.arange(n) * interval_minutes / 60.0 % 24
    if kind == "building":
        open_ = 1 / (1 + np.exp(-(h - 8.0 - rng.uniform(-1, 1)) * 2))
        close = 1 / (1 + np.exp((h - 21.5 - rng.uniform(-1, 1)) * 2))
        return 0.25 + 0.6 * open_ * close * (1 + 0.15 * np.sin((h - 15) / 24 * 2 * np.pi))
    shift = (h >= 7.5) & (h < 23.5)
    return np.where(shift, rng.uniform(0.7, 0.9), rng.uniform(0.45, 0.6)) + rng.normal(0, 0.02, n)


def mixed_fleet(count: int, n: int, interval_minutes: int, seed: int = 0,
                owners: int | None = None) -> tuple[list[FleetDevice], np.ndarray]:
    """``count`` mixed devices and their baselines (kW, count x n)."""
    rng = np.random.default_rng(seed)
    dt = interval_minutes / 60.0
    kinds = rng.choice(list(MIX), size=count, p=list(MIX.values()))
    owners = owners or max(1, count // 20)
    devices: list[FleetDevice] = []
    base = np.zeros((count, n))
    for i, k in enumerate(kinds):
        p: Params
        owner = f"owner-{rng.integers(owners)}"
        if k == "battery":
            rated = float(rng.choice([5.0, 10.0, 50.0, 100.0, 250.0, 500.0]))
            hours = float(rng.uniform(1.0, 4.0))
            smin = float(rng.choice([5.0, 10.0, 15.0]))
            p = BatteryParams(capacity_kwh=rated * hours, soc_min_pct=smin, soc_max_pct=95.0,
                              charge_efficiency=float(rng.uniform(0.92, 0.97)),
                              discharge_efficiency=float(rng.uniform(0.92, 0.97)))
            soc = float(rng.uniform(smin + 20, 90))
            devices.append(FleetDevice(i, DeviceKind.BATTERY, rated, -rated, rated, p, owner,
                                       soc_pct=soc, terminal_soc_pct=float(rng.uniform(smin, 60))))
        elif k == "ev":
            conns = int(rng.choice([1, 1, 2]))
            per = float(rng.choice([7.0, 11.0, 22.0]))
            v2g = bool(rng.random() < 0.15)
            rated = per * conns
            p = EvChargerParams(connectors=conns, max_charge_kw_per_connector=per, v2g=v2g,
                                max_discharge_kw_per_connector=per if v2g else 0.0)
            sessions = []
            for _ in range(conns):
                if rng.random() < 0.8:
                    arr = int(rng.integers(0, n - 12))
                    dep = min(arr + int(rng.integers(8, 48)), n)
                    most = per * (dep - arr) * dt
                    e = float(rng.uniform(0.1, 0.6) * most)
                    sessions.append(EvSession(arr, dep, e))
                    left = e
                    for t in range(arr, dep):  # uncontrolled: full power from arrival
                        step = min(per, left / dt)
                        base[i, t] += step
                        left -= step * dt
            lo = -rated if v2g else 0.0
            devices.append(FleetDevice(i, DeviceKind.EV_CHARGER, rated, lo, rated, p, owner,
                                       sessions=tuple(sessions)))
        elif k == "building":
            rated = float(rng.uniform(100, 1000))
            shape = _day_shape(n, interval_minutes, "building", rng)
            base[i] = rated * shape
            p = CommercialBuildingParams(max_shed_kw=float(rng.uniform(0.15, 0.35) * rated),
                                         max_shed_minutes=int(rng.choice([60, 90, 120, 180])),
                                         rebound_fraction=float(rng.uniform(0.1, 0.5)))
            devices.append(FleetDevice(i, DeviceKind.COMMERCIAL_BUILDING, rated, 0.2 * rated,
                                       rated, p, owner,
                                       preference_weight=float(rng.uniform(0.5, 2.0))))
        else:
            rated = float(rng.uniform(200, 2000))
            base[i] = rated * _day_shape(n, interval_minutes, "industrial", rng)
            p = IndustrialLoadParams(max_curtail_kw=float(rng.uniform(0.1, 0.4) * rated),
                                     max_curtail_minutes=int(rng.choice([30, 60, 90, 120])),
                                     makeup_fraction=float(rng.choice([0.0, 0.5, 1.0])),
                                     makeup_hours=float(rng.choice([2.0, 4.0, 6.0])))
            devices.append(FleetDevice(i, DeviceKind.INDUSTRIAL_LOAD, rated, 0.35 * rated,
                                       rated, p, owner,
                                       preference_weight=float(rng.uniform(0.5, 2.0))))
    base = np.clip(base, 0.0, None)
    return devices, base



def event_window(devices: list[FleetDevice], base_kw: np.ndarray, start: int, n: int
                 ) -> tuple[list[FleetDevice], np.ndarray]:
    """The daemon's view of a day fleet for one event: intervals ``start .. start + n`` of the
    day (its baselines sliced, kW), EV sessions cut to the window with their energy pro rata to
    the part of the session inside it, batteries ending at their state of charge now (the
    daemon's terminal rule, :func:`vpp.daemon.planning.fleet_device`)."""
    out = []
    for d in devices:
        if d.kind is DeviceKind.EV_CHARGER:
            sessions = []
            for x in d.sessions:
                a, b = max(x.arrival - start, 0), min(x.departure - start, n)
                if b > a:
                    share = (b - a) / (x.departure - x.arrival)
                    sessions.append(EvSession(a, b, x.energy_kwh * share))
            d = replace(d, sessions=tuple(sessions))
        elif d.kind is DeviceKind.BATTERY:
            d = replace(d, terminal_soc_pct=None)
        out.append(d)
    return out, np.array(base_kw[:, start:start + n])


def demo_state(specs: list, n: int, interval_minutes: int, seed: int = 0,
               soc_pct: float = 60.0) -> tuple[list[FleetDevice], np.ndarray]:
    """Devices from enrolment specs (:class:`vpp.config.DeviceSpec`) with an illustrative state
    and baseline: batteries at ``soc_pct`` (idle baseline), EV chargers with one vehicle per
    connector plugged in 12:00-22:00 needing 40 % of what it could take, buildings and industrial
    loads on a day profile at 70-85 % of their rating."""
    from vpp.device_kinds import parse_params

    rng = np.random.default_rng(seed)
    dt = interval_minutes / 60.0
    devices: list[FleetDevice] = []
    base = np.zeros((len(specs), n))
    arr, dep = int(12 / dt), min(int(22 / dt), n)
    for i, (owner, s) in enumerate(specs):
        p: Any = parse_params(s.kind, s.params)
        common: dict[str, Any] = dict(device_id=i + 1, kind=s.kind, rated_power_kw=s.rated_power_kw,
                      min_setpoint_kw=s.min_setpoint_kw, max_setpoint_kw=s.max_setpoint_kw,
                      params=p, owner=owner)
        if s.kind is DeviceKind.BATTERY:
            devices.append(FleetDevice(**common, soc_pct=max(soc_pct, p.soc_min_pct)))
        elif s.kind is DeviceKind.EV_CHARGER:
            per = min(p.max_charge_kw_per_connector, s.max_setpoint_kw)
            e = 0.4 * per * max(dep - arr, 0) * dt
            sessions = tuple(EvSession(arr, dep, e) for _ in range(p.connectors)) if arr < n else ()
            for _ in sessions:
                left = e
                for t in range(arr, dep):
                    step = min(per, left / dt)
                    base[i, t] += step
                    left -= step * dt
            devices.append(FleetDevice(**common, sessions=sessions))
        else:
            kind = "building" if s.kind is DeviceKind.COMMERCIAL_BUILDING else "industrial"
            shape = _day_shape(n, interval_minutes, kind, rng)
            base[i] = np.clip(s.rated_power_kw * shape * 1.05, s.min_setpoint_kw, s.max_setpoint_kw)
            devices.append(FleetDevice(**common))
    return devices, base


def catalog_fleet(count: int, n: int, interval_minutes: int, seed: int = 0
                  ) -> tuple[list[FleetDevice], np.ndarray]:
    """A fleet built from a small catalogue of products and states (same mix as
    :func:`mixed_fleet`): batteries of 6 models reporting SoC in 5 % steps, chargers of 4 models
    with 8 session patterns, buildings and plants of 5 and 4 archetypes at 3 sizes. Devices repeat
    per unit of their rating, which is what :mod:`vpp.scheduler.aggregate` exploits."""
    rng = np.random.default_rng(seed)
    arch = np.random.default_rng(12345)
    dt = interval_minutes / 60.0
    bat_models = [(5.0, 2.0, 10.0), (10.0, 1.0, 10.0), (50.0, 2.0, 5.0), (100.0, 2.0, 10.0),
                  (250.0, 4.0, 15.0), (500.0, 2.0, 5.0)]
    ev_models = [(1, 7.0), (1, 11.0), (1, 22.0), (2, 11.0)]
    ev_patterns = [(int(a / dt), min(int(d / dt), n), f) for a, d, f in
                   [(0, 7, 0.5), (8, 17, 0.3), (9, 12, 0.6), (12, 14, 0.8), (17, 23, 0.4),
                    (18, 24, 0.5), (19, 24, 0.3), (13, 20, 0.4)] if int(a / dt) < n - 1]
    b_shapes = [_day_shape(n, interval_minutes, "building", arch) for _ in range(5)]
    b_params = [CommercialBuildingParams(max_shed_kw=f, max_shed_minutes=m, rebound_fraction=r)
                for f, m, r in [(0.2, 60, 0.3), (0.3, 120, 0.2), (0.25, 90, 0.5), (0.35, 180, 0.1),
                                (0.15, 60, 0.0)]]
    i_shapes = [_day_shape(n, interval_minutes, "industrial", arch) for _ in range(4)]
    i_params = [(0.2, 60, 1.0, 4.0), (0.4, 120, 0.5, 2.0), (0.1, 30, 0.0, 2.0), (0.3, 90, 1.0, 6.0)]
    kinds = rng.choice(list(MIX), size=count, p=list(MIX.values()))
    devices: list[FleetDevice] = []
    base = np.zeros((count, n))
    for i, k in enumerate(kinds):
        p: Params
        owner = f"owner-{rng.integers(max(1, count // 20))}"
        if k == "battery":
            rated, hours, smin = bat_models[rng.integers(len(bat_models))]
            p = BatteryParams(capacity_kwh=rated * hours, soc_min_pct=smin, soc_max_pct=95.0)
            soc = float(rng.choice(np.arange(30.0, 91.0, 5.0)))
            devices.append(FleetDevice(i, DeviceKind.BATTERY, rated, -rated, rated, p, owner,
                                       soc_pct=soc, terminal_soc_pct=max(smin, 30.0)))
        elif k == "ev":
            conns, per = ev_models[rng.integers(len(ev_models))]
            rated = per * conns
            p = EvChargerParams(connectors=conns, max_charge_kw_per_connector=per)
            sessions = []
            for _ in range(conns):
                a, d, f = ev_patterns[rng.integers(len(ev_patterns))]
                e = f * per * (d - a) * dt
                sessions.append(EvSession(a, d, e))
                left = e
                for t in range(a, d):
                    step = min(per, left / dt)
                    base[i, t] += step
                    left -= step * dt
            devices.append(FleetDevice(i, DeviceKind.EV_CHARGER, rated, 0.0, rated, p, owner,
                                       sessions=tuple(sessions)))
        elif k == "building":
            a = int(rng.integers(5))
            rated = float(rng.choice([200.0, 400.0, 800.0]))
            bp = b_params[a]
            base[i] = rated * b_shapes[a]
            devices.append(FleetDevice(
                i, DeviceKind.COMMERCIAL_BUILDING, rated, 0.2 * rated, rated,
                bp.model_copy(update={"max_shed_kw": bp.max_shed_kw * rated}), owner))
        else:
            a = int(rng.integers(4))
            rated = float(rng.choice([500.0, 1000.0, 2000.0]))
            f, m, mk, h = i_params[a]
            base[i] = rated * i_shapes[a]
            devices.append(FleetDevice(
                i, DeviceKind.INDUSTRIAL_LOAD, rated, 0.35 * rated, rated,
                IndustrialLoadParams(max_curtail_kw=f * rated, max_curtail_minutes=m,
                                     makeup_fraction=mk, makeup_hours=h), owner))
    return devices, base
