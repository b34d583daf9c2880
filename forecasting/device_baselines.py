"""Each device's expected load over a plan's horizon: one rule for the daemon's planner and the
season simulator.

Settlement measures an owner against the programme's baseline on the owner's meter
(:func:`forecasting.baselines.compute_baseline` over the sum of the owner's devices). The plan
needs the same baseline per device, over the call and the tail after it. So:

1. :func:`owner_baseline_days` picks, per owner, the days the programme's method picks on the
   owner's meter (without the day-of adjustment: at planning time the adjustment window may not
   have been metered yet, and it is one shift per owner, not per device);
2. :func:`device_plan_baselines` gives each device its mean metered load over its owner's days
   at the same wall-clock times (the owner's baseline disaggregated over its devices; with a
   similar-days method the devices' rows add up to the owner's baseline), and, where an owner
   has no programme baseline or a device no reading on those days, the edge's fallback (the
   daemon: the mean of the last minutes before the call, else the last reading; the
   simulator: the last reading).

The meters stay at the edges: the caller passes the owners' load series and a
:data:`DeviceLoadAt` that reads device loads at given instants. Powers in kW; instants aware,
in the market's zone; the window on the market interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from forecasting.baselines import BaselineSpec, compute_baseline
from forecasting.calendars import DayCalendar
from vpp.errors import ValidationError

#: device rows (fleet positions) and instants -> kW (rows x instants), NaN where not metered
DeviceLoadAt = Callable[[np.ndarray, pd.DatetimeIndex], np.ndarray]


@dataclass(frozen=True)
class OwnerDays:
    """Per owner, the baseline days the programme's method picked; ``failed``: owner -> why
    it has no programme baseline."""

    days: dict[int, list[date]]
    failed: dict[int, str]


@dataclass(frozen=True)
class PlanBaselines:
    """Per device (rows in the caller's order): kW over the window and the method used
    (the programme's method, or the fallback's name)."""

    kw: np.ndarray
    methods: list[str]

    def method_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.methods:
            out[m] = out.get(m, 0) + 1
        return out


def owner_baseline_days(owner_load_kw: Mapping[int, pd.Series], start: pd.Timestamp,
                        end: pd.Timestamp, spec: BaselineSpec, event_days: Iterable[date],
                        interval_minutes: int, calendar: DayCalendar) -> OwnerDays:
    """The days the programme's ``spec`` picks on each owner's metered load (kW series on the
    interval grid) for the call ``[start, end)`` (aware), event days excluded."""
    plan_spec = spec.model_copy(update={"day_of_adjustment": False})
    events = list(event_days)
    days: dict[int, list[date]] = {}
    failed: dict[int, str] = {}
    for owner, series in owner_load_kw.items():
        try:
            res = compute_baseline(series, start.to_pydatetime(), end.to_pydatetime(), plan_spec,
                                   event_days=events, interval_minutes=interval_minutes,
                                   calendar=calendar)
        except ValidationError as exc:
            failed[owner] = exc.message
            continue
        days[owner] = res.days_used
    return OwnerDays(days, failed)


def shift_to_day(window: pd.DatetimeIndex, day: date) -> pd.DatetimeIndex:
    """``window``'s wall-clock times moved from its first day to ``day`` (an interval past
    midnight stays past midnight); NaT where the time does not exist there."""
    k = (window[0].date() - day).days
    naive = window.tz_localize(None) - pd.Timedelta(days=k)
    return naive.tz_localize(window.tz, ambiguous="NaT", nonexistent="NaT")


def device_plan_baselines(owner_of_device: Sequence[int], owner_days: OwnerDays,
                          device_load_at: DeviceLoadAt, window: pd.DatetimeIndex,
                          method: str, fallback_kw: np.ndarray,
                          fallback_methods: Sequence[str]) -> PlanBaselines:
    """Each device's baseline over ``window`` (the call and the tail): its mean over its
    owner's days (module docstring); ``fallback_kw`` where that mean is not there, named by
    ``fallback_methods``: kW, one per device held over the window, or one per device and
    interval of the window (a PV inverter's follows the sun, :func:`forecasting.pv.
    nowcast_load_kw`); NaN: none. A device with neither gets NaN and the method ``"none"``:
    the caller leaves it out of the plan."""
    owners = np.asarray(owner_of_device, dtype=np.int64)
    n = len(owners)
    kw = np.full((n, len(window)), np.nan)
    groups: dict[tuple[date, ...], list[int]] = {}
    for i, o in enumerate(owners):
        picked = owner_days.days.get(int(o))
        if picked:
            groups.setdefault(tuple(picked), []).append(i)
    for group, members in groups.items():
        rows = np.asarray(members, dtype=np.int64)
        block = np.stack([device_load_at(rows, shift_to_day(window, d)) for d in group])
        finite = np.isfinite(block)
        count = finite.sum(axis=0)
        total = np.where(finite, block, 0.0).sum(axis=0)
        kw[rows] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    fallback = np.asarray(fallback_kw, dtype=float)
    if fallback.ndim == 1:
        fallback = np.repeat(fallback[:, None], len(window), axis=1)
    methods: list[str] = []
    for i in range(n):
        gap = ~np.isfinite(kw[i])
        if not gap.any():
            methods.append(method)
            continue
        kw[i, gap] = fallback[i, gap]
        methods.append(method if not gap.all() else
                       (fallback_methods[i] if np.isfinite(fallback[i]).all() else "none"))
    return PlanBaselines(kw, methods)
