"""The simulated battery's site (sim.physics.battery): its host load and the site meter a
hybrid inverter reads, served in process (the season) and on its register image (Modbus), and
metered per owner by the season's MeterStore as the daemon reads telemetry."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from device_adapters.profile import load_profile
from sim.clock import ManualClock
from sim.device import SimulatedDevice
from sim.metering import MeterStore
from sim.physics.battery import HOST_LOAD_SHARE, BatteryModel
from sim.physics.factory import make_physics
from sim.plant import CityPlant
from sim.scenarios import load_scenario
from sim.scenarios.fleet import generate_fleet
from vpp.device_kinds import DeviceKind

T0 = datetime(2025, 7, 15, 12, 0, tzinfo=UTC)


def test_the_site_meter_reads_host_load_plus_battery_power() -> None:
    b = make_physics(DeviceKind.BATTERY, 5.0, {"capacity_kwh": 15.0})
    assert isinstance(b, BatteryModel)
    assert b.host_load_kw == pytest.approx(HOST_LOAD_SHARE * 5.0)
    b.step(60.0, -5.0)  # discharging past the home's 2.5 kW: the site exports 2.5 kW
    assert b.site_import_kw == pytest.approx(2.5 - 5.0)
    b.host_load_kw = None  # a battery modelled without a site: no site meter
    assert b.site_import_kw is None


@pytest.mark.parametrize(("profile", "raw_sign"), [("huawei-luna2000", -1), ("sungrow-sh", -1)])
def test_the_register_image_serves_the_site_meter_with_the_vendors_sign(
        profile: str, raw_sign: int) -> None:
    """Both vendors' grid-meter registers are + export (evcc reads them with scale -1)."""
    clock = ManualClock(T0)
    prof = load_profile(profile)
    dev = SimulatedDevice(prof, make_physics(DeviceKind.BATTERY, 5.0, {"capacity_kwh": 15.0}),
                          clock, unit_id=1)
    point = prof.measure.site_import_kw
    assert point is not None and point.sign == raw_sign
    dev.physics.step(60.0, 1.0)  # charging 1 kW: the site imports 3.5 kW
    dev._publish()
    assert dev.values[point.point] == pytest.approx(-3500.0)  # W, + export


async def test_the_seasons_c_and_i_batteries_sit_behind_their_sites_meter() -> None:
    """The scenario's user-side batteries draw ``host_load_share`` x rating behind their meter
    (ASSUMPTION in the scenario); the plant reports host + average power per interval and the
    meter store carries it per owner (the other kinds read no site meter: an owner of those
    is metered at its own load)."""
    scn = load_scenario("zhuzhou-2025")
    fleet = generate_fleet(scn)
    seg = next(s for s in scn.segments if s.name == "user-side-battery")
    share = seg.behaviour["host_load_share"]
    assert isinstance(share, float)
    bats = [d for d in fleet.devices if d.segment == "user-side-battery"][:2]
    other = next(d for d in fleet.devices if d.kind is DeviceKind.COMMERCIAL_BUILDING)
    plant = CityPlant([*bats, other], T0)
    kw = await plant.advance(15)
    expected = [share * d.spec.rated_power_kw + kw[i] for i, d in enumerate(bats)]
    assert plant.site_kw[:2] == pytest.approx(expected)
    assert np.isnan(plant.site_kw[2])
    index = pd.date_range(T0, periods=4, freq="15min")
    store = MeterStore(index, [0, 1, 2], 3)
    store.record(0, kw, plant.site_kw)
    assert store.owner_site_kw[:2, 0] == pytest.approx(expected)
    assert store.owner_site_kw[2, 0] == pytest.approx(kw[2])
    assert store.site_window(index[0], index[1]).shape == (3, 1)
