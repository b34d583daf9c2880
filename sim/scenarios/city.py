"""The city around the fleet: daily weather, hourly temperature and the system load curve.

Pure functions of the scenario and a seeded ``numpy.random.Generator``. Temperatures in degC,
load in MW, indexes aware (the scenario's time zone). The daily peak follows the day's
temperature and is calibrated so that the hottest day of the simulated summer reaches the
extrapolated system peak exactly (see ``[city]`` in the scenario file for the assumptions).

Seasons and working days are the scenario's market calendar's
(:meth:`vpp.calendar.MarketCalendar.from_scenario`): the city's load model has two regimes,
summer (the calendar's summer months: the summer shape, peak and temperature sensitivity) and
the rest of the year (the winter ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd

from sim.scenarios.scenario import Scenario
from vpp.calendar import ChineseCalendar, MarketCalendar

_WORKDAYS = ChineseCalendar()


def is_working_day(day: date) -> bool:
    """Chinese working day (statutory holidays and adjusted working weekends via chinesecalendar
    when it knows the year; plain Monday-Friday otherwise): the working days of every
    scenario's calendar (:meth:`MarketCalendar.from_scenario`)."""
    return bool(_WORKDAYS.is_workday([day])[0])


def season_days(scn: Scenario) -> list[date]:
    """Every day simulated: each period with its ``history_days`` before it, in order, unique."""
    days: set[date] = set()
    for a, b in scn.season.periods:
        d = a - timedelta(days=scn.season.history_days)
        while d <= b:
            days.add(d)
            d += timedelta(days=1)
    return sorted(days)


def simulate_weather(scn: Scenario, days: Sequence[date], rng: np.random.Generator) -> pd.DataFrame:
    """Daily max/min temperature and the day-ahead forecast of the max, per day (index: date).

    Monthly normal + an AR(1) anomaly shared by max and min (heat waves last several days); the
    forecast adds an independent error. Months missing from ``normals_c`` are an error.
    """
    w = scn.weather
    phi, sd = w.anomaly_autocorr, w.anomaly_sd_c
    innov = sd * np.sqrt(1 - phi**2)
    rows = []
    anomaly = 0.0
    prev: date | None = None
    for d in days:
        if d.month not in w.normals_c:
            raise ValueError(f"weather normals have no month {d.month} (needed for {d})")
        if prev is None or (d - prev).days > 1:
            anomaly = rng.normal(0.0, sd)
        else:
            anomaly = phi * anomaly + rng.normal(0.0, innov)
        prev = d
        tmax_n, tmin_n = w.normals_c[d.month]
        tmax = tmax_n + anomaly
        tmin = tmin_n + 0.8 * anomaly
        rows.append((d, tmax, tmin, tmax + rng.normal(0.0, w.forecast_error_sd_c),
                     tmin + rng.normal(0.0, w.forecast_error_sd_c)))
    df = pd.DataFrame(rows, columns=["day", "tmax_c", "tmin_c", "tmax_forecast_c",
                                     "tmin_forecast_c"]).set_index("day")
    return df


def interval_index(days: Sequence[date], tz: str, interval_minutes: int) -> pd.DatetimeIndex:
    """All market intervals of the given days (local time, aware)."""
    parts = [
        pd.date_range(pd.Timestamp(d, tz=tz), periods=24 * 60 // interval_minutes,
                      freq=f"{interval_minutes}min")
        for d in days
    ]
    return parts[0].append(parts[1:]) if len(parts) > 1 else parts[0]


def hourly_temperature(weather: pd.DataFrame, index: pd.DatetimeIndex) -> pd.Series:
    """Outdoor temperature at each timestamp: a cosine between the day's min (05:00) and max
    (15:00), the usual diurnal shape (degC)."""
    days = index.date
    tmax = weather["tmax_c"].reindex(days).to_numpy()
    tmin = weather["tmin_c"].reindex(days).to_numpy()
    hour = index.hour.to_numpy() + index.minute.to_numpy() / 60.0
    # 1 at 15:00, 0 at 05:00 (rising 05-15, falling 15-05 next day)
    rising = (hour >= 5) & (hour <= 15)
    frac = np.where(rising, (hour - 5) / 10.0, 1.0 - ((hour - 15) % 24) / 14.0)
    shape = 0.5 - 0.5 * np.cos(np.pi * frac)
    return pd.Series(tmin + (tmax - tmin) * shape, index=index, name="temp_c")


def daily_peak_mw(scn: Scenario, weather: pd.DataFrame, *, forecast: bool = False) -> pd.Series:
    """Each day's system peak (MW): temperature-driven, hottest summer day = the system peak."""
    c = scn.city
    peak = c.system_peak_mw
    tmax = weather["tmax_forecast_c" if forecast else "tmax_c"]
    tmin = weather["tmin_forecast_c" if forecast else "tmin_c"]
    cal = MarketCalendar.from_scenario(scn)
    summer = np.array([cal.is_summer(d) for d in weather.index])
    # calibrate on actual weather so the forecast and the actual share one reference
    ref_hot = weather["tmax_c"][summer].max() if summer.any() else 0.0
    ref_cold = weather["tmin_c"][~summer].min() if (~summer).any() else 0.0
    out = np.where(
        summer,
        peak * (1 - c.summer_sensitivity_pct_per_c / 100 * (ref_hot - tmax)),
        peak * c.winter_peak_ratio * (1 - c.winter_sensitivity_pct_per_c / 100 * (tmin - ref_cold)),
    )
    work = np.array([cal.is_workday(d) for d in weather.index])
    out = np.where(work, out, out * c.weekend_factor)
    return pd.Series(np.clip(out, 0.5 * peak, None), index=weather.index, name="peak_mw")


def seasonal_peak_mw(scn: Scenario, day: date, calendar: MarketCalendar) -> float:
    """The reference peak of the day's season in ``calendar`` (the scenario's): the system peak
    in summer, x winter ratio the rest of the year."""
    c = scn.city
    return c.system_peak_mw if calendar.is_summer(day) else c.system_peak_mw * c.winter_peak_ratio


def city_load_mw(scn: Scenario, weather: pd.DataFrame, index: pd.DatetimeIndex) -> pd.Series:
    """The system load at each timestamp (MW): the season's hourly shape (interpolated) times the
    day's peak."""
    peaks = daily_peak_mw(scn, weather).reindex(index.date).to_numpy()
    hour = index.hour.to_numpy() + index.minute.to_numpy() / 60.0
    cal = MarketCalendar.from_scenario(scn)
    summer = np.array([cal.is_summer(d) for d in index.date])
    grid = np.arange(25)
    s_shape = np.interp(hour, grid, scn.city.summer_shape_pu + scn.city.summer_shape_pu[:1])
    w_shape = np.interp(hour, grid, scn.city.winter_shape_pu + scn.city.winter_shape_pu[:1])
    shape = np.where(summer, s_shape, w_shape)
    return pd.Series(peaks * shape, index=index, name="city_load_mw")
