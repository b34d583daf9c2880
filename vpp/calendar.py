"""The market calendar: interval, time zone, working days and seasons, in one object.

:class:`MarketCalendar` is built once from configuration (:meth:`MarketCalendar.from_settings`:
``service.market_interval_minutes``, ``service.timezone``, ``forecasting.calendar``) or from
what owns the market where the configuration does not (a programme: :meth:`from_programme`; a
simulation scenario: :meth:`from_scenario`), and passed to whatever needs to step, floor, tell
working days or seasons apart. Nothing else defaults the interval or defines the seasons.

*Working days* (:class:`DayCalendar`): Chinese public holidays and the adjusted working days
(调休, weekend days that are worked to bridge a holiday) come from the ``chinesecalendar``
package (import name ``chinese_calendar``), which covers 2004 to its last published year.
Outside that range :class:`ChineseCalendar` falls back to Monday-Friday (or raises, with
``strict=True``) and says so in :attr:`ChineseCalendar.fallback_years`. :class:`WeekendCalendar`
(plain weekends) and ``forecasting.calendars.ExplicitCalendar`` (a data set's own working-day
column) have the same interface, so nothing assumes China when the data is not Chinese.

*Seasons* (:class:`SeasonMonths`): which calendar months are spring, summer, autumn and winter
(meteorological seasons of central China, summer June to September: Hunan's cooling peak). The
default is the one definition; a programme or scenario whose seasons differ passes its own
:class:`SeasonMonths` as data. Each month belongs to exactly one season.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol
from zoneinfo import ZoneInfo

import numpy as np

from vpp.errors import ValidationError
from vpp.timeutil import require_aware

if TYPE_CHECKING:
    from vpp.config import Settings

Season = Literal["spring", "summer", "autumn", "winter"]
#: the seasons, spring first (their months: :class:`SeasonMonths`)
SEASONS: tuple[Season, ...] = ("spring", "summer", "autumn", "winter")


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


def make_calendar(name: str) -> DayCalendar:
    """A working-day calendar by name: ``china`` (default) or ``weekend``."""
    if name == "china":
        return ChineseCalendar()
    if name == "weekend":
        return WeekendCalendar()
    raise ValidationError(f"unknown calendar {name!r} (valid: china, weekend)")


@dataclass(frozen=True)
class SeasonMonths:
    """Which months (1-12) are which season; every month in exactly one. The defaults are THE
    definition of the seasons (module docstring)."""

    spring: tuple[int, ...] = (3, 4, 5)
    summer: tuple[int, ...] = (6, 7, 8, 9)
    autumn: tuple[int, ...] = (10, 11)
    winter: tuple[int, ...] = (12, 1, 2)

    def __post_init__(self) -> None:
        assert tuple(f.name for f in fields(self)) == SEASONS
        months = [m for name in SEASONS for m in getattr(self, name)]
        if sorted(months) != list(range(1, 13)):
            raise ValidationError(
                f"seasons must hold each month 1-12 exactly once, got {self}")

    def of_month(self, month: int) -> Season:
        """The season of ``month`` (1-12)."""
        for name in SEASONS:
            if month in getattr(self, name):
                return name
        raise ValidationError(f"month must be 1-12, got {month}")


class MarketSource(Protocol):
    """What owns a market's time rules where the configuration does not (a programme, a
    scenario's ``[scenario]`` table)."""

    @property
    def timezone(self) -> str: ...

    @property
    def interval_minutes(self) -> int: ...


class _Scenario(Protocol):
    @property
    def scenario(self) -> MarketSource: ...


@dataclass(frozen=True)
class MarketCalendar:
    """The market's interval (minutes, dividing an hour), zone, working days and seasons.

    Timestamps given to it must be aware; dates are local dates in :attr:`zone`.
    """

    interval_minutes: int
    zone: ZoneInfo
    workdays: DayCalendar
    seasons: SeasonMonths = field(default_factory=SeasonMonths)

    def __post_init__(self) -> None:
        if self.interval_minutes <= 0 or 60 % self.interval_minutes:
            raise ValidationError(
                f"the market interval must divide an hour, got {self.interval_minutes} minutes")

    @classmethod
    def from_settings(cls, settings: Settings) -> MarketCalendar:
        """The aggregator's calendar: ``service.market_interval_minutes``, ``service.timezone``
        and the working days of ``forecasting.calendar``."""
        return cls(settings.service.market_interval_minutes, ZoneInfo(settings.service.timezone),
                   make_calendar(settings.forecasting.calendar))

    @classmethod
    def from_programme(cls, programme: MarketSource, workdays: DayCalendar,
                       seasons: SeasonMonths | None = None) -> MarketCalendar:
        """A programme's calendar: its measurement interval and zone (``workdays`` from the
        configuration; ``seasons`` where the programme's differ from the definition)."""
        return cls(programme.interval_minutes, ZoneInfo(programme.timezone), workdays,
                   seasons or SeasonMonths())

    @classmethod
    def from_scenario(cls, scn: _Scenario, seasons: SeasonMonths | None = None) -> MarketCalendar:
        """A simulation scenario's calendar: its ``interval_minutes`` and ``timezone``, the
        Chinese working days (the scenarios simulate Chinese cities)."""
        return cls(scn.scenario.interval_minutes, ZoneInfo(scn.scenario.timezone),
                   ChineseCalendar(), seasons or SeasonMonths())

    @property
    def step(self) -> timedelta:
        """One market interval."""
        return timedelta(minutes=self.interval_minutes)

    @property
    def intervals_per_day(self) -> int:
        """Market intervals in a 24-hour day."""
        return 24 * 60 // self.interval_minutes

    @property
    def pandas_freq(self) -> str:
        """The interval as a pandas frequency string (``"15min"``)."""
        return f"{self.interval_minutes}min"

    def intervals(self, minutes: float) -> int:
        """Whole intervals needed to cover ``minutes`` (rounded up)."""
        return -int(-minutes // self.interval_minutes)

    def local(self, ts: datetime) -> datetime:
        """``ts`` (aware) in the market's zone."""
        return require_aware(ts).astimezone(self.zone)

    def local_date(self, ts: datetime) -> date:
        """The market's local date of ``ts`` (aware)."""
        return self.local(ts).date()

    def floor(self, ts: datetime) -> datetime:
        """The start of the market interval holding ``ts`` (aware), in the market's zone."""
        t = self.local(ts)
        return t - timedelta(minutes=t.minute % self.interval_minutes, seconds=t.second,
                             microseconds=t.microsecond)

    def on_grid(self, ts: datetime) -> bool:
        """Whether ``ts`` starts a market interval."""
        return self.floor(ts) == ts

    def is_workday(self, day: date) -> bool:
        """Whether ``day`` (a local date) is a working day."""
        return bool(self.workdays.is_workday([day])[0])

    def season_of(self, day: date) -> Season:
        """The season of ``day`` (a local date; a datetime is taken in the market's zone)."""
        if isinstance(day, datetime):
            day = self.local_date(day)
        return self.seasons.of_month(day.month)

    def is_summer(self, day: date) -> bool:
        return self.season_of(day) == "summer"
