"""Calendar features for forecasting, and working days given as data.

The working-day calendars themselves (:class:`~vpp.calendar.ChineseCalendar`,
:class:`~vpp.calendar.WeekendCalendar`, the :class:`~vpp.calendar.DayCalendar` protocol and
:func:`~vpp.calendar.make_calendar`) live in :mod:`vpp.calendar` with the market calendar and
are re-exported here. :class:`ExplicitCalendar` takes the working days a data set ships with, so
the baselines and models never assume China when the data is not Chinese.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from vpp.calendar import ChineseCalendar as ChineseCalendar  # re-exported: readers import it here
from vpp.calendar import DayCalendar as DayCalendar
from vpp.calendar import WeekendCalendar as WeekendCalendar
from vpp.calendar import make_calendar as make_calendar
from vpp.errors import ValidationError


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
