"""Programme files: versions by effective date, Hunan and Hainan, checks on events, bad files."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bidding.programme import load_programme
from forecasting.baselines import BaselineSpec
from vpp.errors import ConfigError, NotFoundError, ValidationError

DIR = Path(__file__).resolve().parents[2] / "config" / "programmes"
SH = ZoneInfo("Asia/Shanghai")


def test_hunan_2026_rules_and_unverified_marks():
    p = load_programme("hunan-2026", DIR, date(2026, 7, 1))
    assert p.effective_from == date(2026, 1, 22) and p.effective_until is None
    assert p.rules.min_declared_kw == 10_000  # >= 10 MW adjustable
    assert p.rules.min_share_of_normal_load_pct == 10
    assert all(pr.min_duration_hours == 1.0 for pr in p.rules.products)
    assert p.tariff.unverified and "tariff" in p.rules.unverified and "band" in p.rules.unverified
    prices = p.tariff.prices_yuan_per_kwh
    # ratios 1.6 : 1 : 0.4
    assert prices["peak"] / prices["flat"] == Decimal("1.6")
    assert prices["valley"] / prices["flat"] == Decimal("0.4")
    da = p.product("day_ahead", "peak_shaving")
    assert isinstance(da.baseline, BaselineSpec) and da.baseline.method == "similar_days"
    assert p.product("real_time", "peak_shaving").baseline.day_of_adjustment


def test_version_in_force_is_picked_by_date():
    old = load_programme("hunan-2026", DIR, date(2025, 7, 15))
    assert old.effective_from == date(2025, 3, 14)
    assert old.effective_until == date(2026, 1, 22)
    with pytest.raises(ValidationError, match="no day_ahead/valley_filling product"):
        old.product("day_ahead", "valley_filling")
    with pytest.raises(NotFoundError, match="no version in force on 2024-01-01"):
        load_programme("hunan-2026", DIR, date(2024, 1, 1))


def test_another_province_is_only_data():
    p = load_programme("hainan-2025", DIR, date(2025, 8, 1))
    assert p.band.lower_pct == 60 and p.band.basis == "interval"
    assert p.product("real_time", "peak_shaving").price_cap_yuan_per_kwh == Decimal("2.0")
    assert p.product("day_ahead", "valley_filling").price_cap_yuan_per_kwh == Decimal("0.3")
    assert p.product("day_ahead", "peak_shaving").baseline.method == "x_of_y"


def test_event_checks():
    p = load_programme("hunan-2026", DIR, date(2026, 7, 1))
    s = datetime(2026, 7, 15, 19, 0, tzinfo=SH)
    assert p.check_event("day_ahead", "peak_shaving", s, s.replace(hour=21)).key == \
        "day_ahead/peak_shaving"
    with pytest.raises(ValidationError, match="below the minimum 1 h"):
        p.check_event("day_ahead", "peak_shaving", s, s.replace(minute=45))
    with pytest.raises(ValidationError, match="outside the day_ahead/peak_shaving windows"):
        p.check_event("day_ahead", "peak_shaving", s.replace(hour=6), s.replace(hour=8))
    with pytest.raises(ValidationError, match="not on 15-minute intervals"):
        p.check_event("day_ahead", "peak_shaving", s.replace(minute=5), s.replace(hour=21))
    with pytest.raises(ValidationError, match="notice of 2 h is shorter than 12 h"):
        p.check_event("day_ahead", "peak_shaving", s, s.replace(hour=21),
                      notified_at=s.replace(hour=17))


def test_unknown_programme_and_bad_files(tmp_path):
    with pytest.raises(NotFoundError, match="known: hainan-2025, hunan-2026"):
        load_programme("jiangsu", DIR, date(2026, 1, 1))
    shutil.copy(DIR / "hunan-2026.toml", tmp_path / "hunan-2026.toml")
    text = (tmp_path / "hunan-2026.toml").read_text()
    (tmp_path / "hunan-2026.toml").write_text(text.replace("lower_pct = 50", "lowr_pct = 50", 1))
    with pytest.raises(ConfigError, match=r"key versions\[0\]\.band\.lowr_pct: unknown key"):
        load_programme("hunan-2026", tmp_path, date(2026, 7, 1))
    (tmp_path / "hunan-2026.toml").write_text(
        text.replace('{ kind = "flat",   start = "07:00", end = "11:00" }',
                     '{ kind = "flat",   start = "07:00", end = "12:00" }', 1))
    with pytest.raises(ConfigError, match="overlap at 11:00-12:00"):
        load_programme("hunan-2026", tmp_path, date(2026, 7, 1))
    (tmp_path / "x.toml").write_text("name = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_programme("x", tmp_path, date(2026, 7, 1))


def test_event_start_is_a_local_date():
    # 05:00 on 2026-01-22 in Shanghai is still 2026-01-21 in UTC: the 2026 rules apply.
    start = datetime(2026, 1, 22, 5, 0, tzinfo=SH).astimezone(ZoneInfo("UTC"))
    assert load_programme("hunan-2026", DIR, start).effective_from == date(2026, 1, 22)


def test_notice_is_bounded_both_ways_and_never_reaches_back():
    from datetime import timedelta

    p = load_programme("hunan-2026", DIR, date(2026, 7, 1))
    s = datetime(2026, 7, 15, 19, 0, tzinfo=SH)
    rt = p.product("real_time", "peak_shaving")
    p.check_notice(rt, s, s - timedelta(minutes=30))  # 0.5 h: inside 0.25..4 h
    with pytest.raises(ValidationError, match="longer than the 4 h hunan-2026 allows"):
        p.check_notice(rt, s, s - timedelta(hours=5))
    da = p.product("day_ahead", "peak_shaving")
    p.check_notice(da, s, s - timedelta(hours=24))
    with pytest.raises(ValidationError, match="notice of 49 h is longer than the 48 h"):
        p.check_notice(da, s, s - timedelta(hours=49))
    # no minimum notice: the interval in progress may be called, an earlier one never
    no_min = rt.model_copy(update={"notice_min_hours": 0.0})
    p.check_notice(no_min, s, s + timedelta(minutes=14))
    with pytest.raises(ValidationError, match="before the 15-minute interval in progress"):
        p.check_notice(no_min, s, s + timedelta(minutes=15))
    assert all(pr.notice_max_hours for v in ("hunan-2026", "hainan-2025")
               for pr in load_programme(v, DIR, date(2025, 8, 1)).rules.products)


def test_windows_across_midnight():
    """A window that runs to 24:00 continues in the next day's window from 00:00 (a test bench's
    all-day programme took no event across midnight: the daemon's OpenADR test failed after
    23:00 local); a window that ends before midnight still refuses such an event."""
    p = load_programme("hunan-2026", DIR, date(2026, 7, 1))
    night = datetime(2026, 7, 15, 23, 30, tzinfo=SH)
    # valley windows 00:00-07:00 and 11:00-15:00: 23:30-00:30 starts outside them
    with pytest.raises(ValidationError, match="outside the day_ahead/valley_filling windows"):
        p.check_event("day_ahead", "valley_filling", night, night + timedelta(hours=1))
    p.rules.products[0].windows[:] = ["00:00-24:00"]
    key = p.rules.products[0].key
    kind, direction = key.split("/")
    assert p.check_event(kind, direction, night, night + timedelta(hours=1)).key == key
    p.rules.products[0].windows[:] = ["10:00-24:00"]
    with pytest.raises(ValidationError, match="outside"):
        p.check_event(kind, direction, night, night + timedelta(hours=1))
