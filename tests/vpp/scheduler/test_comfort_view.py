"""A building's comfort limit in the planner's view (vpp.scheduler.device_view.comfort_limited)
with its thermal parameters as declared, else sized from its rated power
(vpp.device_kinds.design_thermal_params), and the simulated building built from the same
enrolment (sim.physics.factory) holding its band as long as the planner says.

The shipped demo's buildings (config/zhuzhou-demo.toml) declare no R or C: a mall chiller of
800 kW shedding 300 kW in a 24-27 degC band. On fixed small-building defaults (R 0.05 degC/kW,
C 40 kWh/degC) the planner cut that shed to 4 minutes; sized to the building (R 0.00926,
C 324, a 3 h time constant) it holds 35.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from device_adapters.protocol import DeviceState
from sim.physics.building import BuildingModel
from sim.physics.factory import make_physics
from vpp.device_kinds import CommercialBuildingParams, DeviceKind, parse_params
from vpp.scheduler.device_view import scheduler_device

MALL = {"comfort_min_c": 24.0, "comfort_max_c": 27.0, "max_shed_kw": 300.0,
        "max_shed_minutes": 120}  # config/zhuzhou-demo.toml's mall-chiller-1, 800 kW
SMALL = {"thermal_resistance_c_per_kw": 0.05, "thermal_capacitance_kwh_per_c": 40.0}


def _view(params: dict[str, Any], rated_kw: float = 800.0,
          prefs: dict[str, Any] | None = None) -> CommercialBuildingParams:
    kind = DeviceKind.COMMERCIAL_BUILDING
    state = DeviceState(1, datetime(2026, 7, 15, 6, 0, tzinfo=UTC), 500.0, None, None, None,
                        True, 300.0, 0.0)
    p = parse_params(kind, params)
    assert isinstance(p, CommercialBuildingParams)
    fd = scheduler_device(1, kind, p, rated_power_kw=rated_kw, min_setpoint_kw=0.25 * rated_kw,
                          max_setpoint_kw=rated_kw, owner="o", state=state,
                          preferences=prefs or {}, sessions=(), horizon_intervals=8,
                          interval_minutes=15)
    assert isinstance(fd.params, CommercialBuildingParams)
    return fd.params


def test_a_building_enrolled_without_thermal_parameters_is_sized_to_its_rating() -> None:
    """The demo's 800 kW mall sheds 300 kW for 35 minutes of its declared 120 (sized: steady
    rise 3 x 300 x 0.00926 = 8.3 degC, 1.5 degC reached after -3 h ln(1 - 1.5/8.3)), not
    the 4 minutes of a tiny building; its 600 kW sister's 220 kW for 36."""
    assert _view(MALL).max_shed_minutes == 35
    assert _view({**MALL, "max_shed_kw": 220.0}, rated_kw=600.0).max_shed_minutes == 36
    assert _view(MALL).max_shed_kw == 300.0
    # the owner's wider band (preferences) widens it, on the same sized R and C
    assert _view(MALL, prefs={"comfort_min_c": 23.0}).max_shed_minutes == 49


def test_declared_thermal_parameters_win() -> None:
    """A small building declared as such is still cut to 4 minutes; a heavy one keeps all."""
    assert _view({**MALL, **SMALL}).max_shed_minutes == 4
    heavy = {"thermal_resistance_c_per_kw": 0.004, "thermal_capacitance_kwh_per_c": 4000.0}
    assert _view({**MALL, **heavy}).max_shed_minutes == 120  # steady 3.6 degC, RC 16 h


@pytest.mark.parametrize("params", [MALL, {**MALL, **SMALL}])
def test_the_simulated_building_holds_its_band_as_long_as_the_planner_says(
        params: dict[str, Any]) -> None:
    """The simulated building made from the same enrolment (sim.physics.factory) takes the
    same R and C; capped 300 kW below its own draw, it overrides (indoor above 27 degC)
    within a minute of the planner's limit."""
    b = make_physics(DeviceKind.COMMERCIAL_BUILDING, 800.0, params)
    assert isinstance(b, BuildingModel)
    thermal = CommercialBuildingParams.model_validate(params).thermal(800.0)
    assert (b.thermal_resistance_c_per_kw, b.thermal_capacitance_kwh_per_c) == (
        thermal.resistance_c_per_kw, thermal.capacitance_kwh_per_c)
    b.outdoor_amp_c = 0.0  # a steady afternoon
    b.step(0, None)
    cap = b.power_kw - 300.0
    assert cap > 0
    minutes = 0
    while not b.override and minutes < 180:
        b.step(60, cap)
        minutes += 1
    assert minutes == pytest.approx(_view(params).max_shed_minutes + 1, abs=1)
