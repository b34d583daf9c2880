"""Baseline methods against hand-computed examples around China's National Day 2024.

Calendar facts used (State Council notice for 2024): 1-7 October are holidays; Sunday 29
September and Saturday 12 October are adjusted working days. The load is hand-made so that every
expected value can be worked out on paper: on day ``d`` at interval ``s`` (0-95) it is
``base(d) + 0.1 * s`` kW with ``base(d) = 100 + days since 1 September``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.baselines import BaselineSpec, compute_baseline
from forecasting.calendars import ChineseCalendar, ExplicitCalendar
from vpp.errors import ValidationError

CHINA = ChineseCalendar()  # the calendar facts above

SH = ZoneInfo("Asia/Shanghai")


def base(d: date) -> float:
    return 100.0 + (d - date(2024, 9, 1)).days


def make_load(overrides: dict[date, float] | None = None) -> pd.Series:
    idx = pd.date_range("2024-08-20", "2024-10-21", freq="15min", tz=SH, inclusive="left")
    days = idx.date
    b = np.array([base(d) for d in days])
    for d, v in (overrides or {}).items():
        b[days == d] = v
    slot = (idx.hour * 4 + idx.minute // 15).to_numpy()
    return pd.Series(b + 0.1 * slot, index=idx)


def window(day: date, h0: int = 14, h1: int = 16) -> tuple[datetime, datetime]:
    return (datetime(day.year, day.month, day.day, h0, tzinfo=SH),
            datetime(day.year, day.month, day.day, h1, tzinfo=SH))


TUE = date(2024, 10, 15)
SAT = date(2024, 10, 19)
EVENTS = [date(2024, 10, 10)]
ABNORMAL = [date(2024, 10, 9)]


def test_similar_days_working_day_skips_holidays_events_and_abnormal_days() -> None:
    load = make_load({date(2024, 10, 11): 90.0})
    r = compute_baseline(load, *window(TUE), BaselineSpec(method="similar_days"), EVENTS, ABNORMAL, interval_minutes=15, calendar=CHINA)
    # walking back from Mon 14 Oct: 14 ok, 13 Sun no, 12 Sat adjusted working day ok, 11 ok,
    # 10 event, 9 abnormal, 8 ok, 7..1 National Day (5 and 6 are a weekend), 30 Sep ok
    assert r.days_used == [date(2024, 9, 30), date(2024, 10, 8), date(2024, 10, 11),
                           date(2024, 10, 12), date(2024, 10, 14)]
    assert r.excluded[date(2024, 10, 10)] == "event day"
    assert r.excluded[date(2024, 10, 9)] == "abnormal day"
    assert r.excluded[date(2024, 10, 13)].startswith("non-working day")
    assert r.excluded[date(2024, 10, 7)].startswith("public holiday")
    assert r.excluded[date(2024, 10, 5)].startswith("non-working day")
    assert len(r.excluded) == 10
    # (129 + 137 + 90 + 141 + 143) / 5 = 128, plus 0.1 kW per interval of the day
    assert len(r.baseline_kw) == 8
    assert r.baseline_kw.index[0] == pd.Timestamp("2024-10-15 14:00", tz=SH)
    np.testing.assert_allclose(r.baseline_kw.to_numpy(), 128.0 + 0.1 * np.arange(56, 64))
    assert r.adjustment_kw is None
    assert "2024-10-12" in r.explanation


def test_similar_days_non_working_day_uses_three_non_working_days() -> None:
    r = compute_baseline(make_load(), *window(SAT), BaselineSpec(method="similar_days"), interval_minutes=15, calendar=CHINA)
    # Sun 13 Oct, then Sat 12 (worked: skipped), back to the holidays 7 and 6 Oct
    assert r.days_used == [date(2024, 10, 6), date(2024, 10, 7), date(2024, 10, 13)]
    assert r.excluded[date(2024, 10, 12)].startswith("adjusted working day")
    assert r.excluded[date(2024, 10, 18)].startswith("working day")
    np.testing.assert_allclose(r.baseline_kw.iloc[0], (135 + 136 + 142) / 3 + 5.6)


def test_high_4_of_5_drops_the_lowest_day() -> None:
    load = make_load({date(2024, 10, 11): 90.0})
    r = compute_baseline(load, *window(TUE), BaselineSpec(method="x_of_y", x=4, y=5),
                         EVENTS, ABNORMAL, interval_minutes=15, calendar=CHINA)
    assert r.days_used == [date(2024, 9, 30), date(2024, 10, 8), date(2024, 10, 12),
                           date(2024, 10, 14)]
    assert r.excluded[date(2024, 10, 11)].startswith("not among the 4 highest of 5")
    # (143 + 141 + 137 + 129) / 4 = 137.5
    np.testing.assert_allclose(r.baseline_kw.to_numpy(), 137.5 + 0.1 * np.arange(56, 64))


def test_10_of_10_averages_ten_most_recent_working_days() -> None:
    r = compute_baseline(make_load(), *window(TUE), BaselineSpec(method="x_of_y", x=10, y=10), interval_minutes=15, calendar=CHINA)
    expected = [date(2024, 9, 23), date(2024, 9, 24), date(2024, 9, 25), date(2024, 9, 26),
                date(2024, 9, 27), date(2024, 9, 29), date(2024, 9, 30), date(2024, 10, 8),
                date(2024, 10, 9), date(2024, 10, 10), date(2024, 10, 11), date(2024, 10, 12),
                date(2024, 10, 14)][-10:]
    assert r.days_used == expected
    assert date(2024, 9, 29) in r.days_used  # a Sunday, but an adjusted working day
    np.testing.assert_allclose(r.baseline_kw.iloc[0], np.mean([base(d) for d in expected]) + 5.6)


@pytest.mark.parametrize(("cap_pct", "adjustment"), [(20.0, 28.45), (100.0, 62.5)])
def test_day_of_adjustment_and_its_cap(cap_pct: float, adjustment: float) -> None:
    load = make_load({date(2024, 10, 11): 90.0, TUE: 200.0})
    spec = BaselineSpec(method="x_of_y", x=4, y=5, day_of_adjustment=True, adjustment_hours=2,
                        adjustment_gap_hours=1, adjustment_cap_pct=cap_pct)
    r = compute_baseline(load, *window(TUE), spec, EVENTS, ABNORMAL, interval_minutes=15, calendar=CHINA)
    # window 11:00-13:00 (slots 44-51, mean 4.75 kW of slope): event day 200 + 4.75, baseline
    # days 137.5 + 4.75, raw +62.5; the 20% cap is 0.2 * 142.25 = 28.45
    assert r.adjustment_kw == pytest.approx(adjustment)
    np.testing.assert_allclose(r.baseline_kw.iloc[0], 137.5 + 5.6 + adjustment)
    assert ("capped" in r.explanation) == (cap_pct == 20.0)


def test_downward_adjustment_is_capped_too() -> None:
    load = make_load({TUE: 50.0})
    spec = BaselineSpec(method="similar_days", day_of_adjustment=True, adjustment_cap_pct=10)
    r = compute_baseline(load, *window(TUE), spec, interval_minutes=15, calendar=CHINA)
    days = r.days_used
    mean_base = np.mean([base(d) for d in days]) + 4.75
    assert r.adjustment_kw == pytest.approx(-0.1 * mean_base)


def test_incomplete_day_is_skipped_and_next_one_taken() -> None:
    load = make_load()
    load[pd.Timestamp("2024-10-14 14:30", tz=SH)] = np.nan
    r = compute_baseline(load, *window(TUE), BaselineSpec(method="similar_days"), interval_minutes=15, calendar=CHINA)
    assert r.excluded[date(2024, 10, 14)] == "incomplete data"
    assert date(2024, 10, 9) in r.days_used


def test_not_enough_days_raises() -> None:
    load = make_load()
    spec = BaselineSpec(method="similar_days", lookback_days=10)
    # 10 days before Wed 9 Oct: 8 Oct, then seven holidays, then 30 and 29 (worked) September
    with pytest.raises(ValidationError, match="no baseline days available: found 3 of 5"):
        compute_baseline(load, *window(date(2024, 10, 9)), spec, interval_minutes=15, calendar=CHINA)


def test_missing_adjustment_window_raises() -> None:
    load = make_load()
    load[pd.Timestamp("2024-10-15 11:15", tz=SH)] = np.nan
    spec = BaselineSpec(method="similar_days", day_of_adjustment=True)
    with pytest.raises(ValidationError, match="day-of adjustment window"):
        compute_baseline(load, *window(TUE), spec, interval_minutes=15, calendar=CHINA)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (datetime(2024, 10, 15, 14), datetime(2024, 10, 15, 16), "timezone-aware"),
        (datetime(2024, 10, 15, 16, tzinfo=SH), datetime(2024, 10, 15, 14, tzinfo=SH), "not after"),
        (datetime(2024, 10, 15, 14, 5, tzinfo=SH), datetime(2024, 10, 15, 16, tzinfo=SH), "grid"),
        (datetime(2024, 10, 14, 14, tzinfo=SH), datetime(2024, 10, 15, 16, tzinfo=SH), "24 hours"),
    ],
)
def test_bad_windows(start: datetime, end: datetime, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        compute_baseline(make_load(), start, end, BaselineSpec(method="similar_days"), interval_minutes=15, calendar=CHINA)


def test_spec_is_strict() -> None:
    with pytest.raises(ValueError, match="x"):
        BaselineSpec(method="x_of_y", x=6, y=5)
    with pytest.raises(ValueError, match="extra"):
        BaselineSpec(method="similar_days", n_days=3)  # type: ignore[call-arg]


def test_window_in_another_zone_uses_the_data_zone_days() -> None:
    """An event given in UTC is matched on the data's local (Shanghai) days."""
    load = make_load({date(2024, 10, 11): 90.0})
    start = datetime(2024, 10, 15, 6, tzinfo=ZoneInfo("UTC"))  # 14:00 in Shanghai
    r = compute_baseline(load, start, start + timedelta(hours=2),
                         BaselineSpec(method="similar_days"), EVENTS, ABNORMAL, interval_minutes=15, calendar=CHINA)
    np.testing.assert_allclose(r.baseline_kw.iloc[0], 128.0 + 5.6)


def test_forecast_baseline_on_real_data(elec15: pd.DataFrame) -> None:
    """LightGBM baseline for a working day of the real Victorian data, event days left out."""
    load = elec15["load_kw"]
    cal = ExplicitCalendar.from_series(elec15["workday"])
    day = date(2014, 8, 12)
    tz = load.index.tz
    start = pd.Timestamp("2014-08-12 14:00").tz_localize(tz).to_pydatetime()
    events = [date(2014, 8, 5), date(2014, 8, 6)]
    r = compute_baseline(load, start, start + timedelta(hours=4),
                         BaselineSpec(method="forecast", lookback_days=28), events, (),
                         calendar=cal, temperature_c=elec15["temperature_c"], interval_minutes=15)
    assert len(r.baseline_kw) == 16
    assert set(events) <= set(r.excluded) and not set(events) & set(r.days_used)
    assert max(r.days_used) < day
    actual = load.reindex(r.baseline_kw.index)
    rel = float(np.abs(r.baseline_kw - actual).mean() / actual.mean())
    assert rel < 0.08, rel


@settings(max_examples=25, deadline=None)
@given(
    levels=st.lists(st.floats(10, 1000), min_size=62, max_size=62),
    event_level=st.floats(1, 2000),
    cap=st.floats(0, 100),
    method=st.sampled_from(["similar_days", "x_of_y"]),
)
def test_adjustment_never_exceeds_its_cap(levels: list[float], event_level: float, cap: float,
                                          method: str) -> None:
    """Whatever the load, the day-of adjustment stays within the cap, and without it the
    baseline is the plain average of the days it says it used."""
    days = pd.date_range("2024-08-20", periods=62, freq="D").date
    load = make_load(dict(zip(days, levels, strict=True)) | {TUE: event_level})
    spec = BaselineSpec(method=method, day_of_adjustment=True, adjustment_cap_pct=cap)  # type: ignore[arg-type]
    r = compute_baseline(load, *window(TUE), spec, interval_minutes=15, calendar=CHINA)
    base_adj = np.mean([dict(zip(days, levels, strict=True))[d] for d in r.days_used]) + 4.75
    assert r.adjustment_kw is not None
    assert abs(r.adjustment_kw) <= cap / 100 * base_adj + 1e-9
    plain = compute_baseline(load, *window(TUE), spec.model_copy(update={"day_of_adjustment": False}), interval_minutes=15, calendar=CHINA)
    np.testing.assert_allclose(r.baseline_kw - plain.baseline_kw, r.adjustment_kw, atol=1e-9)
    expected = np.mean([load.reindex(plain.baseline_kw.index - pd.Timedelta(days=(TUE - d).days))
                        .to_numpy() for d in plain.days_used], axis=0)
    np.testing.assert_allclose(plain.baseline_kw.to_numpy(), expected, atol=1e-9)
