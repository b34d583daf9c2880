"""Synthetic fleets, meter data and a stand-in response, for tests, the demo and the benchmark.

NOT a model of real devices: daily load shapes per kind with noise, and a "dispatch" that
delivers a chosen fraction of each owner's declared share during the event (ramping over the
first interval) with a rebound after it. It stands in for the scheduler and the device
simulators (sim/) until they drive events end to end; everything downstream (baselines,
settlement, ledger, reports) is the real code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, insert

from vpp import fleet
from vpp.db import session_scope
from vpp.models import Device, GridEvent, TelemetryReading
from vpp.timeutil import zone

TZ = zone()  # the default market time zone (vpp.timeutil)
#: the metering interval of these fixtures: the hunan-2026 programme's (15 min), whose events
#: the tests and the demo settle from this data
INTERVAL_MINUTES = 15

#: A battery's host site (the rest of the load behind its grid connection), as a multiple of
#: its rating at full load, shaped as an industrial park's day (the demo's battery is a park's
#: storage): its site meter reads host load + battery power (``telemetry.site_import_kw``, the
#: export rule's site meter). Stand-in figure, as the scenario's C&I batteries: storage sized
#: at about half its site's load (``config/scenarios/zhuzhou-2025.toml``, ASSUMPTION there).
HOST_SHARE_OF_BATTERY = 2.0


def daily_shape(kind: str, hours: np.ndarray, workday: bool) -> np.ndarray:
    """Load as a fraction of rated power at local ``hours`` (float hours of day)."""
    if kind == "commercial_building":
        day = np.clip(np.sin((hours - 7) / 15 * np.pi), 0, None)
        return 0.25 + (0.65 if workday else 0.45) * day
    if kind == "industrial_load":
        return np.where((hours >= 7) & (hours < 23), 0.85 if workday else 0.5, 0.45)
    if kind == "ev_charger":
        return 0.15 + 0.6 * np.exp(-(((hours - 21) % 24) ** 2) / 8)
    return np.zeros_like(hours)  # battery idle unless dispatched


@dataclass(frozen=True)
class SyntheticDevice:
    """What the generator needs of a device (``Device`` rows qualify)."""

    id: int
    owner_id: int
    kind: str
    rated_power_kw: float


def device_load_kw(
    devices: Sequence[SyntheticDevice | Device], index: pd.DatetimeIndex, seed: int = 0,
    noise_pct: float = 3.0,
) -> np.ndarray:
    """(devices, intervals) kW with day-to-day and interval noise (deterministic per seed)."""
    local = index.tz_convert(TZ)
    hours = np.asarray(local.hour + local.minute / 60.0)
    workday = np.asarray(local.day_of_week < 5)
    rng = np.random.default_rng(seed)
    out = np.empty((len(devices), len(index)))
    for i, d in enumerate(devices):
        shape = np.where(workday, daily_shape(d.kind, hours, True),
                         daily_shape(d.kind, hours, False))
        level = 1 + rng.normal(0, noise_pct / 100, len(index))
        out[i] = d.rated_power_kw * shape * level
    return out


def site_import_kw(devices: Sequence[SyntheticDevice | Device], index: pd.DatetimeIndex,
                   load_kw: np.ndarray) -> np.ndarray:
    """(devices, intervals) kW at each battery's site meter: its host site's load
    (:data:`HOST_SHARE_OF_BATTERY` of its rating, an industrial load's day) plus the
    battery's own power; NaN for the other kinds (no site meter)."""
    local = index.tz_convert(TZ)
    hours = np.asarray(local.hour + local.minute / 60.0)
    workday = np.asarray(local.day_of_week < 5)
    host = np.where(workday, daily_shape("industrial_load", hours, True),
                    daily_shape("industrial_load", hours, False))
    out = np.full((len(devices), len(index)), np.nan)
    for i, d in enumerate(devices):
        if d.kind == "battery":
            out[i] = d.rated_power_kw * HOST_SHARE_OF_BATTERY * host + load_kw[i]
    return out


def write_meter(engine: Engine, devices: Sequence[SyntheticDevice | Device],
                index: pd.DatetimeIndex, load_kw: np.ndarray, batch: int = 50_000) -> int:
    """Write interval meter readings (one row per device and interval) to ``telemetry``, with
    the batteries' site meters (:func:`site_import_kw`)."""
    ts = [t.to_pydatetime() for t in index]
    site = site_import_kw(devices, index, load_kw)
    rows = [
        {"device_id": d.id, "ts": t, "power_kw": float(load_kw[i, k]), "available": True,
         "site_import_kw": None if np.isnan(site[i, k]) else float(site[i, k])}
        for i, d in enumerate(devices) for k, t in enumerate(ts)
    ]
    with engine.begin() as conn:
        for k in range(0, len(rows), batch):
            conn.execute(insert(TelemetryReading), rows[k:k + batch])
    return len(rows)


def dispatch_response(
    devices: Sequence[SyntheticDevice | Device], index: pd.DatetimeIndex, start: datetime,
    end: datetime, owner_declared_kw: Mapping[int, float], owner_delivery: Mapping[int, float],
    rebound_fraction: float = 0.3, rebound_hours: float = 1.0, direction: str = "peak_shaving",
) -> np.ndarray:
    """(devices, intervals) kW change caused by the event: ``-delivery x declared`` spread over
    each owner's devices by rated power (first interval at half), a rebound after it."""
    delta = np.zeros((len(devices), len(index)))
    sign = -1.0 if direction == "peak_shaving" else 1.0
    ev = np.asarray((index >= start) & (index < end))
    after = np.asarray((index >= end) & (index < end + timedelta(hours=rebound_hours)))
    ramp = ev.astype(float)
    first = np.flatnonzero(ev)
    if first.size:
        ramp[first[0]] = 0.5
    rated: dict[int, float] = {}
    for d in devices:
        rated[d.owner_id] = rated.get(d.owner_id, 0.0) + d.rated_power_kw
    n_after = max(int(after.sum()), 1)
    for i, d in enumerate(devices):
        share = d.rated_power_kw / rated[d.owner_id]
        kw = owner_delivery.get(d.owner_id, 0.0) * owner_declared_kw.get(d.owner_id, 0.0) * share
        delta[i] += sign * kw * ramp
        delta[i] -= sign * kw * rebound_fraction * ramp.sum() / n_after * after
    return delta


def day_index(first: date, days: int, interval_minutes: int) -> pd.DatetimeIndex:
    """The ``interval_minutes`` interval starts of ``days`` local days from ``first``."""
    start = pd.Timestamp(first, tz=TZ)
    return pd.date_range(start, start + pd.Timedelta(days=days), freq=f"{interval_minutes}min",
                         inclusive="left")


# --- a demo fleet above Hunan's 10 MW minimum, and simulated events on it ----------------

DEMO_OWNERS: list[tuple[str, list[dict[str, Any]]]] = [
    ("Shennong City Mall", [
        {"name": "chiller-1", "kind": "commercial_building", "rated_power_kw": 5000.0,
         "min_setpoint_kw": 0.0, "max_setpoint_kw": 5000.0,
         "params": {"max_shed_kw": 2000.0, "max_shed_minutes": 180}},
        {"name": "chiller-2", "kind": "commercial_building", "rated_power_kw": 3000.0,
         "min_setpoint_kw": 0.0, "max_setpoint_kw": 3000.0,
         "params": {"max_shed_kw": 1000.0, "max_shed_minutes": 180}},
    ]),
    ("Zhuzhou Rail Equipment Works", [
        {"name": "furnace", "kind": "industrial_load", "rated_power_kw": 10000.0,
         "min_setpoint_kw": 0.0, "max_setpoint_kw": 10000.0,
         "params": {"max_curtail_kw": 5000.0, "max_curtail_minutes": 180}},
    ]),
    ("Tianyuan Park Storage", [
        {"name": "battery", "kind": "battery", "rated_power_kw": 4000.0,
         "min_setpoint_kw": -4000.0, "max_setpoint_kw": 4000.0,
         "params": {"capacity_kwh": 10000.0}},
    ]),
]


#: a packaged profile of each kind (enrolment refuses unknown profiles and other kinds'; these
#: devices are data only, never polled)
PROFILE_OF_KIND = {"commercial_building": "coolmaster-vrf", "industrial_load": "industrial-plc",
                   "ev_charger": "keba-p30", "battery": "huawei-luna2000"}


def make_fleet(engine: Engine, port0: int = 16000) -> list[Device]:
    out: list[Device] = []
    with session_scope(engine) as s:
        for k, (name, devices) in enumerate(DEMO_OWNERS):
            owner = fleet.add_owner(s, name)
            spec = {"host": "127.0.0.1", "port": port0 + k, "devices": [
                {**d, "unit_id": i + 1, "profile": PROFILE_OF_KIND[d["kind"]]}
                for i, d in enumerate(devices)]}
            out += fleet.add_gateway(s, owner, f"site-{k}", spec).devices
    return out


def simulate_history(engine: Engine, devices: list[Device], event_day: date, days: int = 14,
                     seed: int = 1) -> None:
    """Meter data for the ``days`` before ``event_day`` (complete)."""
    idx = day_index(event_day - timedelta(days=days), days, INTERVAL_MINUTES)
    write_meter(engine, devices, idx, device_load_kw(devices, idx, seed=seed))


def add_event(engine: Engine, start: datetime, hours: float = 2.0, external_id: str = "E1",
              programme: str = "hunan-2026", event_type: str = "day_ahead") -> int:
    with session_scope(engine) as s:
        ev = GridEvent(external_id=external_id, source="sim", event_type=event_type,
                       direction="peak_shaving", programme=programme, start=start,
                       end=start + timedelta(hours=hours), requested_kw=12_000.0)
        s.add(ev)
        s.flush()
        assert ev.id is not None, "event is flushed"
        return ev.id


def simulate_event_day(engine: Engine, devices: list[Device], start: datetime, end: datetime,
                       declared: dict[int, float], delivery: dict[int, float],
                       seed: int = 99) -> np.ndarray:
    """The event day's meter data: normal load plus the stand-in response (and rebound)."""
    idx = day_index(start.astimezone(TZ).date(), 1, INTERVAL_MINUTES)
    load = device_load_kw(devices, idx, seed=seed)
    load += dispatch_response(devices, idx, start, end, declared, delivery)
    write_meter(engine, devices, idx, load)
    return load
