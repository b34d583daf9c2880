"""Valley filling in the season (issue 20): the grid operator's valley-filling calls, run through
the same lifecycle as peak shaving (intake, participants, offer, plan, dispatch, settlement) and
reported apart from the peak-shaving headline.

The short season is two weeks of winter history and the call day on a 150-device sample (the smallest fleet the
season tests use) with the peak-shaving calls switched off in a copy of the scenario, so that its
one event day is a valley-filling call. The programme's 10 MW minimum and its 10%-of-normal-load
minimum are lifted (a copy of the programme file, as ``tests/sim/test_season.py`` lifts the
first) because the sample's two batteries, the only devices a day-ahead valley offer counts,
cannot reach them. Everything else is the shipped scenario and programme.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from sim.grid import GridCall, GridOperator, draw_faults
from sim.metrics import call_measures
from sim.report import write_report
from sim.results import EventOutcome, SeasonResult
from sim.scenarios.city import season_days, simulate_weather
from sim.scenarios.scenario import Scenario, load_scenario
from sim.season import RunOptions, run_season
from tests.sim.test_season import _programmes_at
from vpp.config import BiddingSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "config" / "scenarios"
TZ = ZoneInfo("Asia/Shanghai")

#: The default scenario's peak-shaving calls and capability tests (id, issued, start, requested
#: kW) as the operator issued them before valley filling was added (84665df): the valley calls
#: must leave them as they were, so that earlier season figures stay comparable.
PEAK = [
    ("sim-da-20250704", "2025-07-03T17:00:00+08:00", "2025-07-04T20:00:00+08:00", 118519.225),
    ("sim-rt-20250707", "2025-07-07T19:30:00+08:00", "2025-07-07T20:00:00+08:00", 57603.690),
    ("sim-da-20250715", "2025-07-14T17:00:00+08:00", "2025-07-15T20:00:00+08:00", 117015.185),
    ("sim-da-20250716", "2025-07-15T17:00:00+08:00", "2025-07-16T20:00:00+08:00", 117451.432),
    ("sim-da-20250718", "2025-07-17T17:00:00+08:00", "2025-07-18T20:00:00+08:00", 119686.474),
    ("sim-da-20250721", "2025-07-20T17:00:00+08:00", "2025-07-21T20:00:00+08:00", 120341.931),
    ("sim-da-20250801", "2025-07-31T17:00:00+08:00", "2025-08-01T20:00:00+08:00", 116756.712),
    ("sim-da-20250808", "2025-08-07T17:00:00+08:00", "2025-08-08T20:00:00+08:00", 120299.676),
    ("sim-da-20250813", "2025-08-12T17:00:00+08:00", "2025-08-13T20:00:00+08:00", 118551.003),
    ("sim-da-20250814", "2025-08-13T17:00:00+08:00", "2025-08-14T20:00:00+08:00", 118291.051),
    ("sim-da-20250828", "2025-08-27T17:00:00+08:00", "2025-08-28T20:00:00+08:00", 117768.580),
    ("sim-test-20250829", "2025-08-28T17:00:00+08:00", "2025-08-29T21:00:00+08:00", 125008.690),
    ("sim-rt-20250901", "2025-09-01T19:30:00+08:00", "2025-09-01T20:00:00+08:00", 54563.203),
    ("sim-rt-20250902", "2025-09-02T19:30:00+08:00", "2025-09-02T20:00:00+08:00", 54090.214),
    ("sim-da-20251216", "2025-12-15T17:00:00+08:00", "2025-12-16T18:00:00+08:00", 105131.924),
    ("sim-da-20251218", "2025-12-17T17:00:00+08:00", "2025-12-18T18:00:00+08:00", 107437.194),
    ("sim-da-20251219", "2025-12-18T17:00:00+08:00", "2025-12-19T18:00:00+08:00", 108446.334),
    ("sim-rt-20251223", "2025-12-23T17:30:00+08:00", "2025-12-23T18:00:00+08:00", 48466.064),
    ("sim-test-20260105", "2026-01-04T17:00:00+08:00", "2026-01-05T18:00:00+08:00", 125008.690),
    ("sim-da-20260106", "2026-01-05T17:00:00+08:00", "2026-01-06T18:00:00+08:00", 112937.681),
    ("sim-da-20260107", "2026-01-06T17:00:00+08:00", "2026-01-07T18:00:00+08:00", 105617.265),
    ("sim-da-20260108", "2026-01-07T17:00:00+08:00", "2026-01-08T18:00:00+08:00", 106444.554),
    ("sim-da-20260109", "2026-01-08T17:00:00+08:00", "2026-01-09T18:00:00+08:00", 110165.445),
    ("sim-da-20260112", "2026-01-11T17:00:00+08:00", "2026-01-12T18:00:00+08:00", 111818.111),
]
PEAK_IDS = [p[0] for p in PEAK]


def _operator(scn: Scenario) -> tuple[GridOperator, list[date]]:
    days = season_days(scn)
    weather = simulate_weather(scn, days, np.random.default_rng([scn.scenario.seed, 1]))
    period = [d for d in days if any(a <= d <= b for a, b in scn.season.periods)]
    return GridOperator(scn, weather), period


@pytest.fixture(scope="module")
def scn() -> Scenario:
    return load_scenario("zhuzhou-2025", SCENARIOS)


def test_the_peak_shaving_calls_are_unchanged(scn) -> None:
    op, period = _operator(scn)
    calls = op.season_calls(period)
    peak = [(c.external_id, c.issued_at.isoformat(), c.start.isoformat(),
             round(c.requested_kw, 3)) for c in calls if c.direction == "peak_shaving"]
    assert peak == PEAK
    assert [c.start for c in calls] == sorted(c.start for c in calls)


def test_the_operator_issues_valley_calls_per_the_scenario(scn) -> None:
    v = scn.grid_operator.valley_filling
    assert v is not None
    op, period = _operator(scn)
    valley = op.valley_calls(period)
    assert [c.external_id for c in valley] == ["sim-vf-20260124", "sim-vf-20260125"]
    for c in valley:
        assert c.direction == "valley_filling" and c.event_type == "day_ahead"
        assert c.sign == -1.0
        assert c.day >= v.first_day and not op.calendar.is_workday(c.day)
        assert (c.start.time(), c.end.time()) == v.window
        assert c.issued_at == datetime.combine(c.day - timedelta(days=1),
                                               datetime.min.time(), TZ).replace(hour=17)
        assert c.requested_kw == pytest.approx(
            v.request_pct_of_peak / 100 * op.forecast_peak_mw[c.day] * 1000)
    # the monthly limit is the table's own
    one = scn.model_copy(update={"grid_operator": scn.grid_operator.model_copy(update={
        "valley_filling": v.model_copy(update={"max_events_per_month": 1})})})
    op1, _ = _operator(one)
    assert [c.external_id for c in op1.valley_calls(period)] == ["sim-vf-20260124"]
    # the programme offers valley filling from its 2026 version: the shipped accepts them
    from bidding.programme import load_programme

    for c in valley:
        prog = load_programme("hunan-2026", ROOT / "config/programmes", c.day)
        prog.check_event(c.event_type, c.direction, c.start, c.end, notified_at=c.issued_at)


def test_no_valley_table_no_valley_calls(scn) -> None:
    none = scn.model_copy(update={"grid_operator": scn.grid_operator.model_copy(
        update={"valley_filling": None})})
    op, period = _operator(none)
    assert op.valley_calls(period) == []
    assert all(c.direction == "peak_shaving" for c in op.season_calls(period))


def test_a_valley_call_on_a_peak_call_day_is_not_issued(scn) -> None:
    """The operator calls a day once: a valley table that allows working days loses the days
    the peak-shaving calls already have."""
    v = scn.grid_operator.valley_filling
    every = scn.model_copy(update={"grid_operator": scn.grid_operator.model_copy(update={
        "valley_filling": v.model_copy(update={"day_type": "any", "first_day": date(2025, 7, 1),
                                               "max_events_per_month": 31})})})
    op, period = _operator(every)
    calls = op.season_calls(period)
    days = [c.day for c in calls]
    assert len(days) == len(set(days))
    assert [c.external_id for c in calls if c.direction == "peak_shaving"] == PEAK_IDS


def test_an_under_delivering_device_follows_part_of_the_rise() -> None:
    """Fault injection works in the call's direction: under valley filling a device told to
    rise follows only part of the rise (it followed all of it before)."""
    import sim.grid as grid

    class _Inner:
        device_id = 1
        written: list[float] = []

        async def read_state(self):
            from types import SimpleNamespace
            return SimpleNamespace(power_kw=100.0)

        async def apply_setpoint(self, kw: float):
            from device_adapters.protocol import SetpointResult
            self.written.append(kw)
            return SetpointResult(1, kw, kw, True, kw, True, None)

    at = datetime(2026, 1, 24, 12, tzinfo=TZ)
    for sign, setpoint, expected in ((-1.0, 200.0, 150.0), (1.0, 0.0, 50.0), (1.0, 200.0, 200.0)):
        inner = _Inner()
        inner.written = []
        a = grid.FaultyAdapter(inner, grid.DeviceFault(0, "under_deliver", at, 0.5, sign),
                               lambda: at)
        asyncio.run(a.apply_setpoint(setpoint))
        assert inner.written == [pytest.approx(expected)]


def test_faults_of_a_valley_call_carry_its_direction(scn) -> None:
    op, period = _operator(scn)
    call = op.valley_calls(period)[0]
    faults = draw_faults(scn, call, 2000, np.random.default_rng(0), 15)
    assert faults and {f.sign for f in faults} == {-1.0}


def _valley_event(rise_kw: float, declared_kw: float) -> EventOutcome:
    start = datetime(2026, 1, 24, 12, tzinfo=TZ)
    call = GridCall("v", "day_ahead", "valley_filling", "p", start - timedelta(hours=19), start,
                    start + timedelta(hours=1), 20_000.0, "")
    idx = pd.date_range(start, periods=4, freq="15min")
    return EventOutcome(
        call=call, declared_kw=declared_kw, price_yuan_per_kwh="0.3", available_flex_kw=0.0,
        index=idx, baseline_kw=np.full(4, 1000.0), metered_kw=np.full(4, 1000.0 + rise_kw),
        band_lower_pct=50, band_upper_pct=120, revenue_fen=100, penalty_fen=0, fee_fen=10,
        payouts_fen={"a": 90}, baseline_error_pct=None, comfort_violations=0, soc_violations=0)


def test_a_valley_outcome_delivers_the_rise_and_stays_out_of_the_headline() -> None:
    e = _valley_event(800.0, 1000.0)
    assert e.delivered_kw == pytest.approx(800.0) and e.in_band
    assert _valley_event(-50.0, 1000.0).delivered_kw == pytest.approx(-50.0)
    r = SeasonResult("s", "city", 2500.0, 5.0, 1, 1, {}, {}, [], [e], pd.Series(dtype=float),
                     pd.Series(dtype=float))
    assert r.calls == [] and r.valley_calls == [e] and r.headline().events == 0


def test_valley_measures_are_taken_in_the_rise_direction() -> None:
    base = np.full(4, 1000.0)
    twin = np.full(8, 1100.0)  # the devices would have drawn 1,100 kW without the call
    metered = np.r_[np.full(4, 1900.0), np.full(4, 900.0)]  # raised, then 200 kW given back
    m = call_measures(uncapped_offer_kw=1000.0, paid_kwh=900.0, hours=1.0, baseline_kw=base,
                      metered_kw=metered, twin_kw=twin, peak_hour_kw=float("nan"),
                      interval_minutes=15, sign=-1.0)
    assert m.physical_kw == pytest.approx(800.0)  # metered - twin
    assert m.baseline_error_kw == pytest.approx(100.0)  # twin - baseline: credited beyond physics
    assert m.physical_kw + m.baseline_error_kw == pytest.approx(900.0)  # metered - baseline
    assert m.rebound_kwh == pytest.approx(200.0)  # (twin - metered) over the 1 h tail
    assert not m.rebound_flag


# -- a short season with one valley-filling call ---------------------------------------------
@pytest.fixture(scope="module")
def valley_run(scn, tmp_path_factory: pytest.TempPathFactory) -> SeasonResult:
    v = scn.grid_operator.valley_filling
    short = scn.model_copy(update={
        "season": scn.season.model_copy(update={"periods": [(date(2026, 1, 22),
                                                             date(2026, 1, 24))]}),
        "grid_operator": scn.grid_operator.model_copy(update={
            "max_events_per_month": 0,  # no peak-shaving call: the event day is the valley call
            "valley_filling": v.model_copy(update={"max_events_per_month": 1})})})
    pdir = _programmes_at(tmp_path_factory.mktemp("programmes"),
                          {"min_share_of_normal_load_pct = 10.0":
                           "min_share_of_normal_load_pct = 0.0"})
    settings = Settings(bidding=BiddingSettings(programmes_dir=pdir))
    # a non-working call day's baseline needs three non-working days: two weeks of history
    opts = RunOptions(event_days=1, history_days=14, max_devices=150, capability_test=False)
    return asyncio.run(run_season(settings, short, opts))


def test_a_valley_call_is_settled_in_the_band_with_load_raised(valley_run) -> None:
    assert [e.call.external_id for e in valley_run.events] == ["sim-vf-20260124"]
    e = valley_run.events[0]
    assert len(e.index) == 12, e.notes  # settled over the 3 h window
    assert e.declared_kw > 0 and e.setpoints_written > 0
    rise = e.metered_kw - e.baseline_kw
    assert rise.mean() > 0 and e.delivered_kw == pytest.approx(rise.mean())
    assert e.in_band, (e.performance_ratio, e.notes)
    assert e.revenue_fen > 0 and e.balanced
    # the settlement's own response is the rise (integer Wh, within a Wh per owner-interval)
    assert e.settled_response_kwh == pytest.approx(rise.sum() * 0.25, abs=0.001 * 12 * 150)
    m = e.measures
    assert m is not None and m.physical_kw + m.baseline_error_kw == pytest.approx(
        e.delivered_kw, abs=1.0)
    assert not m.rebound_flag
    # the monthly capacity payment is for peak shaving only (the programme's directions)
    assert all(c.credit_kw == 0 for c in valley_run.capacity)
    assert valley_run.headline().events == 0


def test_the_report_shows_valley_filling_apart(valley_run, tmp_path: Path) -> None:
    page = write_report(valley_run, tmp_path)
    text = page.read_text()
    assert "## Valley filling" in text and "Calls: 1, settled 1, in the paid band 1" in text
    assert "valley filling |" in text  # the events table names the direction
    assert (tmp_path / "event-valley.png").stat().st_size > 1000
    s = json.loads((tmp_path / "summary.json").read_text())
    v = s["valley_filling"]
    e = valley_run.events[0]
    assert v["calls"] == 1 and v["settled"] == 1 and v["in_band"] == 1
    assert v["delivered_metered_mw_mean"] == pytest.approx(round(e.delivered_kw / 1000, 2))
    assert v["revenue_yuan"] == e.revenue_fen / 100
    assert s["events"][0]["direction"] == "valley_filling"
    assert s["by_season"] == {}  # the peak-shaving measures hold no valley call
    assert s["headline"]["events"] == 0
    assert s["calls_by_direction"] == {"peak_shaving": 0, "valley_filling": 1,
                                       "capability_tests": 0}
