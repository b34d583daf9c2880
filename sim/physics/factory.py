"""Build the physics model of a device kind from its rated power and kind parameters."""

from __future__ import annotations

from typing import Any

from sim.physics.battery import HOST_LOAD_SHARE, BatteryModel
from sim.physics.building import BuildingModel
from sim.physics.ev_charger import EvChargerModel
from sim.physics.industrial import IndustrialModel
from sim.physics.pv import PvModel
from sim.physics.v2g import V2gChargerModel
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

Physics = (BatteryModel | BuildingModel | EvChargerModel | IndustrialModel | V2gChargerModel
           | PvModel)


def make_physics(
    kind: DeviceKind, rated_power_kw: float, params: dict[str, Any] | None = None, seed: int = 0
) -> Physics:
    """A physics model for ``kind`` (parameters validated by :mod:`vpp.device_kinds`); a
    battery behind a host site of :data:`~sim.physics.battery.HOST_LOAD_SHARE` of its rating
    (the scenario behaviour may change it)."""
    p = parse_params(kind, params)
    if kind is DeviceKind.BATTERY:
        assert isinstance(p, BatteryParams)
        return BatteryModel(
            capacity_kwh=p.capacity_kwh, max_charge_kw=rated_power_kw,
            max_discharge_kw=rated_power_kw, soc_pct=(p.soc_min_pct + p.soc_max_pct) / 2,
            soc_min_pct=p.soc_min_pct, soc_max_pct=p.soc_max_pct,
            charge_efficiency=p.charge_efficiency, discharge_efficiency=p.discharge_efficiency,
            host_load_kw=HOST_LOAD_SHARE * rated_power_kw,
        )
    if kind is DeviceKind.EV_CHARGER:
        assert isinstance(p, EvChargerParams)
        return EvChargerModel(
            connectors=p.connectors,
            max_charge_kw_per_connector=min(p.max_charge_kw_per_connector,
                                            rated_power_kw / p.connectors),
            seed=seed,
        )
    if kind is DeviceKind.V2G_CHARGER:
        assert isinstance(p, V2gChargerParams)
        car = BatteryModel(
            capacity_kwh=p.car_battery_kwh, max_charge_kw=p.max_charge_kw,
            max_discharge_kw=p.max_discharge_kw, soc_min_pct=p.soc_min_pct,
            soc_max_pct=p.soc_max_pct, charge_efficiency=p.charge_efficiency,
            discharge_efficiency=p.discharge_efficiency)
        return V2gChargerModel(
            max_charge_kw=min(p.max_charge_kw, rated_power_kw),
            max_discharge_kw=min(p.max_discharge_kw, rated_power_kw), car=car,
            departure_soc_pct=p.departure_soc_pct)
    if kind is DeviceKind.PV_INVERTER:
        assert isinstance(p, PvInverterParams)
        return PvModel(site=p, rated_kw=rated_power_kw)  # clear sky until a run sets clouds
    if kind is DeviceKind.COMMERCIAL_BUILDING:
        assert isinstance(p, CommercialBuildingParams)
        mid = (p.comfort_min_c + p.comfort_max_c) / 2
        thermal = p.thermal(rated_power_kw)  # as declared, else sized: as the planner sees it
        return BuildingModel(
            rated_kw=rated_power_kw, comfort_min_c=p.comfort_min_c,
            comfort_max_c=p.comfort_max_c,
            thermal_resistance_c_per_kw=thermal.resistance_c_per_kw,
            thermal_capacitance_kwh_per_c=thermal.capacitance_kwh_per_c,
            set_temp_c=mid, indoor_temp_c=mid,
        )
    assert isinstance(p, IndustrialLoadParams)
    return IndustrialModel(
        rated_kw=rated_power_kw, max_curtail_minutes=float(p.max_curtail_minutes),
        makeup_fraction=p.makeup_fraction,
    )
