"""Simulated fleets: the demo fleet of a configuration file, or N synthetic devices.

Each gateway is a :class:`~sim.server.SimGateway`; each device a
:class:`~sim.device.SimulatedDevice` on the same profile the adapters use (``sunspec`` builds
a SunSpec model-1/802/124 map from pysunspec2's definitions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_adapters.profile import Profile, load_profile
from device_adapters.sunspec import build_battery_profile, build_pv_profile, model_length
from sim.clock import FileClock, SimClock
from sim.device import Clock, SimulatedDevice
from sim.physics import make_physics
from sim.server import SimGateway
from vpp.config import GatewaySpec, OwnerSpec
from vpp.device_kinds import DeviceKind

SUNSPEC_BASE = 40000


def sunspec_sim_profile(rated_power_kw: float, serial: str = "XS0001") -> Profile:
    """The SunSpec battery map our simulator serves: marker, models 1, 802, 124, end."""
    chain = []
    addr = SUNSPEC_BASE + 2
    for mid in (1, 802, 124):
        chain.append((mid, addr))
        addr += 2 + model_length(mid)
    defaults: dict[str, float | str] = {
        "1.Mn": "XiangSim", "1.Md": "SimStorage-S", "1.SN": serial, "1.Vr": "1.0",
        "802.W_SF": 0, "802.SoC_SF": -1, "802.State": 3, "802.LocRemCtl": 0,
        "124.WChaMax_SF": 0, "124.WChaMax": rated_power_kw * 1000.0,
        "124.InOutWRte_SF": -2, "124.InOutWRte_RvrtTms": 0, "124.StorCtl_Mod": 0,
    }
    return build_battery_profile(chain, name="sunspec", end_address=addr, defaults=defaults)


def sunspec_pv_sim_profile(rated_power_kw: float, serial: str = "XP0001") -> Profile:
    """The SunSpec PV inverter map our simulator serves: marker, models 1, 103, 121, 123, end
    (WMax the inverter's rating; the limit at 100%, disabled)."""
    chain = []
    addr = SUNSPEC_BASE + 2
    for mid in (1, 103, 121, 123):
        chain.append((mid, addr))
        addr += 2 + model_length(mid)
    # watts in int16 registers: a scale factor that fits the rating (100 kW: x10 W)
    sf = max(0, math.ceil(math.log10(rated_power_kw * 1000.0 / 32767.0)))
    defaults: dict[str, float | str] = {
        "1.Mn": "XiangSim", "1.Md": "SimPV-3P", "1.SN": serial, "1.Vr": "1.0",
        "103.W_SF": sf, "121.WMax_SF": sf, "121.WMax": rated_power_kw * 1000.0,
        "123.WMaxLimPct_SF": -1, "123.WMaxLimPct": 100.0, "123.WMaxLimPct_RvrtTms": 0,
        "123.WMaxLim_Ena": 0,
    }
    return build_pv_profile(chain, name="sunspec", end_address=addr, defaults=defaults)


def sim_profile(name: str, rated_power_kw: float, profiles_dir: Path | None = None,
                kind: DeviceKind = DeviceKind.BATTERY) -> Profile:
    if name == "sunspec":
        if kind is DeviceKind.PV_INVERTER:
            return sunspec_pv_sim_profile(rated_power_kw)
        return sunspec_sim_profile(rated_power_kw)
    return load_profile(name, profiles_dir)


def make_device(
    profile_name: str, kind: DeviceKind | str, unit_id: int, rated_power_kw: float,
    params: dict[str, Any], clock: Clock, seed: int = 0, profiles_dir: Path | None = None,
) -> SimulatedDevice:
    physics = make_physics(DeviceKind(kind), rated_power_kw, params, seed=seed)
    min_step_s = 0.05 * clock.accel if isinstance(clock, SimClock | FileClock) else 0.0
    return SimulatedDevice(sim_profile(profile_name, rated_power_kw, profiles_dir,
                                       DeviceKind(kind)), physics,
                           clock, unit_id, min_step_s=min_step_s)


def gateway_from_spec(spec: GatewaySpec, clock: Clock, seed: int = 0) -> SimGateway:
    devices = {
        d.unit_id: make_device(d.profile, d.kind, d.unit_id, d.rated_power_kw, d.params, clock,
                               seed=seed + i)
        for i, d in enumerate(spec.devices)
    }
    return SimGateway(devices, host=spec.host, port=spec.port)


def demo_gateways(owners: list[OwnerSpec], clock: Clock) -> list[SimGateway]:
    """Gateways of a fleet file (e.g. config/zhuzhou-demo.toml), on the declared ports."""
    out: list[SimGateway] = []
    for o in owners:
        for s in o.sites:
            for g in s.gateways:
                out.append(gateway_from_spec(g, clock, seed=len(out) * 1000))
    return out


@dataclass(frozen=True)
class SyntheticKind:
    profile: str
    kind: DeviceKind
    rated_power_kw: float
    min_setpoint_kw: float
    max_setpoint_kw: float
    params: dict[str, Any]


#: One gateway per profile in turn (`vpp gateway add` takes one profile per gateway).
SYNTHETIC_KINDS: list[SyntheticKind] = [
    SyntheticKind("huawei-luna2000", DeviceKind.BATTERY, 5.0, -5.0, 5.0,
                  {"capacity_kwh": 15.0, "soc_min_pct": 10.0, "soc_max_pct": 100.0}),
    SyntheticKind("alfen-ng9xx", DeviceKind.EV_CHARGER, 22.0, 0.0, 22.0,
                  {"connectors": 1, "max_charge_kw_per_connector": 22.0}),
    SyntheticKind("coolmaster-vrf", DeviceKind.COMMERCIAL_BUILDING, 600.0, 150.0, 600.0,
                  {"comfort_min_c": 24.0, "comfort_max_c": 27.0, "max_shed_kw": 220.0}),
    SyntheticKind("sungrow-sh", DeviceKind.BATTERY, 5.0, -5.0, 5.0, {"capacity_kwh": 9.6}),
    SyntheticKind("industrial-plc", DeviceKind.INDUSTRIAL_LOAD, 500.0, 250.0, 500.0,
                  {"max_curtail_kw": 250.0, "max_curtail_minutes": 60}),
    SyntheticKind("keba-p30", DeviceKind.EV_CHARGER, 22.0, 0.0, 22.0,
                  {"connectors": 1, "max_charge_kw_per_connector": 22.0}),
    SyntheticKind("sunspec", DeviceKind.BATTERY, 10.0, -10.0, 10.0, {"capacity_kwh": 20.0}),
]


@dataclass(frozen=True)
class SyntheticGateway:
    gateway: SimGateway
    kind: SyntheticKind
    unit_ids: list[int]


def synthetic_fleet(
    n_devices: int, *, base_port: int = 15100, per_gateway: int = 100,
    clock: Clock | None = None, host: str = "127.0.0.1", kinds: list[SyntheticKind] | None = None,
    watchdog_s: float | None = None,
) -> list[SyntheticGateway]:
    """``n_devices`` simulated devices, ``per_gateway`` (<= 247) unit ids per gateway, one
    profile per gateway cycling through ``kinds``; ports ``base_port``, ``base_port + 1``, ...
    ``watchdog_s``: set each device's watchdog timeout register, where its profile has one
    (:meth:`SimulatedDevice.set_watchdog_timeout`; default: the profile's)."""
    if n_devices < 1:
        raise ValueError("need at least one device")
    if not 1 <= per_gateway <= 247:
        raise ValueError("per_gateway must be in 1..247")
    clock = clock or SimClock()
    kinds = kinds or SYNTHETIC_KINDS
    out: list[SyntheticGateway] = []
    remaining = n_devices
    g = 0
    while remaining > 0:
        k = kinds[g % len(kinds)]
        n = min(per_gateway, remaining)
        units = list(range(1, n + 1))
        devices = {u: make_device(k.profile, k.kind, u, k.rated_power_kw, k.params, clock,
                                  seed=g * 1000 + u) for u in units}
        if watchdog_s is not None:
            for d in devices.values():
                d.set_watchdog_timeout(watchdog_s)
        out.append(SyntheticGateway(SimGateway(devices, host=host, port=base_port + g), k, units))
        remaining -= n
        g += 1
    return out
