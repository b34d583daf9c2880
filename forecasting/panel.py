"""A panel of load series on one day-aligned grid, and the features the models learn from.

Sites are rows of one ``float64`` matrix ``Y[n, t]`` (kW, NaN = missing) on a regular index
that starts at a local midnight and extends ``horizon`` steps past the data, so that feature
building is array indexing over all sites at once (no Python loop per site or per step).
"Day" lags are elapsed time (96 steps of 15 minutes); in zones without daylight saving (China)
that is the same wall-clock time.

Features for a forecast issued at origin position ``o`` for target ``t = o + h``: lead, calendar
of the target (Chinese holidays and adjusted working days via :mod:`forecasting.calendars`), the
load one and two weeks before the target, the most recent same-slot load before the origin, the
average of the last five days of the target's day type at the target's slot (the similar-days
idea), the last value and last-hour mean, and the temperature at the target when a weather
series is supplied. Loads are divided by the site's mean absolute load over the seven days
before the origin, so one global model serves sites of any size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.calendars import DayCalendar, calendar_features
from vpp.errors import ValidationError

CAL_COLUMNS = ["slot", "dow", "workday", "holiday", "adjusted_workday",
               "prev_workday", "next_workday", "doy_sin", "doy_cos"]
LOAD_COLUMNS = ["lead_h", "lag_week", "lag_2week", "lag_day", "similar_days", "last_value",
                "last_hour", "last_day", "last_hour_day_ago", "last_hour_week_ago", "log_scale"]
TEMP_COLUMNS = ["temp", "temp_3h_before", "temp_day_mean", "temp_day_max",
                "temp_prev_day_mean", "temp_lag_week", "temp_day_mean_lag_week", "temp_now"]
SIMILAR_DAYS = 5


@dataclass
class Panel:
    """Load matrix ``y_kw[n, t]`` with its index, calendar and optional temperature."""

    sites: list[str]
    y_kw: np.ndarray
    index: pd.DatetimeIndex
    cal: np.ndarray  # (T, len(CAL_COLUMNS)) float32
    workday_by_day: np.ndarray  # (days,) bool
    temp_c: np.ndarray | None  # (T,) shared or (N, T)
    n_data: int  # positions < n_data hold data; the rest is the forecast horizon
    interval_minutes: int  # the grid's step (the market interval)

    @property
    def steps_per_day(self) -> int:
        return 1440 // self.interval_minutes


def build_panel(
    load_kw: pd.DataFrame,
    calendar: DayCalendar,
    *,
    temperature_c: pd.Series | None = None,
    horizon_steps: int = 192,
    interval_minutes: int,
) -> Panel:
    """Put ``load_kw`` (aware index on the ``interval_minutes`` grid, columns = sites) on a day
    grid."""
    idx = load_kw.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
        raise ValidationError("load needs a timezone-aware DatetimeIndex")
    if len(idx) == 0:
        raise ValidationError("load series is empty")
    step = pd.Timedelta(minutes=interval_minutes)
    start = idx[0].normalize()
    if ((idx - start) % step != pd.Timedelta(0)).any() or not idx.is_monotonic_increasing \
            or idx.has_duplicates:
        raise ValidationError(
            f"load index must be increasing, unique and on the {interval_minutes}-minute grid")
    n_data = int((idx[-1] - start) / step) + 1
    days = -(-(n_data + horizon_steps) // (1440 // interval_minutes))
    grid = pd.date_range(start, periods=days * (1440 // interval_minutes), freq=step)
    y = load_kw.reindex(grid).to_numpy(dtype=np.float64).T.copy()
    cal_df = calendar_features(grid, calendar, interval_minutes)
    day_starts = grid[:: 1440 // interval_minutes]
    workday = calendar.is_workday([d.date() for d in day_starts])
    temp = None
    if temperature_c is not None:
        temp = temperature_c.reindex(grid).to_numpy(dtype=np.float64)
    return Panel(
        sites=[str(c) for c in load_kw.columns], y_kw=y, index=grid,
        cal=cal_df[CAL_COLUMNS].to_numpy(np.float32), workday_by_day=workday, temp_c=temp,
        n_data=n_data, interval_minutes=interval_minutes,
    )


def feature_names(with_temperature: bool) -> list[str]:
    return CAL_COLUMNS + LOAD_COLUMNS + (TEMP_COLUMNS if with_temperature else [])


def _take(a: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``a[..., pos]`` with NaN where ``pos`` is outside ``a`` (a: (N, T))."""
    ok = (pos >= 0) & (pos < a.shape[-1])
    out = a[..., np.clip(pos, 0, a.shape[-1] - 1)]
    return np.where(ok, out, np.nan)


def _window_mean(cs: np.ndarray, cnt: np.ndarray, end: np.ndarray, width: int) -> np.ndarray:
    """Mean of the ``width`` values before positions ``end`` from nan-aware cumsums."""
    a = np.clip(end - width, 0, None)
    n = cnt[:, end] - cnt[:, a]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (cs[:, end] - cs[:, a]) / n, np.nan)


def similar_day_table(workday: np.ndarray, origin_days: np.ndarray, k: int) -> np.ndarray:
    """For each origin day and day type (0 non-working, 1 working): the last ``k`` days of that
    type strictly before it, most recent first, ``-1`` where history is too short."""
    out = np.full((len(origin_days), 2, k), -1, dtype=np.int64)
    for typ in (0, 1):
        days_of_type = np.flatnonzero(workday == bool(typ))
        # position of the first day of that type at or after each origin day
        pos = np.searchsorted(days_of_type, origin_days, side="left")
        for j in range(k):
            p = pos - 1 - j
            out[:, typ, j] = np.where(p >= 0, days_of_type[np.clip(p, 0, None)], -1)
    return out


def known_targets(panel: Panel, origins: np.ndarray, horizon_steps: int,
                  sites: slice | np.ndarray | None = None) -> np.ndarray:
    """Which rows of :func:`build_features` (same order, ``(origin, site, lead)``) have a
    finite scaled target: the load at the target known and the site's 7-day scale before the
    origin positive. The cheap part of the features alone, so that a fit can count (and draw)
    its training rows before it builds any."""
    s_per_day = panel.steps_per_day
    y = panel.y_kw if sites is None else panel.y_kw[sites]
    n_sites = y.shape[0]
    origins = np.asarray(origins, dtype=np.int64)
    finite = np.isfinite(y)
    cs = np.concatenate([np.zeros((n_sites, 1)), np.cumsum(np.where(finite, np.abs(y), 0), 1)], 1)
    cnt = np.concatenate([np.zeros((n_sites, 1)), np.cumsum(finite, 1)], 1)
    scale = _window_mean(cs, cnt, origins, 7 * s_per_day)  # (N, k)
    t = origins[:, None] + np.arange(horizon_steps)[None, :]  # (k, H)
    inside = (t >= 0) & (t < y.shape[-1])
    target = finite[:, np.clip(t, 0, y.shape[-1] - 1)] & inside  # (N, k, H), bool
    ok = target & (scale > 1e-9)[:, :, None]
    return ok.transpose(1, 0, 2).reshape(-1)


def build_features(
    panel: Panel, origins: np.ndarray, horizon_steps: int, sites: slice | np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature rows for every (origin, site, lead): returns ``(X, y_scaled, scale_kw)``.

    Row order is origin-major, then site, then lead: row ``(i * N + n) * H + h``. ``y_scaled``
    is the target divided by ``scale_kw`` (NaN where unknown).
    """
    s_per_day = panel.steps_per_day
    if horizon_steps > 7 * s_per_day:
        raise ValidationError("horizon longer than 7 days is not supported")
    y = panel.y_kw if sites is None else panel.y_kw[sites]
    n_sites = y.shape[0]
    origins = np.asarray(origins, dtype=np.int64)
    k = len(origins)
    leads = np.arange(horizon_steps)
    t = origins[:, None] + leads[None, :]  # (k, H)
    finite = np.isfinite(y)
    cs = np.concatenate([np.zeros((n_sites, 1)), np.cumsum(np.where(finite, np.abs(y), 0), 1)], 1)
    cs_signed = np.concatenate([np.zeros((n_sites, 1)), np.cumsum(np.where(finite, y, 0), 1)], 1)
    cnt = np.concatenate([np.zeros((n_sites, 1)), np.cumsum(finite, 1)], 1)
    scale = _window_mean(cs, cnt, origins, 7 * s_per_day)  # (N, k)
    scale = np.where(scale > 1e-9, scale, np.nan)[:, :, None]  # (N, k, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        lag_week = _take(y, t - 7 * s_per_day) / scale
        lag_2week = _take(y, t - 14 * s_per_day) / scale
        back = (leads // s_per_day + 1) * s_per_day
        lag_day = _take(y, t - back[None, :]) / scale
        last_value = _take(y, origins - 1)[:, :, None] / scale
        last_hour = _window_mean(cs_signed, cnt, origins, 60 // panel.interval_minutes)[:, :, None]
        last_hour = last_hour / scale
        last_day = _window_mean(cs_signed, cnt, origins, s_per_day)[:, :, None] / scale
        # the same last hour one day and one week earlier: the model's "day-of adjustment"
        hour = 60 // panel.interval_minutes
        day_ago = _window_mean(cs_signed, cnt, np.clip(origins - s_per_day, 0, None), hour)
        week_ago = _window_mean(cs_signed, cnt, np.clip(origins - 7 * s_per_day, 0, None), hour)
        last_hour_day_ago = day_ago[:, :, None] / scale
        last_hour_week_ago = week_ago[:, :, None] / scale
    # similar days: last SIMILAR_DAYS days of the target's type before the origin's day
    n_days = y.shape[1] // s_per_day
    yd = y[:, : n_days * s_per_day].reshape(n_sites, n_days, s_per_day)
    origin_day = origins // s_per_day
    uniq_days, inv = np.unique(origin_day, return_inverse=True)
    table = similar_day_table(panel.workday_by_day[:n_days], uniq_days, SIMILAR_DAYS)
    target_type = panel.workday_by_day[np.clip(t // s_per_day, 0, n_days - 1)].astype(np.int64)
    day_idx = table[inv[:, None], target_type]  # (k, H, SIMILAR_DAYS)
    slot = (t % s_per_day)[:, :, None]
    vals = yd[:, np.clip(day_idx, 0, None), np.broadcast_to(slot, day_idx.shape)]
    vals = np.where((day_idx >= 0)[None], vals, np.nan)
    ok = np.isfinite(vals)
    with np.errstate(invalid="ignore", divide="ignore"):
        similar = np.where(ok, vals, 0).sum(-1) / ok.sum(-1)
        similar = similar / scale
        log_scale = np.log10(np.broadcast_to(scale, (n_sites, k, horizon_steps)))
    target = _take(y, t)
    with np.errstate(invalid="ignore", divide="ignore"):
        target = target / scale
    cal = panel.cal[np.clip(t, 0, len(panel.index) - 1)]  # (k, H, C)
    shape = (k, n_sites, horizon_steps)

    def per_site(a: np.ndarray) -> np.ndarray:  # (N, k, H) -> (k, N, H)
        return np.broadcast_to(a, (n_sites, k, horizon_steps)).transpose(1, 0, 2)

    cols = [np.broadcast_to(cal[:, None, :, j], shape) for j in range(cal.shape[-1])]
    cols += [np.broadcast_to((leads * panel.interval_minutes / 60.0)[None, None, :], shape)]
    cols += [per_site(a) for a in (lag_week, lag_2week, lag_day, similar, last_value,
                                   last_hour, last_day, last_hour_day_ago, last_hour_week_ago,
                                   log_scale)]
    if panel.temp_c is not None:
        temp = panel.temp_c if panel.temp_c.ndim == 2 else panel.temp_c[None, :]
        if sites is not None and temp.shape[0] > 1:
            temp = temp[sites]
        td = temp[:, : n_days * s_per_day].reshape(temp.shape[0], n_days, s_per_day)
        with np.errstate(invalid="ignore"):
            okt = np.isfinite(td)
            day_mean = np.where(okt, td, 0).sum(-1) / np.maximum(okt.sum(-1), 1)
            day_mean = np.where(okt.any(-1), day_mean, np.nan)
            day_max = np.where(okt.any(-1), np.where(okt, td, -np.inf).max(-1), np.nan)
        tday = np.clip(t // s_per_day, 0, n_days - 1)
        tday_week = t // s_per_day - 7
        cols += [per_site(_take(temp, t)),
                 per_site(_take(temp, t - 3 * 60 // panel.interval_minutes)),
                 per_site(day_mean[:, tday]),
                 per_site(day_max[:, tday]),
                 per_site(_take(day_mean, t // s_per_day - 1)),
                 per_site(_take(temp, t - 7 * s_per_day)),
                 per_site(_take(day_mean, tday_week)),
                 per_site(_take(temp, origins - 1)[:, :, None])]
    x = np.empty((k * n_sites * horizon_steps, len(cols)), dtype=np.float32)
    for j, c in enumerate(cols):
        x[:, j] = c.reshape(-1)
    scale_rows = per_site(scale).reshape(-1)
    return x, per_site(target).reshape(-1), scale_rows
