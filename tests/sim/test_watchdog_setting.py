"""``vpp sim gateways --watchdog-s``: the simulated devices' watchdog timeout registers are set
as an integrator sets a PLC's (an accelerated rehearsal compresses a 60 s watchdog to 1 s of
real time at 60x). The register is what the daemon reads (its heartbeat period follows it), and
the device falls back after that timeout, not the profile's default."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.clock import ClockControl, ClockDefinition, FileClock, SimClock, write_definition
from sim.device import SimulatedDevice
from sim.fleet import make_device, synthetic_fleet


def _plc(path: Path) -> SimulatedDevice:
    return make_device("industrial-plc", "industrial_load", 1, 500.0,
                       {"max_curtail_kw": 250.0, "max_curtail_minutes": 60}, FileClock(
                           path, recheck_s=0.0))


def _cap(plc: SimulatedDevice, kw: float) -> None:
    cap = plc.profile.points["power_cap"]  # uint32 x 0.1 kW at 100-101, cap_enable at 102
    raw = round(kw / (cap.scale or 1.0))
    assert plc.write(cap.address, [raw >> 16, raw & 0xFFFF, 1]) is None  # feeds the watchdog


def test_a_longer_watchdog_holds_the_cap_past_the_default(tmp_path: Path) -> None:
    path = tmp_path / "clock.json"
    write_definition(path, ClockDefinition.starting(None, 1.0))
    plc = _plc(path)
    assert plc.values["watchdog_timeout"] == 60.0  # the profile's default
    assert plc.set_watchdog_timeout(300.0)
    assert plc.values["watchdog_timeout"] == 300.0
    _cap(plc, 300.0)
    ClockControl(path).skip(120)  # past the default 60 s, inside 300 s
    plc.refresh()
    assert not plc.watchdog_tripped and plc.setpoint_kw == pytest.approx(300.0)
    ClockControl(path).skip(240)
    plc.refresh()
    assert plc.watchdog_tripped and plc.setpoint_kw is None


def test_the_fleet_option_sets_every_timer_watchdog_within_its_limits() -> None:
    fleet = synthetic_fleet(500, per_gateway=100, watchdog_s=300.0)
    set_points = 0
    for g in fleet:
        for d in g.gateway.devices.values():
            wd = d.profile.watchdog
            if wd.mode == "timer" and wd.timeout_point is not None:
                p = d.profile.points[wd.timeout_point]
                want = 300.0 / (60.0 if p.unit == "min" else 1.0)
                hi = p.max if p.max is not None else want
                assert d.values[wd.timeout_point] == pytest.approx(min(want, hi))
                set_points += 1
    assert set_points >= 100  # at least the PLC gateway
    big = make_device("industrial-plc", "industrial_load", 1, 500.0, {}, SimClock())
    assert big.set_watchdog_timeout(99_999.0) and big.values["watchdog_timeout"] == 3600.0
