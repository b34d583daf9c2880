"""Weather and the city load curve of the scenario."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.scenarios.city import (
    city_load_mw,
    hourly_temperature,
    interval_index,
    season_days,
    simulate_weather,
)
from sim.scenarios.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[3] / "config" / "scenarios"


@pytest.fixture(scope="module")
def scn():
    return load_scenario("zhuzhou-2025", SCENARIOS)


@pytest.fixture(scope="module")
def weather(scn):
    return simulate_weather(scn, season_days(scn), np.random.default_rng(3))


def test_weather_is_deterministic(scn, weather) -> None:
    again = simulate_weather(scn, season_days(scn), np.random.default_rng(3))
    assert weather.equals(again)
    assert (weather.tmax_c >= weather.tmin_c).all()


def test_summer_peak_reaches_the_system_peak_in_the_evening(scn, weather) -> None:
    days = [d for d in weather.index if d.month in (7, 8)]
    idx = interval_index(days, "Asia/Shanghai", 15)
    load = city_load_mw(scn, weather, idx)
    assert load.max() <= scn.city.system_peak_mw + 1e-6
    assert load.max() >= 0.94 * scn.city.system_peak_mw
    assert load.idxmax().hour in (20, 21)


def test_temperature_follows_the_day(weather) -> None:
    day = weather.index[40]
    idx = interval_index([day], "Asia/Shanghai", 15)
    t = hourly_temperature(weather, idx)
    assert t.max() == pytest.approx(weather.loc[day, "tmax_c"])
    assert t.idxmax().hour == 15
    assert t.min() >= weather.loc[day, "tmin_c"] - 1e-9
