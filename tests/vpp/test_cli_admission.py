"""``vpp admission`` on a real SQLite file: the demo fleet (bidding.synthetic) enrolled and
active, two weeks of synthetic metered history, the battery's state of charge as polled.

The fleet over 18:00-21:00 on Wednesday 2026-07-15 (hunan-2026): the mall's chillers shed
2,000 + 1,000 kW, the works' furnace 5,000 kW; the 4 MW / 10 MWh battery at 50% discharges
4,000 kW and charges 4,000 kW: 16,000 kW of adjustable capacity. Without a polled state of
charge the battery counts nothing: 8,000 kW, below the 10 MW minimum.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from bidding.synthetic import TZ, make_fleet, simulate_history
from tests.conftest import run_cli as run
from vpp.db import make_engine, session_scope, upgrade
from vpp.models import Device, DeviceStatus, TelemetryReading

DAY = date(2026, 7, 15)
ARGS = ("admission", "--day", DAY.isoformat(), "--window", "18:00-21:00")


@pytest.fixture
def fleet_db(cli_env: Path) -> Path:
    engine = make_engine(f"sqlite:///{cli_env}")
    upgrade(engine)
    devices = make_fleet(engine)
    with session_scope(engine) as s:
        for d in s.exec(select(Device)):
            d.status = DeviceStatus.ACTIVE.value
            s.add(d)
    simulate_history(engine, devices, DAY, days=14)
    engine.dispose()
    return cli_env


def _poll_soc(db: Path, soc_pct: float) -> None:
    engine = make_engine(f"sqlite:///{db}")
    with session_scope(engine) as s:
        bat = s.exec(select(Device).where(Device.kind == "battery")).one()
        s.add(TelemetryReading(device_id=int(bat.id or 0), ts=datetime(2026, 7, 15, 9, 0,
                                                                        tzinfo=TZ),
                               power_kw=0.0, soc_pct=soc_pct))
    engine.dispose()


def test_admitted_with_the_battery_state_known(fleet_db: Path, capsys) -> None:
    _poll_soc(fleet_db, 50.0)
    code, out, err = run(capsys, *ARGS, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert (res["down_kw"], res["up_kw"], res["adjustable_kw"]) == (12000.0, 4000.0, 16000.0)
    assert res["admitted"] and [r["status"] for r in res["rules"]] == ["pass"] * 3
    assert res["window_start"] == "2026-07-15T18:00:00+08:00"
    assert res["programme"] == "hunan-2026" and res["vpp_type"] == "load"
    assert res["normal_load_kw"] > 0 and res["share_pct"] == pytest.approx(
        100 * 16000 / res["normal_load_kw"], abs=1e-3)
    code, out, err = run(capsys, *ARGS)
    assert code == 0, err
    assert "admitted" in out and "16,000.0 kW" in out and "min_declared_kw (VERIFIED)" in out


def test_a_failing_rule_exits_1_with_the_margin(fleet_db: Path, capsys) -> None:
    code, out, _ = run(capsys, *ARGS)
    assert code == 1
    assert "not admitted" in out and "FAIL" in out and "-2,000.0 kW" in out
    code, out, _ = run(capsys, *ARGS, "--json")
    assert code == 1
    cap = json.loads(out)["rules"][0]
    assert (cap["name"], cap["status"], cap["measured"], cap["margin"]) == (
        "adjustable_capacity", "fail", 8000.0, -2000.0)


@pytest.mark.parametrize(("args", "message"), [
    (("--window", "21:00-18:00"), "the end must come after the start"),
    (("--window", "18:10-19:00"), "not on 15-minute intervals"),
    (("--window", "evening"), "window must be HH:MM-HH:MM"),
    (("--day", "15/07/2026"), "--day must be YYYY-MM-DD"),
    (("--day", "2020-01-01"), "no version in force"),
    (("--history-days", "0"), "--history-days must be 1..60"),
])
def test_bad_input_is_a_clear_error(fleet_db: Path, capsys, args: tuple[str, ...],
                                    message: str) -> None:
    code, out, err = run(capsys, "admission", *args)
    assert code == 2 and message in err and "Traceback" not in err + out
