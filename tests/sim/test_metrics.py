"""The simulator's measures of a call (sim.metrics): the no-dispatch twin, the rebound, the band
cap on what is credited, the capability-test calls and the per-season summary."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from bidding.programme import load_programme
from sim import aggregator
from sim.grid import GridCall, GridOperator, with_capability_tests
from sim.metrics import (
    NoDispatchTwin,
    call_measures,
    peak_hour_load,
    rebound,
    season_summary,
)
from sim.plant import CityPlant
from sim.results import EventOutcome
from sim.scenarios.city import season_days, simulate_weather
from sim.scenarios.fleet import generate_fleet
from sim.scenarios.scenario import load_scenario
from sim.season import RunOptions
from sim.season_days import select_days
from vpp.calendar import MarketCalendar

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def scn():
    return load_scenario("zhuzhou-2025", ROOT / "config" / "scenarios")


# -- rebound ---------------------------------------------------------------------------------
def test_rebound_energy_and_peak_hand_computed():
    # 4 call intervals, then a 4-interval tail: metered 100 kW over the twin for two intervals
    twin = np.array([500, 500, 500, 500, 400, 400, 300, 300], dtype=float)
    metered = np.array([300, 300, 300, 300, 500, 500, 300, 300], dtype=float)
    kwh, peak, n = rebound(metered, twin, 4, 15)
    assert kwh == pytest.approx(2 * 100 * 0.25)
    assert peak == 500.0 and n == 4


def test_rebound_skips_what_was_not_simulated():
    twin = np.array([5, 5, 4, np.nan], dtype=float)
    metered = np.array([3, 3, 6, np.nan], dtype=float)
    assert rebound(metered, twin, 2, 60) == (2.0, 6.0, 1)
    assert rebound(metered[:2], twin[:2], 2, 60)[2] == 0


def test_rebound_flag_against_the_city_peak_hour():
    idx = pd.date_range("2025-07-15", periods=96, freq="15min", tz=TZ)
    city = pd.Series(np.where(idx.hour == 21, 2500.0, 2000.0), idx)  # the city peaks 21-22 h
    fleet = pd.Series(np.where(idx.hour == 21, 800.0, 600.0), idx)
    assert peak_hour_load(city, fleet) == 800.0
    base = dict(uncapped_offer_kw=0.0, paid_kwh=0.0, hours=1.0, baseline_kw=np.full(4, 900.0),
                interval_minutes=15)
    calm = call_measures(metered_kw=np.array([500.0] * 4 + [700.0] * 4),
                         twin_kw=np.full(8, 650.0), peak_hour_kw=800.0, **base)
    assert not calm.rebound_flag
    hot = call_measures(metered_kw=np.array([500.0] * 4 + [1200.0, 900.0, 700.0, 650.0]),
                        twin_kw=np.full(8, 650.0), peak_hour_kw=800.0, **base)
    assert hot.rebound_flag and hot.rebound_peak_kw == 1200.0
    assert hot.rebound_kwh == pytest.approx((550 + 250 + 50) * 0.25)
    # physical response and the baseline's error on the call day add up to baseline - metered
    assert hot.physical_kw == pytest.approx(150.0)
    assert hot.baseline_error_kw == pytest.approx(250.0)
    unknown = call_measures(metered_kw=np.full(8, 2000.0), twin_kw=np.full(8, 650.0),
                            peak_hour_kw=float("nan"), **base)
    assert not unknown.rebound_flag


# -- the band cap: credited against metered --------------------------------------------------
def test_credited_stops_at_the_band_upper_limit():
    prog = load_programme("hunan-2026", ROOT / "config" / "programmes",
                          datetime(2025, 7, 15).date())
    idx = pd.date_range("2025-07-15 20:00", periods=4, freq="15min", tz=TZ)
    base = np.full((2, 4), 5000.0)
    metered = base - np.array([[1500.0], [1000.0]])  # 2,500 kW delivered against 1,000 declared
    res, rows = aggregator.settle(prog, idx, base, metered, {0: 600.0, 1: 400.0},
                                  Decimal("1.5"), 15.0, 15,
                                  product=prog.product("day_ahead", "peak_shaving"))
    m = call_measures(uncapped_offer_kw=1000.0, paid_kwh=res.paid_kwh, hours=1.0,
                      baseline_kw=base[rows].sum(axis=0), metered_kw=np.full(8, 7500.0),
                      twin_kw=np.full(8, 10_000.0), peak_hour_kw=10_000.0,
                      interval_minutes=15)
    assert res.response_kwh == pytest.approx(2500.0)  # metered response: 250% of declared
    assert m.credited_kw == pytest.approx(1200.0)  # paid only up to 120% of declared
    assert m.physical_kw == pytest.approx(2500.0)


# -- the no-dispatch twin --------------------------------------------------------------------
def test_twin_follows_the_plant_without_dispatch_and_departs_with_it(scn):
    fleet = generate_fleet(scn).sample(40, seed=3)
    start = datetime(2025, 7, 15, 19, tzinfo=TZ)
    plant = CityPlant(fleet.devices, start, seed=5)
    owner_of = np.arange(len(fleet.devices))  # each device its own owner row

    async def run(dispatch: bool) -> tuple[np.ndarray, np.ndarray]:
        for _ in range(4):
            plant.shape(31.0)
            await plant.advance(15)
        twin = NoDispatchTwin(plant, np.arange(len(fleet.devices)), owner_of, len(owner_of))
        metered = []
        for k in range(6):
            plant.shape(31.0)
            if dispatch and k == 0:
                for a in plant.adapters:
                    await a.apply_setpoint(a.min_setpoint_kw)
            metered.append(await plant.advance(15))
            await twin.step(31.0, 15)
        return np.vstack(metered), np.vstack(twin.owner_kw)

    metered, twin = asyncio.run(run(dispatch=False))
    np.testing.assert_allclose(twin, metered, rtol=1e-9, atol=1e-9)
    metered, twin = asyncio.run(run(dispatch=True))
    assert metered.sum() < twin.sum() - 1.0  # the dispatched plant draws less than its twin


# -- capability tests --------------------------------------------------------------------------
def _operator(scn):
    days = season_days(scn)
    weather = simulate_weather(scn, days, np.random.default_rng([scn.scenario.seed, 1]))
    period = [d for d in days if any(a <= d <= b for a, b in scn.season.periods)]
    return GridOperator(scn, weather), period


def test_capability_tests_one_per_season_at_the_goal_in_the_peak_hour(scn):
    op, period = _operator(scn)
    tests = op.capability_tests(period)
    cal = MarketCalendar.from_scenario(scn)
    assert sorted(cal.season_of(t.day) for t in tests) == ["summer", "winter"]
    for t in tests:
        assert t.test and t.event_type == "day_ahead"
        assert t.requested_kw == pytest.approx(0.05 * scn.city.system_peak_mw * 1000)
        assert t.hours == 1.0
        assert t.start.hour == (21 if cal.is_summer(t.day) else 18)
        same = [d for d in period if cal.season_of(d) == cal.season_of(t.day) and cal.is_workday(d)]
        assert float(op.forecast_peak_mw[t.day]) == max(float(op.forecast_peak_mw[d]) for d in same)
        prog = load_programme(scn.scenario.programme, ROOT / "config" / "programmes", t.day)
        prog.check_event(t.event_type, t.direction, t.start, t.end, notified_at=t.issued_at)
    calls = with_capability_tests(op.calls(period), tests)
    assert len({c.day for c in calls}) == len(calls)  # one call a day


def test_event_days_keep_the_capability_tests(scn):
    op, period = _operator(scn)
    calls = with_capability_tests(op.calls(period), op.capability_tests(period))
    days, chosen = select_days(scn, calls, RunOptions(event_days=1, history_days=3))
    tests = [c for c in chosen if c.test]
    assert len(tests) == 2 and len([c for c in chosen if not c.test]) == 1
    for c in chosen:
        assert all(c.day - timedelta(days=k) in days for k in range(4))
    assert len(days) == 3 * 4  # three calls, each with its three history days, no days between


# -- per-season summary ------------------------------------------------------------------------
def _outcome(day: int, season: str, uncapped_kw: float, test: bool = False) -> EventOutcome:
    start = datetime(2025, 7, day, 20, tzinfo=TZ)
    call = GridCall(f"c{day}", "day_ahead", "peak_shaving", "p", start - timedelta(hours=27),
                    start, start + timedelta(hours=1), 100_000.0, "", test=test)
    m = call_measures(uncapped_offer_kw=uncapped_kw, paid_kwh=60_000.0, hours=1.0,
                      baseline_kw=np.full(4, 500_000.0), metered_kw=np.full(8, 440_000.0),
                      twin_kw=np.full(8, 490_000.0), peak_hour_kw=480_000.0,
                      interval_minutes=15)
    return EventOutcome(
        call=call, declared_kw=min(uncapped_kw, 100_000.0), price_yuan_per_kwh="1.5",
        available_flex_kw=0.0, index=pd.date_range(start, periods=4, freq="15min"),
        baseline_kw=np.full(4, 500_000.0), metered_kw=np.full(4, 440_000.0), band_lower_pct=50,
        band_upper_pct=120, revenue_fen=0, penalty_fen=0, fee_fen=0, payouts_fen={},
        baseline_error_pct=None, comfort_violations=0, soc_violations=0, season=season,
        measures=m)


def test_season_summary_keeps_tests_apart_and_reports_the_uncapped_offer():
    # ten summer calls, uncapped offers 110..200 MW; 60 MW credited, 60 metered, 50 physical
    events = [_outcome(d, "summer", kw * 1000.0)
              for d, kw in zip(range(1, 11), range(110, 210, 10), strict=True)]
    events += [_outcome(20, "summer", 90_000.0, test=True),
               _outcome(21, "winter", 50_000.0, test=True)]
    s = season_summary(events, 2500.0)
    summer = s["summer"]
    assert summer["calls"] == 10  # the test is not one of the season's calls
    assert summer["uncapped_offer_mw_median"] == pytest.approx(155.0)
    assert summer["uncapped_offer_mw_p10"] == pytest.approx(119.0)
    assert summer["declared_mw_median"] == pytest.approx(100.0)  # capped at the request
    assert summer["credited_mw_mean"] == 60.0 and summer["delivered_metered_mw_mean"] == 60.0
    assert summer["physical_mw_mean"] == 50.0
    assert summer["baseline_error_call_day_mw_mean"] == 10.0
    assert summer["physical_pct_mean"] == 2.0
    assert [t["id"] for t in summer["capability_tests"]] == ["c20"]
    assert s["winter"]["calls"] == 0 and len(s["winter"]["capability_tests"]) == 1
