"""Customer baselines (CBL): what a site would have drawn during an event without it.

Three methods, chosen per programme with :class:`BaselineSpec` (cross-team interface 2):

- ``similar_days`` (Chinese provincial rules, e.g. Jiangsu): the interval-by-interval average of
  the most recent ``n_working_days`` normal working days (or ``n_nonworking_days`` non-working
  days when the event falls on one) before the event day, within ``lookback_days``. Working days
  follow the Chinese calendar (public holidays are non-working, adjusted working weekends are
  working days). Event days, abnormal days, days of the other type and days with incomplete data
  are skipped, each with its reason.
- ``x_of_y`` (PJM "High 4 of 5", CAISO "10 of 10"): take the ``y`` most recent eligible days of
  the same type (the same rules as above), keep the ``x`` with the highest mean load over the
  event window, and average them.
- ``forecast``: the LightGBM model of :mod:`forecasting.models` trained on the history before
  the event day (event and abnormal days removed from its targets), forecasting from the event
  day's midnight.

Optional **day-of adjustment** (``similar_days`` and ``x_of_y``): an additive shift equal to the
event day's mean load minus the baseline days' mean load over the ``adjustment_hours`` that end
``adjustment_gap_hours`` before the event starts, capped at ``adjustment_cap_pct`` percent of the
baseline days' mean over that same window. It is reported as ``adjustment_kw``.

The event window must lie within 24 hours and on the interval grid; all days are local dates in
the zone of ``load_kw``'s index. Not enough eligible days raises
:class:`vpp.errors.ValidationError` ("no baseline days available: ...").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from forecasting.calendars import DayCalendar
from vpp.errors import ValidationError


class BaselineSpec(BaseModel):
    """How a programme computes its baseline (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["similar_days", "x_of_y", "forecast"]
    n_working_days: int = Field(default=5, ge=1, le=60)
    n_nonworking_days: int = Field(default=3, ge=1, le=60)
    x: int = Field(default=4, ge=1, le=60)
    y: int = Field(default=5, ge=1, le=60)
    day_of_adjustment: bool = False
    adjustment_hours: float = Field(default=2.0, gt=0, le=12)
    adjustment_gap_hours: float = Field(default=1.0, ge=0, le=12)
    adjustment_cap_pct: float = Field(default=20.0, ge=0, le=100)
    lookback_days: int = Field(default=45, ge=1, le=366)

    @model_validator(mode="after")
    def _x_le_y(self) -> BaselineSpec:
        if self.x > self.y:
            raise ValueError(f"x ({self.x}) must not exceed y ({self.y})")
        return self


@dataclass
class BaselineResult:
    """The baseline for each interval of [start, end), and how it was obtained."""

    baseline_kw: pd.Series
    method: str
    days_used: list[date]
    excluded: dict[date, str] = field(default_factory=dict)
    adjustment_kw: float | None = None
    explanation: str = ""


def _aware(ts: datetime, name: str) -> pd.Timestamp:
    if ts.tzinfo is None or ts.tzinfo.utcoffset(ts) is None:
        raise ValidationError(f"{name} must be timezone-aware, got {ts.isoformat()}")
    return pd.Timestamp(ts)


def _shift_days(index: pd.DatetimeIndex, days: int) -> pd.DatetimeIndex:
    """The same wall-clock times ``days`` earlier (NaT where that time does not exist)."""
    naive = index.tz_localize(None) - pd.Timedelta(days=days)
    return naive.tz_localize(index.tz, ambiguous="NaT", nonexistent="NaT")


def _values(load: pd.Series, index: pd.DatetimeIndex) -> np.ndarray:
    return load.reindex(index).to_numpy(dtype=float)


def _check_load(load_kw: pd.Series, interval_minutes: int) -> pd.Series:
    idx = load_kw.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
        raise ValidationError("load_kw needs a timezone-aware DatetimeIndex")
    if not idx.is_monotonic_increasing or idx.has_duplicates:
        raise ValidationError("load_kw timestamps must be strictly increasing")
    off = (idx.minute % interval_minutes != 0) | (idx.second != 0)
    if off.any():
        raise ValidationError(f"load_kw timestamp {idx[off][0]} is off the {interval_minutes}-min grid")
    return load_kw.astype(float)


def _window(start: pd.Timestamp, end: pd.Timestamp, tz: object, interval_minutes: int
            ) -> pd.DatetimeIndex:
    if end <= start:
        raise ValidationError(f"event end {end.isoformat()} is not after start {start.isoformat()}")
    if end - start > pd.Timedelta(hours=24):
        raise ValidationError("event window longer than 24 hours")
    step = pd.Timedelta(minutes=interval_minutes)
    for ts, name in ((start, "start"), (end, "end")):
        if (ts - ts.normalize()) % step:
            raise ValidationError(f"event {name} {ts.isoformat()} is off the {interval_minutes}-min grid")
    return pd.date_range(start.tz_convert(tz), end.tz_convert(tz), freq=step, inclusive="left")


def day_type_name(work: bool) -> str:
    """"working day" or "non-working day", as the baselines and bids label day types."""
    return "working day" if work else "non-working day"


@dataclass
class _Candidate:
    """One eligible baseline day: ``k`` days before the event, its load over the event
    window and over the day-of adjustment window (kW)."""

    k: int
    day: date
    window_kw: np.ndarray
    adjustment_kw: np.ndarray | None


def _excluded_reason(d: date, work: bool, event_work: bool, events: set[date],
                     abnormal: set[date]) -> str | None:
    """Why ``d`` is not a baseline day of an event on a day of type ``event_work``."""
    if d in events:
        return "event day"
    if d in abnormal:
        return "abnormal day"
    if work != event_work:
        kind = day_type_name(work)
        if not work and d.weekday() < 5:
            kind = "public holiday (non-working day)"
        elif work and d.weekday() >= 5:
            kind = "adjusted working day"
        return f"{kind}; the event is on a {day_type_name(event_work)}"
    return None


def _eligible_days(load: pd.Series, window: pd.DatetimeIndex, adj_index: pd.DatetimeIndex | None,
                   need: int, lookback_days: int, event_work: bool, cal: DayCalendar,
                   events: set[date], abnormal: set[date]
                   ) -> tuple[list[_Candidate], dict[date, str]]:
    """The ``need`` most recent eligible days before the event day, and the skipped ones."""
    event_date = window[0].date()
    candidates = [event_date - timedelta(days=k) for k in range(1, lookback_days + 1)]
    chosen: list[_Candidate] = []
    excluded: dict[date, str] = {}
    for k, (d, w) in enumerate(zip(candidates, cal.is_workday(candidates), strict=True), start=1):
        if len(chosen) == need:
            break
        why = _excluded_reason(d, bool(w), event_work, events, abnormal)
        if why is not None:
            excluded[d] = why
            continue
        vals = _values(load, _shift_days(window, k))
        adj_vals = _values(load, _shift_days(adj_index, k)) if adj_index is not None else None
        if not np.isfinite(vals).all() or (adj_vals is not None and not np.isfinite(adj_vals).all()):
            excluded[d] = "incomplete data"
            continue
        chosen.append(_Candidate(k, d, vals, adj_vals))
    return chosen, excluded


def _highest_x(chosen: list[_Candidate], x: int, excluded: dict[date, str]) -> list[_Candidate]:
    """"High x of y": the ``x`` days with the highest mean over the window (the rest noted)."""
    order = sorted(range(len(chosen)), key=lambda i: -float(np.mean(chosen[i].window_kw)))
    for i in order[x:]:
        excluded[chosen[i].day] = (
            f"not among the {x} highest of {len(chosen)} "
            f"(mean {float(np.mean(chosen[i].window_kw)):.1f} kW over the event window)")
    return [chosen[i] for i in sorted(order[:x])]


def _adjustment(load: pd.Series, adj_index: pd.DatetimeIndex, chosen: list[_Candidate],
                spec: BaselineSpec, interval_minutes: int) -> tuple[float, str]:
    """The day-of adjustment (kW, capped) and its note for the explanation."""
    actual = _values(load, adj_index)
    end = adj_index[-1] + pd.Timedelta(minutes=interval_minutes)
    if not np.isfinite(actual).all():
        raise ValidationError(
            f"day-of adjustment window {adj_index[0].isoformat()} to {end.isoformat()} "
            "has missing data")
    base_adj = float(np.mean([c.adjustment_kw for c in chosen]))
    raw = float(actual.mean()) - base_adj
    cap = spec.adjustment_cap_pct / 100.0 * abs(base_adj)
    adjustment = float(np.clip(raw, -cap, cap))
    capped = " (capped)" if adjustment != raw else ""
    note = (f"; day-of adjustment {adjustment:+.1f} kW{capped} from {raw:+.1f} kW over "
            f"{adj_index[0].strftime('%H:%M')}-{end.strftime('%H:%M')}"
            f", cap {spec.adjustment_cap_pct:g}% of {base_adj:.1f} kW")
    return adjustment, note


def _adjustment_index(window: pd.DatetimeIndex, spec: BaselineSpec,
                      interval_minutes: int) -> pd.DatetimeIndex | None:
    """The day-of adjustment's intervals on the event day (None without one)."""
    if not spec.day_of_adjustment:
        return None
    step = pd.Timedelta(minutes=interval_minutes)
    n_adj = max(int(round(spec.adjustment_hours * 60 / interval_minutes)), 1)
    adj_end = (window[0] - pd.Timedelta(hours=spec.adjustment_gap_hours)).floor(step)
    return pd.date_range(end=adj_end - step, periods=n_adj, freq=step)


def compute_baseline(
    load_kw: pd.Series,
    start: datetime,
    end: datetime,
    spec: BaselineSpec,
    event_days: Iterable[date] = (),
    abnormal_days: Iterable[date] = (),
    *,
    interval_minutes: int,
    calendar: DayCalendar,
    temperature_c: pd.Series | None = None,
) -> BaselineResult:
    """Baseline of ``load_kw`` (kW, aware index on the interval grid) for [start, end).

    ``calendar``: the working days (the caller's configured calendar: no default, so the
    daemon, the CLI and the season judge a day alike); ``temperature_c`` is used only by the
    ``forecast`` method. See the module docstring for the rules.
    """
    load = _check_load(load_kw, interval_minutes)
    window = _window(_aware(start, "start"), _aware(end, "end"), load.index.tz, interval_minutes)
    cal = calendar
    events, abnormal = set(event_days), set(abnormal_days)
    event_date = window[0].date()
    if spec.method == "forecast":
        return _forecast_baseline(load, window, spec, events, abnormal, cal, temperature_c,
                                  interval_minutes)
    adj_index = _adjustment_index(window, spec, interval_minutes)
    event_work = bool(cal.is_workday([event_date])[0])
    if spec.method == "similar_days":
        need = spec.n_working_days if event_work else spec.n_nonworking_days
    else:
        need = spec.y
    chosen, excluded = _eligible_days(load, window, adj_index, need, spec.lookback_days,
                                      event_work, cal, events, abnormal)
    if len(chosen) < need:
        raise ValidationError(
            f"no baseline days available: found {len(chosen)} of {need} eligible "
            f"{day_type_name(event_work)}s in the {spec.lookback_days} days before {event_date}"
        )
    if spec.method == "x_of_y":
        chosen = _highest_x(chosen, spec.x, excluded)
        label = f"High {spec.x} of {spec.y}" if spec.x < spec.y else f"{spec.x} of {spec.y}"
    else:
        label = f"average of the {need} most recent {day_type_name(event_work)}s"
    profile = np.mean([c.window_kw for c in chosen], axis=0)
    adjustment: float | None = None
    note = ""
    if adj_index is not None:
        adjustment, note = _adjustment(load, adj_index, chosen, spec, interval_minutes)
        profile = profile + adjustment
    days_used = sorted(c.day for c in chosen)
    explanation = (
        f"{label} before {event_date} ({cal.name} calendar): "
        f"{', '.join(d.isoformat() for d in days_used)}; "
        f"{len(excluded)} day(s) skipped{note}"
    )
    return BaselineResult(
        baseline_kw=pd.Series(profile, index=window, name="baseline_kw"),
        method=spec.method, days_used=days_used, excluded=dict(sorted(excluded.items())),
        adjustment_kw=adjustment, explanation=explanation,
    )


def _forecast_baseline(
    load: pd.Series,
    window: pd.DatetimeIndex,
    spec: BaselineSpec,
    events: set[date],
    abnormal: set[date],
    cal: DayCalendar,
    temperature_c: pd.Series | None,
    interval_minutes: int,
) -> BaselineResult:
    from forecasting.models import GbmQuantileModel, training_origins
    from forecasting.panel import build_panel

    event_date = window[0].date()
    midnight = window[0].normalize()
    history = load[(load.index < midnight)
                   & (load.index >= midnight - pd.Timedelta(days=spec.lookback_days + 14))]
    history = history.copy()
    hist_days = pd.Index(history.index.date)
    masked = hist_days.isin(list(events | abnormal))
    history[masked] = np.nan  # never learn from (or lag on) event or abnormal days
    if history.notna().sum() < 14 * 1440 // interval_minutes:
        raise ValidationError(
            f"no baseline days available: the forecast baseline needs 14 days of history "
            f"before {event_date}"
        )
    steps = 1440 // interval_minutes
    horizon = int((window[-1] - midnight) / pd.Timedelta(minutes=interval_minutes)) + 1
    horizon = max(horizon, steps)
    panel = build_panel(history.to_frame("site"), cal, temperature_c=temperature_c,
                        horizon_steps=horizon, interval_minutes=interval_minutes)
    origin = int((midnight - panel.index[0]) / pd.Timedelta(minutes=interval_minutes))
    origins = training_origins(panel, origin, steps // 4, spec.lookback_days)
    model = GbmQuantileModel([0.5], n_estimators=150, min_data_in_leaf=20, num_threads=1)
    model.fit(panel, origins, horizon, target_end=origin)
    pred = model.predict(panel, np.array([origin]), horizon)[0, 0, 0]
    offsets = ((window - midnight) / pd.Timedelta(minutes=interval_minutes)).astype(int)
    baseline = pd.Series(pred[offsets], index=window, name="baseline_kw")
    used_days = sorted({d for d in hist_days[~masked & history.notna().to_numpy()]})
    excluded = {d: ("event day" if d in events else "abnormal day")
                for d in sorted(events | abnormal) if d in set(hist_days)}
    note = "; day-of adjustment does not apply to the forecast method" \
        if spec.day_of_adjustment else ""
    explanation = (
        f"LightGBM P50 forecast from {midnight.isoformat()} trained on {len(used_days)} days "
        f"({used_days[0]} to {used_days[-1]}, {cal.name} calendar"
        f"{', with temperature' if temperature_c is not None else ''}); "
        f"{len(excluded)} event/abnormal day(s) left out{note}"
    )
    return BaselineResult(baseline_kw=baseline, method="forecast", days_used=used_days,
                          excluded=excluded, adjustment_kw=None, explanation=explanation)
