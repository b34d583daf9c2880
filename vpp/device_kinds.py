"""The six kinds of flexible device, declared once.

Sign convention for every power in the project: ``power_kw > 0`` is consumption from the grid,
``power_kw < 0`` is export to the grid (battery discharge, V2G, PV generation). A *setpoint* uses
the same convention: for loads it is a power cap; for batteries a signed charge(+)/discharge(-)
target; for a PV inverter it is minus its output ceiling (``-40`` kW: generate at most 40 kW;
``0``: generate nothing; its ``min_setpoint_kw``, normally ``-rated``, is "unlimited").

Each kind has one pydantic model of its physical parameters (units in the names). The same model
validates configuration files, CLI/API input and what is stored in ``Device.params``; the
scheduler, adapters and simulators read it from here. Adding a kind means adding it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DeviceKind(StrEnum):
    """Kinds of flexible load the aggregator controls."""

    COMMERCIAL_BUILDING = "commercial_building"
    INDUSTRIAL_LOAD = "industrial_load"
    EV_CHARGER = "ev_charger"
    BATTERY = "battery"
    V2G_CHARGER = "v2g_charger"
    PV_INVERTER = "pv_inverter"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: The design sizing of a building's thermal parameters from its rated power
#: (:func:`design_thermal_params`), also the season scenario's (``sim/scenarios/fleet.py``).
#: Indoor/outdoor difference (degC) the design cooling load holds.
DESIGN_DELTA_T_C = 10.0
#: ASSUMPTION: the HVAC's coefficient of performance (kW of heat moved per kW electric), a
#: chilled-water plant / VRF figure; the planner's estimate
#: (``forecasting.flexibility.ASSUMED_HVAC_COP``) and the simulated building take the same 3.
DESIGN_COP = 3.0
#: ASSUMPTION: internal gains of an open building, as a share of rated power x COP.
INTERNAL_GAIN_OPEN = 0.25
#: ASSUMPTION: the open building's design electric load as a share of its rated power (the
#: season scenario draws 0.5-0.85 per building and takes 0.7 where none is drawn).
DESIGN_LOAD_SHARE_OPEN = 0.7
#: ASSUMPTION (no source found; ../shared/domain gives none): a building's thermal time
#: constant R x C in hours when its owner declares none: the low end of the season scenario's
#: 3-6 h (a lighter building drifts faster: the conservative side for the planner).
DEFAULT_TIME_CONSTANT_H = 3.0


@dataclass(frozen=True)
class BuildingThermal:
    """A building's first-order thermal parameters: ``resistance_c_per_kw`` (degC per kW
    thermal) and ``capacitance_kwh_per_c`` (kWh per degC)."""

    resistance_c_per_kw: float
    capacitance_kwh_per_c: float


def design_thermal_params(rated_power_kw: float,
                          time_constant_h: float = DEFAULT_TIME_CONSTANT_H,
                          load_share_open: float = DESIGN_LOAD_SHARE_OPEN) -> BuildingThermal:
    """R and C sized to the building: R such that the open building's design electric load
    ``load_share_open`` x ``rated_power_kw`` at :data:`DESIGN_COP`, less the internal gains
    (:data:`INTERNAL_GAIN_OPEN`, the share counted at least 0.1), holds
    :data:`DESIGN_DELTA_T_C`; C = ``time_constant_h`` / R."""
    if rated_power_kw <= 0 or time_constant_h <= 0:
        raise ValueError("rated_power_kw and time_constant_h must be > 0")
    share = max(load_share_open - INTERNAL_GAIN_OPEN, 0.1)
    r = DESIGN_DELTA_T_C / (DESIGN_COP * rated_power_kw * share)
    return BuildingThermal(r, time_constant_h / r)


class CommercialBuildingParams(_Params):
    """HVAC / chiller load of a commercial building with an indoor comfort band.

    ``max_shed_kw`` is the largest reduction below the baseline the owner allows, for at most
    ``max_shed_minutes`` at a time; ``rebound_fraction`` of the energy shed is drawn back after.
    ``thermal_resistance_c_per_kw`` / ``thermal_capacitance_kwh_per_c``: the building's R and C
    where known; ``None`` (the default): sized from the building's rated power
    (:meth:`thermal`, :func:`design_thermal_params` with :data:`DEFAULT_TIME_CONSTANT_H`).
    """

    comfort_min_c: float = Field(default=22.0, ge=10.0, le=35.0)
    comfort_max_c: float = Field(default=27.0, ge=10.0, le=35.0)
    max_shed_kw: float = Field(default=0.0, ge=0.0)
    max_shed_minutes: int = Field(default=120, gt=0, le=24 * 60)
    rebound_fraction: float = Field(default=0.3, ge=0.0, le=1.5)
    thermal_resistance_c_per_kw: float | None = Field(default=None, gt=0.0)
    thermal_capacitance_kwh_per_c: float | None = Field(default=None, gt=0.0)

    @model_validator(mode="after")
    def _band(self) -> CommercialBuildingParams:
        if self.comfort_min_c >= self.comfort_max_c:
            raise ValueError(
                f"comfort band inverted: comfort_min_c={self.comfort_min_c} "
                f">= comfort_max_c={self.comfort_max_c}"
            )
        return self

    def thermal(self, rated_power_kw: float) -> BuildingThermal:
        """R and C of this building of ``rated_power_kw``: each as declared, else its design
        value (:func:`design_thermal_params`). The one resolution the planner's view, the
        no-history offer and the simulated building use."""
        design = design_thermal_params(rated_power_kw)
        r, c = self.thermal_resistance_c_per_kw, self.thermal_capacitance_kwh_per_c
        return BuildingThermal(design.resistance_c_per_kw if r is None else r,
                               design.capacitance_kwh_per_c if c is None else c)


class IndustrialLoadParams(_Params):
    """Interruptible or power-capped industrial process.

    At most ``max_curtail_kw`` below its running power, for at most ``max_curtail_minutes`` in one
    go; the lost production (``makeup_fraction`` of the curtailed energy) is made up within
    ``makeup_hours`` after the curtailment ends.
    """

    max_curtail_kw: float = Field(default=0.0, ge=0.0)
    max_curtail_minutes: int = Field(default=60, gt=0, le=24 * 60)
    makeup_fraction: float = Field(default=1.0, ge=0.0, le=1.5)
    makeup_hours: float = Field(default=4.0, ge=0.0, le=48.0)


class EvChargerParams(_Params):
    """EV charging station with one or more connectors; discharge only where V2G-capable."""

    connectors: int = Field(default=1, ge=1, le=64)
    max_charge_kw_per_connector: float = Field(default=7.0, gt=0.0)
    v2g: bool = False
    max_discharge_kw_per_connector: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _v2g(self) -> EvChargerParams:
        if not self.v2g and self.max_discharge_kw_per_connector > 0:
            raise ValueError("max_discharge_kw_per_connector > 0 needs v2g = true")
        return self


class BatteryParams(_Params):
    """User-side battery storage (behind the meter)."""

    capacity_kwh: float = Field(..., gt=0.0)
    soc_min_pct: float = Field(default=10.0, ge=0.0, le=100.0)
    soc_max_pct: float = Field(default=95.0, ge=0.0, le=100.0)
    charge_efficiency: float = Field(default=0.95, gt=0.0, le=1.0)
    discharge_efficiency: float = Field(default=0.95, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _soc(self) -> BatteryParams:
        if self.soc_min_pct >= self.soc_max_pct:
            raise ValueError(
                f"state-of-charge limits inverted: soc_min_pct={self.soc_min_pct} "
                f">= soc_max_pct={self.soc_max_pct}"
            )
        return self


class V2gChargerParams(_Params):
    """Bidirectional (vehicle-to-grid) DC charger with one connector: it charges the car and may
    discharge it into the site, but the car leaves with the energy its driver asked for.

    Powers at the charger's grid side (kW); the car's battery ``car_battery_kwh`` with its state
    of charge kept within ``soc_min_pct``..``soc_max_pct`` (the floor V2G never drains below).
    ``departure_soc_pct``: the state of charge the driver asks for at departure when a session
    names none (the driver's app or the owner's preference sets it per session).
    ``wear_yuan_per_kwh``: the cost of the car battery's wear per kWh discharged through the
    charger (a cost in the plan, never traded against the departure energy).

    Defaults: 7.4 kW each way is the Wallbox Quasar 1's rating (``wallbox-quasar``
    profile); ASSUMPTION (no source found) a 40 kWh car (a Nissan Leaf, the common CHAdeMO
    V2G car) and 0.2 yuan/kWh wear (a pack of about 700 yuan/kWh over some 3,500 full
    cycles); ASSUMPTION the 20% floor and 80% departure default.
    """

    max_charge_kw: float = Field(default=7.4, gt=0.0)
    max_discharge_kw: float = Field(default=7.4, gt=0.0)
    car_battery_kwh: float = Field(default=40.0, gt=0.0)
    departure_soc_pct: float = Field(default=80.0, ge=0.0, le=100.0)
    soc_min_pct: float = Field(default=20.0, ge=0.0, le=100.0)
    soc_max_pct: float = Field(default=100.0, ge=0.0, le=100.0)
    charge_efficiency: float = Field(default=0.95, gt=0.0, le=1.0)
    discharge_efficiency: float = Field(default=0.95, gt=0.0, le=1.0)
    wear_yuan_per_kwh: float = Field(default=0.2, ge=0.0)

    @model_validator(mode="after")
    def _soc(self) -> V2gChargerParams:
        if self.soc_min_pct >= self.soc_max_pct:
            raise ValueError(
                f"state-of-charge limits inverted: soc_min_pct={self.soc_min_pct} "
                f">= soc_max_pct={self.soc_max_pct}"
            )
        if not self.soc_min_pct <= self.departure_soc_pct <= self.soc_max_pct:
            raise ValueError(
                f"departure_soc_pct={self.departure_soc_pct} outside the car's range "
                f"[{self.soc_min_pct}, {self.soc_max_pct}]"
            )
        return self


#: ASSUMPTION (no source found; the owner declares the site): Zhuzhou's city centre, where a
#: PV site's location is not given.
ZHUZHOU_LATITUDE_DEG = 27.83
ZHUZHOU_LONGITUDE_DEG = 113.13


class PvInverterParams(_Params):
    """Distributed (rooftop) PV behind one grid-tied inverter; the inverter's AC rating is the
    device's ``rated_power_kw``.

    ``dc_capacity_kwp``: the array's DC nameplate (kWp, at 1,000 W/m2 and 25 degC);
    ``tilt_deg`` from horizontal and ``azimuth_deg`` clockwise from north (180 = south) of the
    modules; the site at ``latitude_deg`` / ``longitude_deg`` / ``altitude_m`` (default:
    Zhuzhou, :data:`ZHUZHOU_LATITUDE_DEG`). ``gamma_pdc_per_c``: the modules' power temperature
    coefficient (1/degC, PVWatts' -0.0037 for crystalline silicon); ``losses_pct``: DC-side
    system losses (soiling, wiring, mismatch: PVWatts' default 14%); ``inverter_efficiency``
    its nominal efficiency (PVWatts' 0.96). Used by :mod:`forecasting.pv` (the forecast) and
    the simulated inverter alike.

    ASSUMPTION (defaults, no site survey): a 20 degree south-facing roof.
    """

    dc_capacity_kwp: float = Field(..., gt=0.0)
    tilt_deg: float = Field(default=20.0, ge=0.0, le=90.0)
    azimuth_deg: float = Field(default=180.0, ge=0.0, lt=360.0)
    latitude_deg: float = Field(default=ZHUZHOU_LATITUDE_DEG, ge=-90.0, le=90.0)
    longitude_deg: float = Field(default=ZHUZHOU_LONGITUDE_DEG, ge=-180.0, le=180.0)
    altitude_m: float = Field(default=50.0, ge=-500.0, le=9000.0)
    gamma_pdc_per_c: float = Field(default=-0.0037, ge=-0.01, le=0.0)
    losses_pct: float = Field(default=14.0, ge=0.0, lt=100.0)
    inverter_efficiency: float = Field(default=0.96, gt=0.5, le=1.0)


#: The parameters of any one kind (what :func:`parse_params` returns; narrow with isinstance).
DeviceParams = (CommercialBuildingParams | IndustrialLoadParams | EvChargerParams | BatteryParams
                | V2gChargerParams | PvInverterParams)

PARAMS_BY_KIND: dict[DeviceKind, type[DeviceParams]] = {
    DeviceKind.COMMERCIAL_BUILDING: CommercialBuildingParams,
    DeviceKind.INDUSTRIAL_LOAD: IndustrialLoadParams,
    DeviceKind.EV_CHARGER: EvChargerParams,
    DeviceKind.BATTERY: BatteryParams,
    DeviceKind.V2G_CHARGER: V2gChargerParams,
    DeviceKind.PV_INVERTER: PvInverterParams,
}

#: Kinds that may export power (negative setpoints). Others are loads: setpoints >= 0.
MAY_EXPORT: frozenset[DeviceKind] = frozenset({DeviceKind.BATTERY, DeviceKind.V2G_CHARGER,
                                               DeviceKind.PV_INVERTER})
#: Kinds that only generate: their setpoints are <= 0 (minus an output ceiling).
GENERATORS: frozenset[DeviceKind] = frozenset({DeviceKind.PV_INVERTER})


def parse_kind(value: str) -> DeviceKind:
    """Parse a device kind, with an error that lists the valid kinds."""
    try:
        return DeviceKind(value)
    except ValueError:
        valid = ", ".join(k.value for k in DeviceKind)
        raise ValueError(f"unknown device kind {value!r} (valid: {valid})") from None


def parse_params(kind: DeviceKind, params: dict[str, Any] | None) -> DeviceParams:
    """Validate kind-specific parameters (raises pydantic ``ValidationError``)."""
    return PARAMS_BY_KIND[kind].model_validate(params or {})


def check_limits(
    kind: DeviceKind,
    rated_power_kw: float,
    min_setpoint_kw: float,
    max_setpoint_kw: float,
    params: _Params | None = None,
) -> None:
    """Check a device's declared safe setpoint limits; raise ``ValueError`` naming the problem.

    Limits must be ordered, within the rated power, and non-negative for kinds that cannot
    export (an EV charger may export only when V2G-capable); a generator's (PV inverter's) are
    at most 0 (it cannot consume: its setpoint is minus its output ceiling).
    """
    if rated_power_kw <= 0:
        raise ValueError(f"rated_power_kw must be > 0, got {rated_power_kw}")
    if min_setpoint_kw > max_setpoint_kw:
        raise ValueError(
            f"inverted limits: min_setpoint_kw={min_setpoint_kw} > max_setpoint_kw={max_setpoint_kw}"
        )
    may_export = kind in MAY_EXPORT or (
        isinstance(params, EvChargerParams) and params.v2g
    )
    if min_setpoint_kw < 0 and not may_export:
        raise ValueError(
            f"negative limit min_setpoint_kw={min_setpoint_kw} for a {kind.value} that cannot export"
        )
    if kind in GENERATORS and max_setpoint_kw > 0:
        raise ValueError(
            f"max_setpoint_kw={max_setpoint_kw} > 0 for a {kind.value}, which cannot consume "
            "(its setpoint is minus its output ceiling: limits in [-rated_power_kw, 0])"
        )
    if max_setpoint_kw > rated_power_kw * 1.0001 or -min_setpoint_kw > rated_power_kw * 1.0001:
        raise ValueError(
            f"limits [{min_setpoint_kw}, {max_setpoint_kw}] kW exceed rated_power_kw={rated_power_kw}"
        )
