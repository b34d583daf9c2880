"""Time-of-use tariff: tiling of the day, critical peaks, exact prices."""

from __future__ import annotations

import copy
from decimal import Decimal

import pandas as pd
import pytest

from bidding.tariff import parse_tariff
from vpp.errors import ConfigError, ValidationError

TZ = "Asia/Shanghai"


def test_prices_by_period_and_season(tariff_table):
    t = parse_tariff(tariff_table)
    idx = pd.DatetimeIndex(
        ["2025-07-15 03:00", "2025-07-15 08:00", "2025-07-15 12:00", "2025-07-15 20:15",
         "2025-07-15 22:45", "2025-07-15 23:00", "2025-04-15 20:15", "2025-12-03 18:30"]
    ).tz_localize(TZ)
    exact = list(t.price_series_decimal(idx))
    assert exact == [Decimal("0.248"), Decimal("0.62"), Decimal("0.992"), Decimal("1.1904"),
                     Decimal("0.992"), Decimal("0.248"), Decimal("0.992"), Decimal("1.1904")]
    assert list(t.period_series(idx)) == [
        "valley", "flat", "peak", "critical_peak", "peak", "valley", "peak", "critical_peak"]
    floats = t.price_series(idx)
    assert floats.iloc[3] == pytest.approx(1.1904)
    assert floats.index.equals(idx)


def test_utc_index_is_converted_to_local_time(tariff_table):
    t = parse_tariff(tariff_table)
    # 12:15 UTC is 20:15 in Shanghai, a July critical peak
    idx = pd.DatetimeIndex(["2025-07-15 12:15"]).tz_localize("UTC")
    assert t.price_series_decimal(idx).iloc[0] == Decimal("1.1904")


def test_overlapping_periods_are_rejected_with_the_clock_times(tariff_table):
    bad = copy.deepcopy(tariff_table)
    bad["windows"][1] = {"kind": "flat", "start": "07:00", "end": "12:00"}
    with pytest.raises(ConfigError, match="overlap at 11:00-12:00"):
        parse_tariff(bad, "hunan")


def test_gaps_are_rejected_with_the_clock_times(tariff_table):
    bad = copy.deepcopy(tariff_table)
    bad["windows"][3] = {"kind": "flat", "start": "15:00", "end": "18:00"}
    with pytest.raises(ConfigError, match="gaps at 14:00-15:00"):
        parse_tariff(bad, "hunan")


def test_wrapping_gap_and_bad_times(tariff_table):
    bad = copy.deepcopy(tariff_table)
    bad["windows"][0] = {"kind": "valley", "start": "00:00", "end": "07:00"}
    with pytest.raises(ConfigError, match="gaps at 23:00-24:00"):
        parse_tariff(bad)
    bad["windows"][0] = {"kind": "valley", "start": "23:00", "end": "25:00"}
    with pytest.raises(ConfigError, match="time out of range"):
        parse_tariff(bad)


def test_critical_peak_is_not_a_base_window_and_prices_are_complete(tariff_table):
    bad = copy.deepcopy(tariff_table)
    bad["windows"].append({"kind": "critical_peak", "start": "20:00", "end": "21:00"})
    with pytest.raises(ConfigError, match="critical_peak"):
        parse_tariff(bad)
    bad = copy.deepcopy(tariff_table)
    del bad["prices_yuan_per_kwh"]["valley"]
    with pytest.raises(ConfigError, match="lacks valley"):
        parse_tariff(bad)


def test_overlapping_critical_peaks_in_one_month(tariff_table):
    bad = copy.deepcopy(tariff_table)
    bad["critical_peak"].append({"months": [8], "start": "21:00", "end": "23:00"})
    with pytest.raises(ConfigError, match="month 8 at 21:00-22:00"):
        parse_tariff(bad)


def test_naive_index_is_refused(tariff_table):
    t = parse_tariff(tariff_table)
    with pytest.raises(ValidationError, match="timezone-aware"):
        t.price_series(pd.DatetimeIndex(["2025-07-15 12:00"]))
