"""Flexibility forecasts per device kind, checked against hand-worked numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.calendars import WeekendCalendar
from forecasting.flexibility import (
    battery_flexibility,
    building_flexibility,
    comfort_headroom_c,
    comfort_shed_kw,
    comfort_shed_minutes,
    ev_flexibility,
    industrial_flexibility,
)
from vpp.device_kinds import (
    BatteryParams,
    BuildingThermal,
    CommercialBuildingParams,
    EvChargerParams,
    IndustrialLoadParams,
    design_thermal_params,
)
from vpp.errors import ValidationError

TZ = "Asia/Shanghai"


def test_ev_quantiles_by_slot_and_day_type() -> None:
    # 14 days of history: on working days 2 cars at 08:00 needing 10 kWh on even days and
    # 4 cars needing 30 kWh on odd days; weekends always 0.
    idx = pd.date_range("2024-06-03", periods=14 * 96, freq="15min", tz=TZ)
    work = idx.day_of_week < 5
    odd = (idx.day % 2) == 1
    eight = (idx.hour == 8) & (idx.minute == 0)
    connected = np.where(work & eight, np.where(odd, 4, 2), 0)
    energy = np.where(work & eight, np.where(odd, 30.0, 10.0), 0.0)
    hist = pd.DataFrame({"connected": connected, "energy_needed_kwh": energy}, index=idx)
    target = pd.date_range("2024-06-17 08:00", periods=2, freq="15min", tz=TZ)  # a Monday
    params = EvChargerParams(connectors=3, max_charge_kw_per_connector=7.0)
    out = ev_flexibility(params, hist, target, WeekendCalendar(), interval_minutes=15)
    assert out["connected_p10"].iloc[0] == pytest.approx(2.0)
    assert out["connected_p90"].iloc[0] == pytest.approx(3.0)  # 4 clipped to 3 connectors
    assert out["connected_p50"].iloc[1] == 0.0
    # P90: 3 cars x 7 kW = 21 kW, but they need at most 30 kWh -> 120 kW in 15 min: 21 kW
    assert out["flex_down_kw_p90"].iloc[0] == pytest.approx(21.0)
    assert (out["flex_down_kw_p10"] <= out["flex_down_kw_p90"]).all()
    with pytest.raises(ValidationError, match="connected"):
        ev_flexibility(params, hist.drop(columns="connected"), target, WeekendCalendar(),
                       interval_minutes=15)


def test_battery_soc_path_and_flex() -> None:
    p = BatteryParams(capacity_kwh=100, soc_min_pct=10, soc_max_pct=90,
                      charge_efficiency=1.0, discharge_efficiency=1.0)
    plan = pd.Series([40.0] * 4 + [-40.0] * 4,
                     index=pd.date_range("2024-06-01", periods=8, freq="15min", tz=TZ))
    out = battery_flexibility(p, 50.0, plan, max_charge_kw=50, max_discharge_kw=50,
                              soc_error_pct=0.0, drift_pct_per_sqrt_hour=0.0, interval_minutes=15)
    # +10 kWh per interval = +10 % per interval, then back down
    np.testing.assert_allclose(out["soc_pct_p50"], [60, 70, 80, 90, 80, 70, 60, 50])
    # at 90 %: no room to charge more; 80 kWh above the minimum -> 50 kW (limit) discharge
    assert out["flex_up_kw_p50"].iloc[3] == pytest.approx(0.0)
    assert out["flex_down_kw_p50"].iloc[3] == pytest.approx(40 + 50)
    # at 50 %, discharging 40 kW: could charge at 40 kW (room 40 kWh over 1 h) -> +80 kW
    assert out["flex_up_kw_p50"].iloc[7] == pytest.approx(40 + 40)
    wide = battery_flexibility(p, 50.0, plan, max_charge_kw=50, max_discharge_kw=50,
                               interval_minutes=15)
    assert (wide["soc_pct_p10"] < wide["soc_pct_p50"]).all()
    assert (wide["flex_down_kw_p10"] <= wide["flex_down_kw_p90"]).all()
    assert (wide["flex_up_kw_p10"] <= wide["flex_up_kw_p90"]).all()
    with pytest.raises(ValidationError, match="soc_now_pct"):
        battery_flexibility(p, 120.0, plan, max_charge_kw=50, max_discharge_kw=50,
                            interval_minutes=15)


def test_building_headroom() -> None:
    p = CommercialBuildingParams(comfort_min_c=22, comfort_max_c=27, max_shed_kw=100,
                                 thermal_resistance_c_per_kw=0.05,
                                 thermal_capacitance_kwh_per_c=40, rebound_fraction=0.5)
    idx = pd.date_range("2024-07-01 14:00", periods=3, freq="15min", tz=TZ)
    load = pd.DataFrame({"load_kw_p10": [50.0, 150, 150], "load_kw_p50": [60.0, 200, 200],
                         "load_kw_p90": [70.0, 250, 250]}, index=idx)
    out = building_flexibility(p, 26.0, load, rated_power_kw=300.0, indoor_temp_sd_c=0.0,
                               shed_hours=1.0)
    # R = 0.05 degC/kW, C = 40 kWh/degC (RC = 2 h), COP 3: 1 degC of headroom held 1 h allows
    # 1 / (3 x 0.05 x (1 - e^-0.5)) = 16.94 kW; load and max_shed are larger
    assert out["flex_down_kw_p50"].to_numpy() == pytest.approx([16.943] * 3, abs=1e-3)
    assert out["rebound_kwh_p50"].iloc[0] == pytest.approx(16.943 * 0.5, abs=1e-3)
    out2 = building_flexibility(p, 24.0, load, rated_power_kw=300.0, indoor_temp_sd_c=0.0)
    # 3 degC -> 50.83 kW, capped by the P10 load of 50 in the first interval
    assert out2["flex_down_kw_p10"].to_numpy() == pytest.approx([50.0, 50.83, 50.83], abs=0.01)
    sd = building_flexibility(p, 26.0, load, rated_power_kw=300.0, indoor_temp_sd_c=0.5)
    assert sd["headroom_c_p10"].iloc[0] < 1.0 < sd["headroom_c_p90"].iloc[0]
    with pytest.raises(ValidationError, match="max_shed_minutes"):
        building_flexibility(p, 26.0, load, rated_power_kw=300.0, shed_hours=3.0)


def test_comfort_shed_time_and_power_agree() -> None:
    """The RC estimate both ways: the kW held for ``h`` hours lasts ``h`` hours; a shed whose
    steady rise stays in the band lasts for ever; a narrower band holds a shed for less."""
    assert comfort_headroom_c(CommercialBuildingParams(comfort_min_c=22, comfort_max_c=27)) == 2.5
    t = BuildingThermal(0.05, 40.0)  # R degC/kW, C kWh/degC: RC = 2 h
    kw = comfort_shed_kw(t, 1.5, 1.0)
    assert comfort_shed_minutes(t, kw, 1.0) == pytest.approx(90.0)
    # 8 kW x COP 3 x 0.05 degC/kW = 1.2 degC steady: inside 2.5 degC, not inside 0.5
    assert comfort_shed_minutes(t, 8.0, 2.5) == float("inf")
    # -RC ln(1 - 0.5 / 1.2) h = 1.078 h
    assert comfort_shed_minutes(t, 8.0, 0.5) == pytest.approx(64.68, abs=0.01)
    assert comfort_shed_minutes(t, 8.0, 0.0) == 0.0
    assert comfort_shed_minutes(t, 16.0, 0.5) < comfort_shed_minutes(t, 8.0, 0.5)
    with pytest.raises(ValidationError, match="hours"):
        comfort_shed_kw(t, 0.0, 1.0)


def test_a_buildings_thermal_parameters_are_sized_to_it_unless_declared() -> None:
    """R sized so that 0.7 x rated at COP 3, less internal gains of 0.25 x rated x COP, holds
    10 degC; C = the time constant (3 h unless given) / R. Declared values win, each alone."""
    t = design_thermal_params(800.0)
    assert t.resistance_c_per_kw == pytest.approx(10 / (3 * 800 * 0.45))  # 0.00926
    assert t.resistance_c_per_kw * t.capacitance_kwh_per_c == pytest.approx(3.0)
    assert design_thermal_params(800.0, 6.0, 0.3).resistance_c_per_kw == pytest.approx(
        10 / (3 * 800 * 0.1))  # a share below 0.1 counts 0.1
    assert design_thermal_params(400.0).resistance_c_per_kw == pytest.approx(
        2 * t.resistance_c_per_kw)  # half the building: twice the resistance
    assert CommercialBuildingParams().thermal(800.0) == t
    declared = CommercialBuildingParams(thermal_resistance_c_per_kw=0.05,
                                        thermal_capacitance_kwh_per_c=40.0)
    assert declared.thermal(800.0) == BuildingThermal(0.05, 40.0)
    r_only = CommercialBuildingParams(thermal_resistance_c_per_kw=0.05).thermal(800.0)
    assert r_only == BuildingThermal(0.05, t.capacitance_kwh_per_c)
    with pytest.raises(ValueError, match="rated_power_kw"):
        design_thermal_params(0.0)


def test_industrial_curtailable() -> None:
    p = IndustrialLoadParams(max_curtail_kw=300, max_curtail_minutes=60, makeup_fraction=0.8)
    idx = pd.date_range("2024-07-01", periods=2, freq="15min", tz=TZ)
    load = pd.DataFrame({"load_kw_p10": [0.0, 200], "load_kw_p50": [100.0, 400],
                         "load_kw_p90": [200.0, 600]}, index=idx)
    out = industrial_flexibility(p, load)
    assert out["flex_down_kw_p50"].tolist() == [100.0, 300.0]
    assert out["flex_down_kw_p10"].tolist() == [0.0, 200.0]
    assert out["makeup_kwh_per_hour_p50"].tolist() == [80.0, 240.0]
    with pytest.raises(ValidationError, match="load_kw_p90"):
        industrial_flexibility(p, load.drop(columns="load_kw_p90"))
