"""The season runner's accounting on a small sampled fleet (one event day), the headline
arithmetic, the report and the CLI's errors.

The run uses the production forecasting, bidding, scheduler and settlement code; only the
programme's 10 MW admission minimum is lifted (a copy of the programme file with
``min_declared_kw = 0``) because a 150-device test fleet cannot reach it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from sim.grid import GridCall
from sim.report import write_report
from sim.results import EventOutcome, headline
from sim.season import RunOptions, run_season
from vpp.cli.main import main
from vpp.config import BiddingSettings, SchedulerSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")


def _programmes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _programmes_at(tmp_path_factory.mktemp("programmes"))


def _programmes_at(pdir: Path, edits: dict[str, str] | None = None) -> Path:
    """The shipped Hunan programme without its 10 MW minimum (a sample fleet), ``edits``
    applied to its text, in ``pdir``."""
    src = (ROOT / "config/programmes/hunan-2026.toml").read_text()
    for old, new in {"min_declared_kw = 10000.0": "min_declared_kw = 0.0",
                     **(edits or {})}.items():
        assert old in src, old
        src = src.replace(old, new)
    (pdir / "hunan-2026.toml").write_text(src)
    return pdir


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory):
    import asyncio

    settings = Settings(bidding=BiddingSettings(programmes_dir=_programmes(tmp_path_factory)))
    # capability tests off: their days would treble the run (tests/sim/test_metrics.py)
    opts = RunOptions(event_days=1, history_days=8, max_devices=150, capability_test=False)
    scn = ROOT / "config/scenarios/zhuzhou-2025.toml"
    result = asyncio.run(run_season(settings, scn, opts))
    return result


def test_plan_goes_through_the_cached_scheduler_service(small_run) -> None:
    e = [e for e in small_run.events if len(e.index)][0]
    assert e.plan_path.startswith("scheduler (cached service"), e.plan_path


def test_fleet_above_partition_size_is_planned_partitioned_on_dask(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Above ``[scheduler] partition_size`` devices the plan is solved by owner partitions on a
    Dask LocalCluster (exchange ADMM), and the event still settles with balanced payouts."""
    import asyncio

    settings = Settings(bidding=BiddingSettings(programmes_dir=_programmes(tmp_path_factory)),
                        # a call dispatches only the owners in the offer (fewer than the
                        # 400 sampled devices): 10 keeps them above the partition size
                        scheduler=SchedulerSettings(partition_size=10))
    opts = RunOptions(event_days=1, history_days=8, max_devices=400, capability_test=False)
    scn = ROOT / "config/scenarios/zhuzhou-2025.toml"
    result = asyncio.run(run_season(settings, scn, opts))
    settled = [e for e in result.events if len(e.index)]
    assert len(settled) == 1, [e.notes for e in result.events]
    e = settled[0]
    assert e.plan_path.startswith("partitioned on Dask: "), e.plan_path
    assert int(e.plan_path.split()[3]) >= 2, e.plan_path
    assert e.setpoints_written > 0 and e.balanced
    assert e.delivered_kw > 0


def test_owner_partitions_keep_owners_whole() -> None:
    from vpp.scheduler.partition import owner_partitions

    owners = ["a", "b", "a", "c", "c", "c", "d", "b"]
    parts = owner_partitions(owners, 3)
    assert sorted(i for p in parts for i in p) == list(range(len(owners)))
    for o in set(owners):
        assert sum(any(owners[i] == o for i in p) for p in parts) == 1
    assert all(len(p) <= 3 for p in parts)


def test_one_event_day_is_settled(small_run) -> None:
    settled = [e for e in small_run.events if len(e.index)]
    assert len(settled) == 1, [e.notes for e in small_run.events]
    e = settled[0]
    assert e.declared_kw > 0
    assert len(e.index) == int(e.call.hours * 4)
    assert e.setpoints_written > 0


def test_delivered_is_baseline_minus_metered(small_run) -> None:
    e = [e for e in small_run.events if len(e.index)][0]
    integral_kwh = float(np.sum(e.baseline_kw - e.metered_kw)) * 0.25
    # the settlement's own integer-Wh response is baseline minus metered, less the export of
    # owners metering below zero (batteries alone behind their meter: hunan-2026 does not count
    # export; tests/bidding/test_export_rule.py checks the rule exactly)
    assert e.settled_response_kwh <= integral_kwh + 0.001 * len(e.index) * 150
    assert e.delivered_kw == pytest.approx(integral_kwh / e.call.hours)
    # the metered line is the fleet's revenue meters over the window
    fleet_kw = small_run.fleet_load_mw.loc[e.call.start:e.call.end - timedelta(minutes=15)] * 1000
    assert np.all(e.metered_kw <= fleet_kw.to_numpy() + 1e-6)


def test_each_settled_call_is_measured_against_its_twin(small_run) -> None:
    e = [e for e in small_run.events if len(e.index)][0]
    m = e.measures
    assert m is not None and e.season == "summer"
    assert m.uncapped_offer_kw >= e.declared_kw
    assert m.credited_kw <= e.band_upper_pct / 100 * e.declared_kw + 1e-6
    # twin - metered plus baseline - twin is baseline - metered: the settled response
    assert m.physical_kw + m.baseline_error_kw == pytest.approx(e.delivered_kw, abs=1.0)
    assert m.tail_intervals == 8 and np.isfinite(m.rebound_peak_kw)


def test_payouts_balance(small_run) -> None:
    for e in small_run.events:
        assert e.balanced
        assert e.payouts_total_fen + e.fee_fen == e.revenue_fen - e.penalty_fen


def test_report_is_written(small_run, tmp_path: Path) -> None:
    page = write_report(small_run, tmp_path)
    text = page.read_text()
    assert "Headline" in text and "5% goal" in text
    for png in ("events.png", "performance.png", "season.png", "measures.png"):
        assert (tmp_path / png).stat().st_size > 1000
    assert "The plan's question, by season" in text and "uncapped offer MW, P10" in text
    summary = json.loads((tmp_path / "summary.json").read_text())
    summer = summary["by_season"]["summer"]
    assert summer["calls"] == 1 and summer["uncapped_offer_mw_median"] is not None
    assert summary["calls_by_direction"] == {"peak_shaving": 1, "valley_filling": 0,
                                             "capability_tests": 0}
    assert summary["valley_filling"]["calls"] == 0 and "## Valley filling" not in text
    assert summary["events"][0]["measures"]["tail_intervals"] == 8
    cap = summary["capacity_payments"]
    assert len(cap) == 1 and cap[0]["owners_fen"] + cap[0]["fee_fen"] == cap[0]["total_fen"]
    assert "Monthly capacity payments" in text


def _event(delivered_kw: float, declared_kw: float, revenue: int, fee: int) -> EventOutcome:
    start = datetime(2025, 7, 2, 20, tzinfo=TZ)
    call = GridCall("x", "day_ahead", "peak_shaving", "p", start - timedelta(hours=27), start,
                    start + timedelta(hours=1), 125_000.0, "")
    idx = pd.date_range(start, periods=4, freq="15min")
    return EventOutcome(
        call=call, declared_kw=declared_kw, price_yuan_per_kwh="1.5",
        available_flex_kw=2 * declared_kw, index=idx, baseline_kw=np.full(4, 1000.0 + delivered_kw),
        metered_kw=np.full(4, 1000.0), band_lower_pct=50, band_upper_pct=120,
        revenue_fen=revenue, penalty_fen=0, fee_fen=fee, payouts_fen={"a": revenue - fee},
        baseline_error_pct=None, comfort_violations=0, soc_violations=0,
    )


def test_headline_arithmetic() -> None:
    ev = [_event(100_000, 120_000, 1000, 150), _event(150_000, 130_000, 2000, 300),
          _event(125_000, 125_000, 500, 75)]
    h = headline(ev, system_peak_mw=2500.0, goal_pct=5.0)
    assert h.delivered_mw == pytest.approx(125.0)
    assert h.delivered_pct == pytest.approx(5.0)
    assert h.capability_mw == pytest.approx(125.0)  # median declared
    assert h.goal_mw == pytest.approx(125.0)
    assert h.meets_goal
    assert h.payouts_yuan + h.fee_yuan == pytest.approx(h.revenue_yuan - h.penalty_yuan)
    assert not headline(ev[:1], 2500.0, 5.0).meets_goal
    assert headline([], 2500.0, 5.0).events == 0


def test_cli_refuses_bad_scale_and_unknown_scenario(monkeypatch, capsys) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["simulate", "--scale", "galactic"]) == 2
    assert "unknown scale 'galactic'" in capsys.readouterr().err
    assert main(["simulate", "--scenario", "atlantis"]) == 2
    assert "scenario file not found" in capsys.readouterr().err


def test_needed_days_cover_each_calls_baseline() -> None:
    from sim.scenarios.city import is_working_day
    from sim.season_days import needed_days

    start = datetime(2025, 7, 9, 20, tzinfo=TZ)
    calls = [GridCall(f"c{k}", "day_ahead", "peak_shaving", "p", start, start + timedelta(days=k),
                      start + timedelta(days=k, hours=2), 1.0, "") for k in range(3)]
    need = needed_days(calls)
    events = {c.day for c in calls}
    for c in calls:
        before = sorted((d for d in need if d < c.day and d not in events), reverse=True)
        assert sum(is_working_day(d) for d in before) >= 5
        assert sum(not is_working_day(d) for d in before) >= 3
        assert all(c.day - timedelta(days=k) in need for k in range(8))
    assert max(need) == max(events)


def test_needed_days_give_a_baseline_at_the_invitation() -> None:
    """The days selected for a call must give its similar-days baseline *when the call is
    issued*, from the call's own run of consecutive days (the full season runs each run in its
    own process). A day-ahead call on 2026-01-05 is issued on 2026-01-04 at 17:00, before that
    (adjusted working) day's 18:00-20:00 window is metered: counting 2026-01-04 left 4 of the 5
    working days after the New Year holiday and every owner without a baseline ("no owner can
    offer any capacity" in the season run)."""
    from forecasting.baselines import BaselineSpec, compute_baseline
    from forecasting.calendars import ChineseCalendar
    from sim.grid import DAY_AHEAD_ISSUE_TIME
    from sim.season_days import blocks, needed_days

    def da(day: datetime) -> GridCall:
        start = day.replace(hour=18)
        issued = datetime.combine((day - timedelta(days=1)).date(), DAY_AHEAD_ISSUE_TIME, TZ)
        return GridCall(f"da-{day:%m%d}", "day_ahead", "peak_shaving", "p", issued, start,
                        start + timedelta(hours=2), 1.0, "")

    rt_start = datetime(2025, 12, 23, 18, tzinfo=TZ)
    calls = [GridCall("rt-1223", "real_time", "peak_shaving", "p",
                      rt_start - timedelta(minutes=30), rt_start, rt_start + timedelta(hours=1),
                      1.0, ""),
             da(datetime(2026, 1, 5, tzinfo=TZ)), da(datetime(2026, 1, 6, tzinfo=TZ))]
    need = sorted(needed_days(calls))
    events = {c.day for c in calls}
    spec = BaselineSpec(method="similar_days", n_working_days=5, n_nonworking_days=3)
    for c in calls:
        block = next(b for b in blocks(need) if c.day in b)
        index = pd.date_range(pd.Timestamp(block[0], tz=TZ), c.issued_at, freq="15min",
                              inclusive="left")  # what is metered at the invitation
        load = pd.Series(100.0, index=index)
        res = compute_baseline(load, c.start, c.end, spec,
                               event_days=[d for d in events if d < c.day],
                               interval_minutes=15, calendar=ChineseCalendar())
        assert len(res.days_used) == 5, c.external_id


def test_device_history_holds_every_baseline_day_after_a_run_of_calls() -> None:
    """The per-device meter history (the ring behind the envelope and the dispatch baseline) must
    hold every day the owner's baseline uses. Calls on 2026-01-05..09 push 2026-01-12's fifth
    baseline working day back to 2025-12-26 (17 days): a 16-day ring dropped it, and the device
    baselines of every owner were the mean of 4 of its 5 days (-3.8 MW on the city fleet)."""
    from forecasting.baselines import BaselineSpec, compute_baseline
    from forecasting.calendars import ChineseCalendar
    from forecasting.device_baselines import OwnerDays, device_plan_baselines
    from sim.grid import DAY_AHEAD_ISSUE_TIME
    from sim.metering import MeterStore
    from sim.season_days import device_history_days, needed_days

    def da(day: datetime) -> GridCall:
        start = day.replace(hour=18)
        issued = datetime.combine((day - timedelta(days=1)).date(), DAY_AHEAD_ISSUE_TIME, TZ)
        return GridCall(f"da-{day:%m%d}", "day_ahead", "peak_shaving", "p", issued, start,
                        start + timedelta(hours=2), 1.0, "")

    calls = [da(datetime(2026, 1, d, tzinfo=TZ)) for d in (5, 6, 7, 8, 9, 12)]
    days = sorted(needed_days(calls))
    index = pd.date_range(pd.Timestamp(days[0], tz=TZ),
                          pd.Timestamp(days[-1] + timedelta(days=1), tz=TZ), freq="15min",
                          inclusive="left")
    index = index[np.isin(index.date, np.asarray(days))]
    meter = MeterStore(index, [0], 1, history_days=device_history_days(calls))
    spec = BaselineSpec(method="similar_days", n_working_days=5, n_nonworking_days=3)
    events = {c.day for c in calls}
    for pos, ts in enumerate(index):  # a load that differs from day to day
        if ts >= pd.Timestamp(calls[-1].start):
            break
        meter.record(pos, np.array([float(ts.date().toordinal() % 97)]))
    c = calls[-1]
    load = meter.owner_series(0, pd.Timestamp(c.issued_at))
    res = compute_baseline(load.reindex(pd.date_range(load.index[0], load.index[-1],
                                                      freq="15min")),
                           c.start, c.end, spec, event_days=[d for d in events if d < c.day],
                           interval_minutes=15, calendar=ChineseCalendar())
    assert min(res.days_used) == datetime(2025, 12, 26).date()
    # the device rows of the plan (the daemon's rule) over the call, from the same days
    plan = device_plan_baselines([0], OwnerDays({0: res.days_used}, {}), meter.device_load_at,
                                 res.baseline_kw.index, "similar_days", np.array([np.nan]),
                                 ["last_reading"])
    assert plan.methods == ["similar_days"]
    np.testing.assert_allclose(plan.kw[0], res.baseline_kw.to_numpy())


def test_a_suspended_vpp_bids_no_more_in_the_season(tmp_path: Path) -> None:
    """The season reads the performance record as the daemon's intake does: with the paid
    band's floor at 100% (the first call falls short of it) and a suspension at the first
    failure, the second call is not bid, and says why."""
    import asyncio

    pdir = _programmes_at(tmp_path, {"lower_pct = 50": "lower_pct = 100",
                                     "suspend_after_failures = 3": "suspend_after_failures = 1"})
    settings = Settings(bidding=BiddingSettings(programmes_dir=pdir))
    opts = RunOptions(event_days=2, history_days=8, max_devices=150, capability_test=False)
    result = asyncio.run(run_season(settings, ROOT / "config/scenarios/zhuzhou-2025.toml", opts))
    first, second = result.events[:2]
    assert first.delivered_kw < first.declared_kw  # failed: below the 100% floor
    assert second.notes and second.notes[0].startswith("no bid: the VPP is suspended"), \
        second.notes


def test_the_months_capacity_payment(small_run) -> None:
    """The season computes the month's capacity payment from its settled calls through the
    daemon's function (bidding.capacity.programme_month_payment): to the fen."""
    from fractions import Fraction

    from bidding.money import yuan_to_fen

    settled = [e for e in small_run.events if e.capacity is not None]
    assert len(settled) == 1 and len(small_run.capacity) == 1
    c, e = small_run.capacity[0], settled[0]
    assert c.month == f"{e.call.start:%Y-%m}" and c.event_ids == (e.capacity.event_id,)
    assert c.credit_kw == e.capacity.effective_kw > 0
    assert c.total_fen == yuan_to_fen(c.credit_kw * Fraction("0.3"))
    assert c.owners_fen + c.fee_fen == c.total_fen and c.owners_fen > 0


def test_a_month_spanning_two_runs_of_days_is_paid_once(small_run) -> None:
    """The benchmark merges runs of days, each numbering its calls from 1; a month both runs
    hold gets one capacity payment over all its calls (it got one per run: the city season
    of 2026-12-08 paid 2025-08 twice)."""
    import copy

    from sim.aggregator import with_capacity
    from sim.results import merge_results

    settings = Settings(bidding=BiddingSettings(programmes_dir=ROOT / "config/programmes"))
    runs = [copy.deepcopy(small_run), copy.deepcopy(small_run)]  # two runs, one month
    merged = with_capacity(merge_results(runs), settings.bidding)
    months = [(c.programme, c.month) for c in merged.capacity]
    assert len(months) == len(set(months)) == 1, months
    assert merged.capacity[0].event_ids == (1, 2)
    again = with_capacity(merged, settings.bidding)  # made anew, not appended
    assert [c.month for c in again.capacity] == [c.month for c in merged.capacity]
