"""Device physics, pure (no Modbus)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.physics import make_physics
from sim.physics.battery import BatteryModel
from sim.physics.building import BuildingModel
from sim.physics.ev_charger import EvChargerModel
from sim.physics.industrial import IndustrialModel
from vpp.device_kinds import DeviceKind


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(0, 7200), st.one_of(st.none(), st.floats(-20, 20))),
                      max_size=30))
def test_battery_respects_soc_and_power_limits(steps) -> None:
    b = BatteryModel(capacity_kwh=10, max_charge_kw=5, max_discharge_kw=4, soc_pct=50,
                     soc_min_pct=10, soc_max_pct=90)
    for dt, sp in steps:
        b.step(dt, sp)
        assert 10 - 1e-6 <= b.soc_pct <= 90 + 1e-6
        assert -4 - 1e-9 <= b.power_kw <= 5 + 1e-9


def test_battery_energy_and_efficiency() -> None:
    b = BatteryModel(capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5, soc_pct=50,
                     charge_efficiency=0.9)
    b.step(0, 2.0)
    b.step(3600, 2.0)  # one hour at 2 kW
    assert b.charged_kwh == pytest.approx(2.0)
    assert b.soc_pct == pytest.approx(50 + 2 * 0.9 / 10 * 100)
    b.step(0, None)
    assert b.power_kw == 0.0  # default behaviour: idle


def test_building_cap_warms_the_room_then_comfort_overrides() -> None:
    b = BuildingModel(rated_kw=800, comfort_min_c=24, comfort_max_c=27, set_temp_c=25.5,
                      indoor_temp_c=25.5)
    b.step(0, None)
    free = b.power_kw
    assert 0 < free < 800
    b.step(0, free * 0.5)
    assert b.power_kw == pytest.approx(free * 0.5)
    t0 = b.indoor_temp_c
    b.step(600, free * 0.5)
    assert b.indoor_temp_c > t0  # less cooling: warmer
    overridden, hottest = False, 0.0
    for _ in range(24):
        b.step(300, free * 0.5)
        overridden = overridden or b.override
        hottest = max(hottest, b.indoor_temp_c)
    assert overridden  # comfort protection wins over the cap...
    assert 27.0 < hottest < 27.5  # ...so the room stays near the top of the band


def test_heating_building_cap_cools_the_room_then_comfort_overrides() -> None:
    """Winter: the heat pump holds 20 degC at 5 degC outdoors; a cap lets the room cool until
    the bottom of the heating band, where comfort protection overrides the cap."""
    b = BuildingModel(rated_kw=800, comfort_min_c=18, comfort_max_c=22, set_temp_c=20.0,
                      indoor_temp_c=20.0, outdoor_mean_c=5.0, outdoor_amp_c=0.0, mode="heat",
                      heating_cop=2.5, internal_gain_fraction=0.0)
    b.step(0, None)
    free = b.power_kw
    assert 0 < free < 800
    b.step(3600, None)
    assert b.indoor_temp_c == pytest.approx(20.0, abs=0.05)  # held at the set temperature
    e0 = b.energy_kwh
    b.step(600, free * 0.5)
    assert b.indoor_temp_c < 20.0  # less heating: colder
    assert b.energy_kwh - e0 == pytest.approx(free * 0.5 / 6, rel=1e-6)
    overridden, coldest = False, 99.0
    for _ in range(48):
        b.step(300, free * 0.5)
        overridden = overridden or b.override
        coldest = min(coldest, b.indoor_temp_c)
    assert overridden
    assert 17.5 < coldest < 18.0


def test_building_without_electric_heating_draws_nothing() -> None:
    b = BuildingModel(rated_kw=500, outdoor_mean_c=5.0, outdoor_amp_c=0.0, mode="off",
                      internal_gain_fraction=0.0)
    b.step(3600, None)
    assert b.power_kw == 0.0 and b.energy_kwh == 0.0
    assert b.indoor_temp_c < 25.0  # the room drifts towards outdoors; no electric HVAC holds it


def test_ev_sessions_cap_and_departures() -> None:
    ev = EvChargerModel(connectors=2, max_charge_kw_per_connector=11, seed=3)
    ev.step(0, None)
    assert ev.power_kw == pytest.approx(22.0)
    ev.step(0, 8.0)
    assert ev.power_kw == pytest.approx(8.0)
    ev.step(3600 * 12, 8.0)  # half a day: cars leave, others arrive
    assert ev.energy_kwh > 0
    assert ev.cars_present <= 2


def test_industrial_curtailment_backlog_and_override() -> None:
    m = IndustrialModel(rated_kw=1000, load_factor=0.8, max_curtail_minutes=30)
    m.step(0, None)
    assert m.power_kw == 800
    m.step(0, 500)
    m.step(20 * 60, 500)
    assert m.backlog_kwh == pytest.approx(300 * 20 / 60)
    assert not m.override
    m.step(15 * 60, 500)
    assert m.override and m.power_kw >= 800  # max curtailment duration reached
    m.step(0, None)
    assert m.power_kw == 1000  # catching up at full rating
    m.step(3600, None)
    assert m.backlog_kwh == 0 and m.power_kw == 800


@pytest.mark.parametrize("kind", list(DeviceKind))
def test_factory_builds_every_kind(kind: DeviceKind) -> None:
    params = ({"capacity_kwh": 10.0} if kind is DeviceKind.BATTERY
              else {"dc_capacity_kwp": 110.0} if kind is DeviceKind.PV_INVERTER else {})
    model = make_physics(kind, 100.0, params)
    model.step(60, None)
    if kind is DeviceKind.PV_INVERTER:
        assert -100.0 <= model.power_kw <= 0  # generation is export
    else:
        assert model.power_kw >= 0
