"""The simulated grid operator's calls and the fault injection around device adapters."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from device_adapters.protocol import DeviceAdapter
from sim.clock import ManualClock
from sim.grid import DeviceFault, FaultMode, FaultyAdapter, GridOperator, draw_faults
from sim.inprocess import InProcessAdapter
from sim.scenarios.city import (
    daily_peak_mw,
    season_days,
    simulate_weather,
)
from sim.scenarios.scenario import load_scenario
from vpp.calendar import MarketCalendar
from vpp.device_kinds import DeviceKind
from vpp.errors import DeviceError

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def scn():
    return load_scenario("zhuzhou-2025", SCENARIOS)


@pytest.fixture(scope="module")
def calls(scn):
    days = season_days(scn)
    weather = simulate_weather(scn, days, np.random.default_rng([scn.scenario.seed, 1]))
    period = [d for d in days if any(a <= d <= b for a, b in scn.season.periods)]
    return GridOperator(scn, weather).calls(period), weather


def test_calls_follow_the_rules(scn, calls) -> None:
    out, weather = calls
    g = scn.grid_operator
    assert out, "a Zhuzhou summer has hot days"
    assert {c.event_type for c in out} <= {"day_ahead", "real_time"}
    per_month = Counter((c.day.year, c.day.month) for c in out)
    assert max(per_month.values()) <= g.max_events_per_month
    fc = daily_peak_mw(scn, weather, forecast=True)
    cal = MarketCalendar.from_scenario(scn)
    for c in out:
        assert cal.is_workday(c.day)
        window = g.summer_window if cal.is_summer(c.day) else g.winter_window
        assert c.start.timetz().replace(tzinfo=None) == window[0]
        assert c.issued_at < c.start
        if c.event_type == "day_ahead":
            assert c.end.time() == window[1]
            assert c.issued_at.date() == c.day - timedelta(days=1)
            assert c.requested_kw == pytest.approx(g.request_pct_of_peak / 100 * fc[c.day] * 1000)
        else:
            assert c.start - c.issued_at == timedelta(minutes=g.real_time_notice_minutes)
            assert c.hours == g.real_time_duration_minutes / 60
    assert any(not cal.is_summer(c.day) for c in out), "winter peaks are called too"


def test_payload_for_the_rest_intake(calls) -> None:
    c = calls[0][0]
    body = c.to_payload()
    assert body["external_id"] == c.external_id
    assert datetime.fromisoformat(body["start"]) == c.start


def test_fault_rates_match_the_scenario(scn, calls) -> None:
    call = calls[0][0]
    faults = draw_faults(scn, call, 20000, np.random.default_rng(0),
                         scn.scenario.interval_minutes)
    n = Counter(f.mode for f in faults)
    f = scn.faults
    rates: tuple[tuple[FaultMode, float], ...] = (
        ("fail", f.fail_probability), ("leave", f.leave_probability),
        ("under_deliver", f.under_deliver_probability))
    for mode, prob in rates:
        assert n[mode] == pytest.approx(20000 * prob, rel=0.25), mode
    for x in faults:
        assert call.start <= x.at < call.end


def _adapter(clock: ManualClock, kind: DeviceKind = DeviceKind.INDUSTRIAL_LOAD):
    params = {"max_curtail_kw": 500.0, "max_curtail_minutes": 120}
    return InProcessAdapter.create(7, kind, 1000.0, 200.0, 1000.0, params, clock)


async def test_failing_device_drops_off_and_falls_back() -> None:
    clock = ManualClock(datetime(2025, 7, 2, 20, tzinfo=TZ))
    inner = _adapter(clock)
    a = FaultyAdapter(inner, DeviceFault(0, "fail", clock.now() + timedelta(minutes=30)), clock.now)
    assert isinstance(a, DeviceAdapter)
    assert (await a.apply_setpoint(300.0)).verified
    clock.advance(1800)
    with pytest.raises(DeviceError, match="no response"):
        await a.read_state()
    with pytest.raises(DeviceError):
        await a.apply_setpoint(300.0)
    assert inner.setpoint_kw is None  # released: back to its own behaviour


async def test_leaving_device_is_released_and_refuses_setpoints() -> None:
    clock = ManualClock(datetime(2025, 7, 2, 20, tzinfo=TZ))
    inner = _adapter(clock)
    a = FaultyAdapter(inner, DeviceFault(0, "leave", clock.now()), clock.now)
    res = await a.apply_setpoint(300.0)
    assert not res.verified and "owner override" in (res.error or "")
    state = await a.read_state()
    assert not state.available and state.flex_down_kw == 0
    assert inner.setpoint_kw is None


async def test_under_delivering_device_follows_part_of_the_cut() -> None:
    clock = ManualClock(datetime(2025, 7, 2, 20, tzinfo=TZ))
    inner = _adapter(clock)
    ref = (await inner.read_state()).power_kw
    a = FaultyAdapter(inner, DeviceFault(0, "under_deliver", clock.now(), 0.5), clock.now)
    res = await a.apply_setpoint(ref - 400.0)
    assert res.requested_kw == ref - 400.0 and not res.verified
    assert res.written_kw == pytest.approx(ref - 200.0)
    clock.advance(60)
    assert (await a.read_state()).power_kw == pytest.approx(ref - 200.0)
