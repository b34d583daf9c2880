"""Small hand-made fleets for the scheduler tests (n = 32 intervals of 15 min = 8 h)."""

from __future__ import annotations

import numpy as np
import pytest

from vpp.device_kinds import (
    BatteryParams,
    CommercialBuildingParams,
    DeviceKind,
    EvChargerParams,
    IndustrialLoadParams,
)
from vpp.scheduler import EventCall, EvSession, FleetDevice, HorizonData

N = 32


def battery(i: int, soc: float = 60.0, rated: float = 50.0, hours: float = 2.0,
            terminal: float | None = None) -> FleetDevice:
    return FleetDevice(i, DeviceKind.BATTERY, rated, -rated, rated,
                       BatteryParams(capacity_kwh=rated * hours, soc_min_pct=10, soc_max_pct=90,
                                     charge_efficiency=0.95, discharge_efficiency=0.93),
                       owner="b", soc_pct=soc, terminal_soc_pct=terminal)


def ev(i: int, sessions: tuple[EvSession, ...], connectors: int = 1, v2g: bool = False,
       per: float = 11.0) -> FleetDevice:
    rated = per * connectors
    return FleetDevice(i, DeviceKind.EV_CHARGER, rated, -rated if v2g else 0.0, rated,
                       EvChargerParams(connectors=connectors, max_charge_kw_per_connector=per,
                                       v2g=v2g, max_discharge_kw_per_connector=per if v2g else 0),
                       owner="e", sessions=sessions)


def building(i: int, rated: float = 400.0, shed: float = 100.0, minutes: int = 60,
             rebound: float = 0.3) -> FleetDevice:
    return FleetDevice(i, DeviceKind.COMMERCIAL_BUILDING, rated, 0.2 * rated, rated,
                       CommercialBuildingParams(max_shed_kw=shed, max_shed_minutes=minutes,
                                                rebound_fraction=rebound), owner="c")


def industrial(i: int, rated: float = 1000.0, cap: float = 300.0, minutes: int = 45,
               makeup: float = 1.0, hours: float = 2.0) -> FleetDevice:
    return FleetDevice(i, DeviceKind.INDUSTRIAL_LOAD, rated, 0.3 * rated, rated,
                       IndustrialLoadParams(max_curtail_kw=cap, max_curtail_minutes=minutes,
                                            makeup_fraction=makeup, makeup_hours=hours),
                       owner="i")


def price() -> np.ndarray:
    p = np.full(N, 0.65)
    p[:8] = 0.26
    p[16:24] = 1.04
    return p


def baseline_for(devices: list[FleetDevice]) -> np.ndarray:
    base = np.zeros((len(devices), N))
    for k, d in enumerate(devices):
        if d.kind in (DeviceKind.COMMERCIAL_BUILDING, DeviceKind.INDUSTRIAL_LOAD):
            base[k] = 0.7 * d.rated_power_kw
        elif d.kind is DeviceKind.EV_CHARGER:
            assert isinstance(d.params, EvChargerParams)
            for s in d.sessions:
                left = s.energy_kwh
                for t in range(s.arrival, s.departure):
                    step = min(d.params.max_charge_kw_per_connector, left / 0.25)
                    base[k, t] += step
                    left -= step * 0.25
    return base


@pytest.fixture
def mixed() -> tuple[list[FleetDevice], np.ndarray]:
    devs = [
        battery(1, soc=70), battery(2, soc=40, rated=20, hours=4, terminal=50),
        ev(3, (EvSession(2, 20, 30.0),)),
        ev(4, (EvSession(0, 30, 40.0), EvSession(10, 28, 20.0)), connectors=2),
        ev(5, (EvSession(4, 26, 15.0),), v2g=True),
        building(6), building(7, rated=300, shed=90, minutes=90, rebound=0.0),
        industrial(8), industrial(9, makeup=0.0),
    ]
    return devs, baseline_for(devs)


def data(base: np.ndarray, reduction_kw: float, start: int = 16, end: int = 20,
         now: int = 0) -> HorizonData:
    return HorizonData(base, price(), EventCall(start, end, reduction_kw), now_index=now, interval_minutes=15)
