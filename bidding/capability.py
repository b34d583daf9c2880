"""Portfolio demand-response capability as a share of the system peak (the city's 5% goal).

Dependable peak-shaving capability of one device for an event of ``duration_h`` hours:
* commercial building: ``max_shed_kw`` if it may shed that long (``max_shed_minutes``), else 0;
* industrial load: ``max_curtail_kw`` if ``max_curtail_minutes`` covers the event, else 0;
* EV charger: stopping charging (``connectors x max_charge_kw_per_connector``) plus V2G discharge;
* battery: discharge ``-min_setpoint_kw``, limited to what the usable energy sustains for the
  event (``capacity_kwh x (soc_max - soc_min) x discharge_efficiency / duration_h``);
* V2G charger: stopping charging plus discharge, limited to the car's energy above its
  driver's default ask (``car_battery_kwh x (soc_max - departure_soc) x discharge_efficiency /
  duration_h``), a car arriving full; available like an EV charger (half the time, ASSUMPTION).
Each kind is then multiplied by a seasonal availability factor. The defaults in
:data:`DEFAULT_AVAILABILITY` are OUR ASSUMPTIONS (air conditioning sheds most in summer and
less in winter, little in spring/autumn; about half the charging posts are in use at the evening
peak), not measured figures: pass measured ones when there are any.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from vpp.calendar import SEASONS, Season
from vpp.device_kinds import (
    BatteryParams,
    CommercialBuildingParams,
    DeviceKind,
    EvChargerParams,
    IndustrialLoadParams,
    PvInverterParams,
    V2gChargerParams,
    parse_params,
)

#: availability per season (which months: :class:`vpp.calendar.SeasonMonths`, the one definition)
DEFAULT_AVAILABILITY: dict[Season, dict[DeviceKind, float]] = {
    "spring": {DeviceKind.COMMERCIAL_BUILDING: 0.3, DeviceKind.INDUSTRIAL_LOAD: 1.0,
               DeviceKind.EV_CHARGER: 0.5, DeviceKind.BATTERY: 1.0, DeviceKind.V2G_CHARGER: 0.5},
    "summer": {DeviceKind.COMMERCIAL_BUILDING: 1.0, DeviceKind.INDUSTRIAL_LOAD: 1.0,
               DeviceKind.EV_CHARGER: 0.5, DeviceKind.BATTERY: 1.0, DeviceKind.V2G_CHARGER: 0.5},
    "autumn": {DeviceKind.COMMERCIAL_BUILDING: 0.3, DeviceKind.INDUSTRIAL_LOAD: 1.0,
               DeviceKind.EV_CHARGER: 0.5, DeviceKind.BATTERY: 1.0, DeviceKind.V2G_CHARGER: 0.5},
    "winter": {DeviceKind.COMMERCIAL_BUILDING: 0.6, DeviceKind.INDUSTRIAL_LOAD: 1.0,
               DeviceKind.EV_CHARGER: 0.5, DeviceKind.BATTERY: 1.0, DeviceKind.V2G_CHARGER: 0.5},
}


class DeviceLike(Protocol):
    kind: str
    params: dict[str, Any]
    min_setpoint_kw: float
    max_setpoint_kw: float


def device_capability_kw(device: DeviceLike, duration_h: float = 1.0) -> float:
    """Dependable peak-shaving kW of one device for an event of ``duration_h`` hours."""
    kind = DeviceKind(device.kind)
    p = parse_params(kind, device.params)
    minutes = duration_h * 60
    if isinstance(p, CommercialBuildingParams):
        return p.max_shed_kw if p.max_shed_minutes >= minutes else 0.0
    if isinstance(p, IndustrialLoadParams):
        return p.max_curtail_kw if p.max_curtail_minutes >= minutes else 0.0
    if isinstance(p, EvChargerParams):
        stop = min(p.connectors * p.max_charge_kw_per_connector, max(device.max_setpoint_kw, 0.0))
        v2g = p.connectors * p.max_discharge_kw_per_connector if p.v2g else 0.0
        return stop + min(v2g, max(-device.min_setpoint_kw, 0.0))
    if isinstance(p, V2gChargerParams):  # a car above its driver's default ask, charging
        stop = min(p.max_charge_kw, max(device.max_setpoint_kw, 0.0))
        spare_kwh = p.car_battery_kwh * (p.soc_max_pct - p.departure_soc_pct) / 100 \
            * p.discharge_efficiency
        return stop + min(p.max_discharge_kw, max(-device.min_setpoint_kw, 0.0),
                          spare_kwh / duration_h)
    if isinstance(p, BatteryParams):
        usable_kwh = p.capacity_kwh * (p.soc_max_pct - p.soc_min_pct) / 100 * p.discharge_efficiency
        return min(max(-device.min_setpoint_kw, 0.0), usable_kwh / duration_h)
    if isinstance(p, PvInverterParams):  # it can only hold output back: that raises the load
        return 0.0
    raise ValueError(f"no capability rule for {kind}")  # pragma: no cover


@dataclass(frozen=True)
class SeasonCapability:
    season: Season
    by_kind_kw: dict[str, float]
    capability_kw: float
    share_of_peak_pct: float
    goal_pct: float
    goal_kw: float

    @property
    def meets_goal(self) -> bool:
        return self.share_of_peak_pct >= self.goal_pct


def portfolio_capability(
    devices: Iterable[DeviceLike], system_peak_mw: float, goal_pct: float, *,
    duration_h: float = 1.0,
    availability: Mapping[Season, Mapping[DeviceKind, float]] = DEFAULT_AVAILABILITY,
) -> list[SeasonCapability]:
    """Capability per season (kW and % of ``system_peak_mw``) against ``goal_pct``."""
    if system_peak_mw <= 0:
        raise ValueError("system_peak_mw must be positive")
    raw: dict[DeviceKind, float] = {k: 0.0 for k in DeviceKind}
    for d in devices:
        raw[DeviceKind(d.kind)] += device_capability_kw(d, duration_h)
    out = []
    peak_kw = system_peak_mw * 1000
    for season in SEASONS:
        factors = availability[season]
        by_kind = {k.value: raw[k] * factors.get(k, 1.0) for k in DeviceKind}
        total = sum(by_kind.values())
        out.append(SeasonCapability(
            season=season, by_kind_kw=by_kind, capability_kw=total,
            share_of_peak_pct=100 * total / peak_kw, goal_pct=goal_pct,
            goal_kw=peak_kw * goal_pct / 100,
        ))
    return out
