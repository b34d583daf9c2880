"""Working-day calendars and calendar features.

A *calendar* answers one question per date: is it a working day? Chinese public holidays and the
adjusted working days (调休, weekend days that are worked to bridge a holiday) come from the
``chinesecalendar`` package (import name ``chinese_calendar``), which covers 2004 to its last
published year. Outside that range :class:`ChineseCalendar` falls back to Monday-Friday (or
raises, with ``strict=True``) and says so in :attr:`ChineseCalendar.fallback_years`.

Other calendars (plain weekends, or an explicit working-day column shipped with a data set) have
the same interface, so the baselines and models never assume China when the data is not Chinese.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import numpy as np
import pandas as pd

from vpp.errors import ValidationError


class DayCalendar(Protocol):
    """Anything that says, per date, whether it is a working day."""

    name: str

    def is_workday(self, days: Iterable[date]) -> np.ndarray:
        """Boolean array, one entry per day (True = working day)."""
        ...


def _weekday_rule(days: list[date]) -> np.ndarray:
    return np.array([d.weekday() < 5 for d in days], dtype=bool)


@dataclass
class WeekendCalendar:
    """Monday to Friday are working days; no holidays."""

    name: str = "weekend"

    def is_workday(self, days: Iterable[date]) -> np.ndarray:
        return _weekday_rule(list(days))


@dataclass
class ChineseCalendar:
    """Mainland China: statutory holidays and adjusted working days (``chinese_calendar``).

    Years the package does not cover use the Monday-Friday rule and are recorded in
    ``fallback_years``; with ``strict=True`` they raise :class:`ValidationError` instead.
    """

    strict: bool = False
    name: str = "china"
    fallback_years: set[int] = field(default_factory=set)
    _cache: dict[date, bool] = field(default_factory=dict, repr=False)

    def is_workday(self, days: Iterable[date]) -> np.ndarray:
        import chinese_calendar

        out = []
        for d in days:
            hit = self._cache.get(d)
            if hit is None:
                try:
                    hit = bool(chinese_calendar.is_workday(d))
                except NotImplementedError:
                    if self.strict:
                        raise ValidationError(
                            f"the Chinese holiday calendar has no data for {d.year}; "
                            "update the chinesecalendar package"
                        ) from None
                    self.fallback_years.add(d.year)
                    hit = d.weekday() < 5
                self._cache[d] = hit
            out.append(hit)
        return np.array(out, dtype=bool)


@dataclass
class ExplicitCalendar:
    """Working days given as data (e.g. a 0/1 column of a measured data set).

    Days not in the mapping use the Monday-Friday rule.
    """

    workdays: Mapping[date, bool]
    name: str = "explicit"

    def is_workday(self, days: Iterable[date]) -> np.ndarray:
        return np.array(
            [bool(self.workdays[d]) if d in self.workdays else d.weekday() < 5 for d in days],
            dtype=bool,
        )

    @classmethod
    def from_series(cls, flags: pd.Series, name: str = "explicit") -> ExplicitCalendar:
        """Build from a per-interval or per-day 0/1 series with an aware DatetimeIndex.

        A day is a working day when its flag is 1 for the majority of its intervals.
        """
        if not isinstance(flags.index, pd.DatetimeIndex):
            raise ValidationError("working-day flags need a DatetimeIndex")
        values = pd.to_numeric(flags, errors="coerce")
        if values.isna().any():
            raise ValidationError("working-day column must hold 0/1 values")
        per_day = values.groupby(flags.index.date).mean()
        return cls({d: bool(v >= 0.5) for d, v in per_day.items()}, name=name)


def make_calendar(name: str) -> DayCalendar:
    """A calendar by name: ``china`` (default) or ``weekend``."""
    if name == "china":
        return ChineseCalendar()
    if name == "weekend":
        return WeekendCalendar()
    raise ValidationError(f"unknown calendar {name!r} (valid: china, weekend)")


def day_flags(index: pd.DatetimeIndex, calendar: DayCalendar) -> pd.DataFrame:
    """Per-interval day flags for ``index`` (local dates of the index's own zone).

    Columns: ``workday`` (bool), ``holiday`` (a Monday-Friday date that is not worked),
    ``adjusted_workday`` (a Saturday/Sunday that is worked).
    """
    dates = index.date
    uniq = pd.unique(dates)
    wd = dict(zip(uniq, calendar.is_workday(list(uniq)), strict=True))
    work = np.array([wd[d] for d in dates], dtype=bool)
    weekend = index.day_of_week.to_numpy() >= 5
    return pd.DataFrame(
        {"workday": work, "holiday": ~work & ~weekend, "adjusted_workday": work & weekend},
        index=index,
    )


def calendar_features(
    index: pd.DatetimeIndex, calendar: DayCalendar, interval_minutes: int
) -> pd.DataFrame:
    """Numeric calendar features for every timestamp of ``index`` (float32 columns).

    ``slot`` (interval of the local day), ``dow`` (0 = Monday), ``workday``, ``holiday``,
    ``adjusted_workday``, ``doy_sin``/``doy_cos`` (season), and ``prev_workday``/``next_workday``
    (bridge effects around holidays).
    """
    flags = day_flags(index, calendar)
    days = pd.DatetimeIndex(index.normalize())
    prev = calendar.is_workday([d.date() for d in (days - pd.Timedelta(days=1)).unique()])
    nxt = calendar.is_workday([d.date() for d in (days + pd.Timedelta(days=1)).unique()])
    uniq = days.unique()
    prev_map = dict(zip(uniq, prev, strict=True))
    next_map = dict(zip(uniq, nxt, strict=True))
    doy = index.day_of_year.to_numpy()
    return pd.DataFrame(
        {
            "slot": (index.hour * 60 + index.minute).to_numpy() // interval_minutes,
            "dow": index.day_of_week.to_numpy(),
            "workday": flags["workday"].to_numpy(),
            "holiday": flags["holiday"].to_numpy(),
            "adjusted_workday": flags["adjusted_workday"].to_numpy(),
            "prev_workday": np.array([prev_map[d] for d in days]),
            "next_workday": np.array([next_map[d] for d in days]),
            "doy_sin": np.sin(2 * np.pi * doy / 365.25),
            "doy_cos": np.cos(2 * np.pi * doy / 365.25),
        },
        index=index,
    ).astype(np.float32)
