"""The market calendar: interval, zone, working days and seasons from one object."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bidding.programme import load_programme
from sim.scenarios.scenario import load_scenario
from vpp.calendar import SEASONS, ChineseCalendar, MarketCalendar, SeasonMonths, WeekendCalendar
from vpp.config import Settings
from vpp.errors import ValidationError

REPO = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_from_settings_takes_interval_zone_and_working_days() -> None:
    s = Settings(service={"market_interval_minutes": 30, "timezone": "Europe/Berlin"},
                 forecasting={"calendar": "weekend"})
    cal = MarketCalendar.from_settings(s)
    assert cal.interval_minutes == 30 and cal.step == timedelta(minutes=30)
    assert cal.zone == ZoneInfo("Europe/Berlin")
    assert isinstance(cal.workdays, WeekendCalendar)
    assert cal.intervals_per_day == 48 and cal.pandas_freq == "30min"
    assert cal.seasons == SeasonMonths()
    china = MarketCalendar.from_settings(Settings())
    assert isinstance(china.workdays, ChineseCalendar) and china.interval_minutes == 15


def test_from_programme_and_scenario_take_what_they_own() -> None:
    p = load_programme("hunan-2026", REPO / "config" / "programmes", date(2026, 7, 1))
    cal = MarketCalendar.from_programme(p, WeekendCalendar())
    assert cal.interval_minutes == p.interval_minutes and cal.zone == ZoneInfo(p.timezone)
    scn = load_scenario("zhuzhou-2025", REPO / "config" / "scenarios")
    sc = MarketCalendar.from_scenario(scn)
    assert sc.interval_minutes == scn.scenario.interval_minutes
    assert sc.zone == ZoneInfo(scn.scenario.timezone)
    assert isinstance(sc.workdays, ChineseCalendar)


def test_working_days_follow_the_chinese_holidays() -> None:
    cal = MarketCalendar(15, SHANGHAI, ChineseCalendar())
    assert not cal.is_workday(date(2025, 10, 1))  # National Day, a Wednesday
    assert cal.is_workday(date(2025, 9, 28))  # a Sunday worked to bridge it
    assert cal.is_workday(date(2025, 7, 15))


def test_seasons_have_one_definition() -> None:
    cal = MarketCalendar(15, SHANGHAI, ChineseCalendar())
    by_month = {m: cal.season_of(date(2025, m, 1)) for m in range(1, 13)}
    assert [m for m, s in by_month.items() if s == "summer"] == [6, 7, 8, 9]
    assert [m for m, s in by_month.items() if s == "winter"] == [1, 2, 12]
    assert set(by_month.values()) == set(SEASONS)
    # a datetime is taken in the market's zone: 1 June 00:30 in Shanghai is 31 May in UTC
    assert cal.season_of(datetime(2025, 5, 31, 16, 30, tzinfo=UTC)) == "summer"
    assert cal.is_summer(date(2025, 6, 1)) and not cal.is_summer(date(2025, 5, 31))


def test_a_programme_or_scenario_may_declare_other_seasons_as_data() -> None:
    hot = SeasonMonths(spring=(3, 4), summer=(5, 6, 7, 8, 9, 10), autumn=(11,), winter=(12, 1, 2))
    cal = MarketCalendar(15, SHANGHAI, ChineseCalendar(), hot)
    assert cal.is_summer(date(2025, 10, 3))


@pytest.mark.parametrize("months", [
    {"summer": (6, 7, 8)},  # September in no season
    {"autumn": (9, 10, 11)},  # September in two
    {"winter": (12, 1, 2, 13)},
])
def test_seasons_must_partition_the_year(months: dict[str, tuple[int, ...]]) -> None:
    with pytest.raises(ValidationError, match="each month 1-12 exactly once"):
        SeasonMonths(**months)  # type: ignore[arg-type]


@pytest.mark.parametrize("minutes", [0, 7, 45, 90])
def test_the_interval_divides_an_hour(minutes: int) -> None:
    with pytest.raises(ValidationError, match="must divide an hour"):
        MarketCalendar(minutes, SHANGHAI, ChineseCalendar())


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(UTC)),
       st.sampled_from([1, 5, 15, 30, 60]))
def test_floor_is_the_interval_start_in_the_market_zone(ts: datetime, minutes: int) -> None:
    cal = MarketCalendar(minutes, SHANGHAI, ChineseCalendar())
    f = cal.floor(ts)
    assert f.tzinfo == SHANGHAI and f <= ts < f + cal.step
    assert f.minute % minutes == 0 and f.second == 0 and f.microsecond == 0
    assert cal.on_grid(f) and cal.floor(f) == f


def test_floor_refuses_naive_timestamps() -> None:
    cal = MarketCalendar(15, SHANGHAI, ChineseCalendar())
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.floor(datetime(2025, 7, 1, 12, 7))


def test_intervals_round_up() -> None:
    cal = MarketCalendar(15, SHANGHAI, ChineseCalendar())
    assert [cal.intervals(m) for m in (0, 1, 15, 16, 240)] == [0, 1, 1, 2, 16]
