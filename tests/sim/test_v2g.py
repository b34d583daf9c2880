"""The simulated V2G charger (sim.physics.v2g) and its register profile (wallbox-quasar):
the car follows signed setpoints within its limits, plugs in and leaves by the clock, and the
scheduler's plan, written through the adapter over real Modbus TCP on 127.0.0.1, leaves the car
with its driver's ask."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from device_adapters.profile import load_profile
from sim.clock import ManualClock
from sim.physics.factory import make_physics
from sim.physics.v2g import V2gChargerModel
from tests.sim.helpers import Case, adapter_for, client_for, serve, sim_device
from vpp.device_kinds import DeviceKind, V2gChargerParams
from vpp.scheduler import DispatchModel, EventCall, EvSession, FleetDevice, HorizonData

EVENING = datetime(2025, 7, 15, 18, 0, tzinfo=UTC)  # the car has just come home
PARAMS = {"max_charge_kw": 7.4, "max_discharge_kw": 7.4, "car_battery_kwh": 40.0,
          "departure_soc_pct": 80.0, "soc_min_pct": 20.0}
CASE = Case("wallbox-quasar", DeviceKind.V2G_CHARGER, 7.4, -7.4, 7.4, PARAMS)


def model(hour: float = 18.0) -> V2gChargerModel:
    m = make_physics(DeviceKind.V2G_CHARGER, 7.4, PARAMS)
    assert isinstance(m, V2gChargerModel)
    m.set_time(EVENING.replace(hour=int(hour)))
    return m


def test_the_car_follows_signed_setpoints_within_its_limits() -> None:
    m = model()
    assert m.plugged and m.soc_pct == 50.0  # ASSUMPTION: home at 18:00 at 50%
    m.step(3600, -5.0)
    assert m.power_kw == pytest.approx(-5.0)
    assert m.soc_pct == pytest.approx(50.0 - 5.0 / 0.95 / 40.0 * 100, abs=1e-6)
    m.step(0, -50.0)
    assert m.power_kw == pytest.approx(-7.4)  # the charger's rating
    m.step(4 * 3600, -7.4)
    assert m.soc_pct == pytest.approx(20.0, abs=1e-6) and m.power_kw == 0.0  # the car's floor
    m.step(0, 3.0)
    assert m.power_kw == pytest.approx(3.0)


def test_uncontrolled_it_fills_the_car_and_records_each_departure() -> None:
    m = model()
    m.step(13.5 * 3600, None)  # 18:00 to 07:30 the next morning at full power
    assert not m.plugged and m.power_kw == 0.0 and m.soc_pct == 0.0  # no car: reads 0
    [dep] = m.departures
    assert dep.soc_pct == pytest.approx(100.0) and dep.short_pct == 0.0
    assert m.energy_kwh == pytest.approx(20.0 / 0.95, rel=1e-6)  # 50% of 40 kWh, with losses
    m.step(3600, -5.0)
    assert m.power_kw == 0.0  # a setpoint moves nothing without a car


def test_the_profile_is_a_v2g_charger_that_can_export() -> None:
    prof = load_profile("wallbox-quasar")
    assert prof.kind is DeviceKind.V2G_CHARGER and prof.default_unit_id == 1
    assert prof.points["set_power"].min == -7400 and prof.measure.soc_pct is not None
    assert prof.control.negative and prof.watchdog.timeout_point == "idle_timeout"


async def test_over_modbus_the_adapter_discharges_the_car_and_the_watchdog_stops_it() -> None:
    clock = ManualClock(EVENING)
    dev = sim_device(CASE, clock)
    async with serve({1: dev}) as gw:
        client = client_for(gw)
        a = await adapter_for(CASE, client)
        before = await a.read_state()
        assert before.power_kw == pytest.approx(7.4)  # the app charges at full power
        assert before.soc_pct == pytest.approx(50.0)
        res = await a.apply_setpoint(-5.0)
        assert res.error is None and res.verified and not res.clamped
        assert dev.values["set_power"] == -5000.0 and dev.values["control_mode"] == 1.0
        clock.advance(300)
        after = await a.read_state()
        assert after.power_kw == pytest.approx(-5.0)
        assert after.soc_pct is not None and after.soc_pct < 50.0
        res = await a.apply_setpoint(-20.0)
        assert res.clamped and res.written_kw == pytest.approx(-7.4)
        await a.release()
        clock.advance(1)
        assert (await a.read_state()).power_kw == pytest.approx(7.4)  # back to its app
        await a.apply_setpoint(-3.0)
        dev.set_watchdog_timeout(60)
        clock.advance(120)  # silent past the idle timeout: the charger stops by itself
        assert (await a.read_state()).power_kw == pytest.approx(0.0)
        assert dev.watchdog_tripped
        await client.close()


async def test_the_plan_written_over_modbus_leaves_the_car_with_its_ask() -> None:
    """An evening call asks more than the car can give: the scheduler plans the charger (the
    car at 50% now, the driver asking 80% at 07:30, 13.5 h later, horizon 14 h), the adapter
    writes each interval's setpoint to the simulated Quasar, and the car leaves with its ask."""
    n, step_min = 56, 15
    p = V2gChargerParams.model_validate(PARAMS)
    d = FleetDevice(1, DeviceKind.V2G_CHARGER, 7.4, -7.4, 7.4, p, soc_pct=50.0,
                    terminal_soc_pct=80.0, sessions=(EvSession(0, 54, 0.0),))
    base = np.zeros((1, n))
    base[0, :12] = 7.4  # what the app would draw: full power until the car is full
    price = np.full(n, 0.3)
    price[:16] = 1.0
    call = EventCall(4, 12, 12.0)  # 19:00-21:00, more than the car's 7.4 kW
    plan = DispatchModel([d], n, interval_minutes=step_min).solve(
        [d], HorizonData(base, price, call, interval_minutes=step_min))
    assert plan.setpoint_kw[0, 4:12].max() < -1.0  # the car discharges in the call
    clock = ManualClock(EVENING)
    dev = sim_device(CASE, clock)
    async with serve({1: dev}) as gw:
        client = client_for(gw)
        a = await adapter_for(CASE, client)
        for t in range(n):
            res = await a.apply_setpoint(float(plan.setpoint_kw[0, t]))
            assert res.error is None and res.verified
            clock.advance(step_min * 60)
            await a.read_state()
        await client.close()
    physics = dev.physics
    assert isinstance(physics, V2gChargerModel)
    [left] = physics.departures
    assert left.asked_pct == 80.0
    assert left.soc_pct >= 80.0 - 0.05, left  # the registers' 1 W steps round the setpoints
