"""The shared simulation clock (`--sim-clock FILE`): one definition read by separate processes,
speed changes and skips on the simulator's stdin, the daemon following them, device physics
under a jump, and the heartbeat loop on device time."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from sim.clock import (
    ClockControl,
    ClockDefinition,
    FileClock,
    parse_duration,
    read_definition,
    write_definition,
)
from sim.control import CommandError, apply_command
from sim.device import MAX_CATCHUP_S
from sim.fleet import make_device
from sim.physics.battery import BatteryModel
from sim.physics.building import BuildingModel
from tests.conftest import run_cli
from vpp.config import load_settings
from vpp.errors import ValidationError
from vpp.server import Daemon

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 12, 9, 11, 0, tzinfo=TZ)


def _clock_file(tmp_path: Path, accel: float = 60.0) -> Path:
    path = tmp_path / "sim-clock.json"
    write_definition(path, ClockDefinition.starting(START, accel))
    return path


READER = """
import sys, time
from sim.clock import FileClock
c = FileClock(sys.argv[1])
m = time.monotonic()
print(m, c.definition.at(m).isoformat(), c.now().isoformat(), flush=True)
"""


def test_two_processes_read_the_same_time(tmp_path: Path) -> None:
    path = _clock_file(tmp_path)
    out = subprocess.run([sys.executable, "-c", READER, str(path)], capture_output=True,
                         text=True, check=True, timeout=60).stdout.split()
    theirs_m, theirs_at, theirs_now = float(out[0]), out[1], datetime.fromisoformat(out[2])
    mine = read_definition(path)
    # CLOCK_MONOTONIC is system-wide: the other process's reading maps to the same instant here
    assert mine.at(theirs_m).isoformat() == theirs_at
    assert abs((theirs_now - mine.at(theirs_m)).total_seconds()) < 60 * 0.5  # read just after
    assert theirs_now.utcoffset() == timedelta(hours=8)  # in the zone the simulator started in


def test_speed_keeps_the_time_and_skip_goes_forward_only(tmp_path: Path) -> None:
    path = _clock_file(tmp_path, accel=60.0)
    control = ClockControl(path)
    before = read_definition(path).now()
    control.speed(600.0)
    after = read_definition(path)
    assert after.accel == 600.0
    assert 0 <= (after.now() - before).total_seconds() < 60.0  # continuous, no jump
    t0 = after.now()
    assert "speed 600x" in control.skip(parse_duration("23h"))
    jumped = read_definition(path).now()
    assert 23 * 3600 <= (jumped - t0).total_seconds() < 23 * 3600 + 60
    with pytest.raises(ValidationError, match="forward"):
        control.skip(-60)
    with pytest.raises(ValidationError, match="not ahead"):
        control.skip_to(START)
    with pytest.raises(ValidationError, match="speed must be > 0"):
        control.speed(0)
    target = (jumped + timedelta(hours=2)).replace(microsecond=0)
    control.skip_to(target)
    assert 0 <= (read_definition(path).now() - target).total_seconds() < 60


def test_file_clock_follows_changes_and_never_runs_backwards(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _clock_file(tmp_path, accel=1.0)
    clock = FileClock(path, recheck_s=0.0)
    t0 = clock.now()
    ClockControl(path).skip(3600)
    assert (clock.now() - t0).total_seconds() >= 3600
    assert clock.rate() == 1.0
    ClockControl(path).speed(120)
    assert clock.accel == 120.0
    high = clock.now()
    write_definition(path, ClockDefinition.starting(START, 1.0))  # an hour and more back
    assert clock.now() >= high
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="sim.clock"):
        assert clock.now() >= high
    assert "keeping the last one" in caplog.text
    assert clock.accel == 1.0  # the backward definition was read; time itself did not go back


def test_file_clock_checks_the_file_at_most_every_recheck(tmp_path: Path) -> None:
    path = _clock_file(tmp_path, accel=1.0)
    clock = FileClock(path, recheck_s=30.0)
    t0 = clock.now()
    ClockControl(path).skip(3600)
    assert (clock.now() - t0).total_seconds() < 60  # not re-read yet (cheap per call)


def test_bad_or_missing_clock_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="start the simulator with --sim-clock"):
        FileClock(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValidationError, match="not a simulation clock definition"):
        read_definition(bad)
    other = tmp_path / "other-boot.json"
    d = ClockDefinition(START, 1.0, 5.0, "not-this-boot")
    other.write_text(d.to_json())
    if Path("/proc/sys/kernel/random/boot_id").exists():
        with pytest.raises(ValidationError, match="another machine or before a reboot"):
            read_definition(other)
    for text in ("", "5x", "1h-3m", "h"):
        with pytest.raises(ValidationError, match="not a duration"):
            parse_duration(text)
    assert parse_duration("1h30m") == 5400 and parse_duration("1d") == 86400
    assert parse_duration("45s") == 45 and parse_duration("0.5h") == 1800


def test_clock_commands_on_the_simulator_stdin(tmp_path: Path) -> None:
    path = _clock_file(tmp_path)
    control = ClockControl(path)
    assert "speed 60x" in apply_command({}, "clock", control)
    assert "speed 240x" in apply_command({}, "clock speed 240", control)
    t0 = read_definition(path).now()
    apply_command({}, "clock skip 1h30m", control)
    assert (read_definition(path).now() - t0).total_seconds() >= 5400
    for line, msg in (("clock skip -1h", "not a duration"), ("clock speed fast", "not a number"),
                      ("clock skip-to 2026-12-09T11:00", "UTC offset"),
                      ("clock rewind", "usage")):
        with pytest.raises(CommandError, match=msg):
            apply_command({}, line, control)
    with pytest.raises(CommandError, match="no shared clock"):
        apply_command({}, "clock skip 1h", None)


def test_devices_integrate_a_jump_sanely(tmp_path: Path) -> None:
    path = _clock_file(tmp_path, accel=1.0)
    clock = FileClock(path, recheck_s=0.0)
    building = make_device("coolmaster-vrf", "commercial_building", 1, 600.0,
                           {"comfort_min_c": 24.0, "comfort_max_c": 27.0, "max_shed_kw": 150.0},
                           clock)
    battery = make_device("huawei-luna2000", "battery", 2, 5.0, {"capacity_kwh": 15.0}, clock)
    e0 = building.physics.energy_kwh
    ClockControl(path).skip(23 * 3600)
    building.refresh()
    battery.refresh()
    b = building.physics
    assert isinstance(b, BuildingModel) and isinstance(battery.physics, BatteryModel)
    assert 24.0 - 1.0 <= b.indoor_temp_c <= 27.0 + 1.0  # its own controller kept it near set
    assert 0.0 <= b.power_kw <= 600.0
    assert 0 < b.energy_kwh - e0 <= 600.0 * 23.01  # 23 h integrated, never above rating
    assert 10.0 <= battery.physics.soc_pct <= 100.0
    # a 30-day skip costs at most MAX_CATCHUP_S of sub-steps
    ClockControl(path).skip(30 * 86400)
    t = time.perf_counter()
    e1 = b.energy_kwh
    building.refresh()
    assert time.perf_counter() - t < 5.0
    assert 0 < b.energy_kwh - e1 <= 600.0 * MAX_CATCHUP_S / 3600 * 1.001


def test_a_watchdog_that_expires_inside_a_jump_falls_back(tmp_path: Path) -> None:
    path = _clock_file(tmp_path, accel=1.0)
    clock = FileClock(path, recheck_s=0.0)
    plc = make_device("industrial-plc", "industrial_load", 1, 500.0,
                      {"max_curtail_kw": 250.0, "max_curtail_minutes": 60}, clock)
    cap = plc.profile.points["power_cap"]  # uint32 x 0.1 kW at 100-101, cap_enable at 102
    raw = round(300.0 / (cap.scale or 1.0))
    assert plc.write(cap.address, [raw >> 16, raw & 0xFFFF, 1]) is None  # feeds the 60 s watchdog
    assert plc.setpoint_kw == pytest.approx(300.0)
    ClockControl(path).skip(3600)
    plc.refresh()
    assert plc.watchdog_tripped and plc.setpoint_kw is None  # released 60 s after the feed


def test_heartbeats_follow_the_simulated_clock(sqlite_engine: Engine, tmp_path: Path) -> None:
    """Device watchdogs count on the simulated clock: at 60x a charger's 300 s watchdog expires
    after 5 real seconds, so it is fed every 300 / 3 / 60 real seconds, not every 10."""
    path = _clock_file(tmp_path, accel=60.0)
    clock = FileClock(path, recheck_s=0.0)
    settings = load_settings(None)
    real = Daemon(settings, sqlite_engine)
    sim = Daemon(settings, sqlite_engine, clock=clock.now, clock_rate=clock.rate)
    for d in (real, sim):
        d.parts.fleet.watchdog_s = {1: 300.0, 2: 1800.0}
    p = settings.polling
    assert real.parts.fleet.heartbeat_period_s() == p.watchdog_period_s
    assert sim.parts.fleet.heartbeat_period_s() == pytest.approx(
        p.heartbeat_fraction * 300.0 / 60.0)
    ClockControl(path).speed(6.0)  # slower: the cap in real seconds applies again
    assert sim.parts.fleet.heartbeat_period_s() == p.watchdog_period_s
    assert sim.parts.clock().utcoffset() == timedelta(hours=8)
    for d in (real, sim):
        d.parts.db.close()


def test_cli_writes_the_clock_and_serve_refuses_a_missing_one(
        cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import free_port

    path = tmp_path / "clock.json"
    code, out, err = run_cli(capsys, "sim", "gateways", "--devices", "1", "--base-port",
                             str(free_port()), "--accel", "60", "--sim-clock", str(path),
                             "--sim-start", "2026-12-09T11:00", "--seconds", "0.2")
    assert code == 0, err
    d = read_definition(path)
    assert d.start == START and d.accel == 60.0
    assert f"vpp serve --sim-clock {path}" in out
    code, out, err = run_cli(capsys, "sim", "gateways", "--devices", "1", "--sim-start",
                             "2026-12-09T11:00", "--seconds", "0.1")
    assert code == 2 and "--sim-start needs --sim-clock" in err
    assert run_cli(capsys, "db", "upgrade")[0] == 0
    code, out, err = run_cli(capsys, "serve", "--port", "0", "--sim-clock",
                             str(tmp_path / "missing.json"))
    assert code == 2 and "start the simulator with --sim-clock" in err
    assert "Traceback" not in err
