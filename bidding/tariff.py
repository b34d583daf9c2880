"""Time-of-use (ToU) tariff: peak, flat, valley and seasonal critical-peak periods and prices.

A tariff is data (a ``[tariff]`` table of a programme file, see :mod:`bidding.programme`): daily
windows that must tile the 24 hours exactly (no overlap, no gap: either is an error naming the
clock times), prices in yuan/kWh as exact :class:`~decimal.Decimal`, and critical-peak windows
that apply in some months and replace the base period with ``peak * (1 + uplift_pct / 100)``.

Times are local wall-clock times of ``timezone`` (Asia/Shanghai). A window ``23:00``-``07:00``
wraps midnight; ``24:00`` is accepted as an end. The price of an interval is the price at its
start (market intervals align with the whole-hour boundaries of published tariffs).

:func:`energy_cost_fen` prices a power series at the tariff (exact, integer fen) and
:func:`tou_saving` compares a schedule's bill with the bill without it (the batteries between
calls, :mod:`vpp.scheduler.tou`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bidding.money import to_wh, yuan_to_fen
from vpp.config import first_error
from vpp.errors import ConfigError, ValidationError
from vpp.timeutil import DEFAULT_TIMEZONE

MINUTES_PER_DAY = 24 * 60


class PeriodKind(StrEnum):
    """The tariff periods; ``critical_peak`` only comes from critical-peak windows."""

    PEAK = "peak"
    FLAT = "flat"
    VALLEY = "valley"
    CRITICAL_PEAK = "critical_peak"


BASE_KINDS = (PeriodKind.PEAK, PeriodKind.FLAT, PeriodKind.VALLEY)
_KIND_CODE = {k: i for i, k in enumerate(PeriodKind)}


def _minute_of_day(value: Any) -> int:
    """Parse ``"HH:MM"`` (``"24:00"`` allowed) into minutes after midnight."""
    if isinstance(value, time):
        return value.hour * 60 + value.minute
    if isinstance(value, int) and 0 <= value <= MINUTES_PER_DAY:
        return value
    if not isinstance(value, str):
        raise ValueError(f"time must be 'HH:MM', got {value!r}")
    try:
        hh, mm = value.strip().split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise ValueError(f"time must be 'HH:MM', got {value!r}") from None
    if not (0 <= m < 60 and (0 <= h < 24 or (h == 24 and m == 0))):
        raise ValueError(f"time out of range: {value!r}")
    return h * 60 + m


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _minutes(start: int, end: int) -> np.ndarray:
    """Minutes of day covered by [start, end), wrapping midnight when end <= start."""
    if end > start:
        return np.arange(start, end)
    return np.concatenate([np.arange(start, MINUTES_PER_DAY), np.arange(0, end)])


def _runs(mask: np.ndarray) -> list[str]:
    """Clock ranges ('HH:MM-HH:MM') where ``mask`` is true."""
    out: list[str] = []
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return out
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]]) + 1
    return [f"{_hhmm(int(a))}-{_hhmm(int(b))}" for a, b in zip(starts, ends, strict=True)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TouWindow(_Model):
    """A daily window of one base period, ``start`` inclusive, ``end`` exclusive."""

    kind: PeriodKind
    start: str
    end: str

    @field_validator("kind")
    @classmethod
    def _base(cls, v: PeriodKind) -> PeriodKind:
        if v is PeriodKind.CRITICAL_PEAK:
            raise ValueError("critical_peak is declared in [[tariff.critical_peak]], not windows")
        return v

    @field_validator("start", "end")
    @classmethod
    def _time(cls, v: str) -> str:
        _minute_of_day(v)
        return v

    @model_validator(mode="after")
    def _nonempty(self) -> TouWindow:
        if _minute_of_day(self.start) % MINUTES_PER_DAY == _minute_of_day(self.end) % MINUTES_PER_DAY:
            raise ValueError(f"{self.kind} window {self.start}-{self.end} is empty or a full day")
        return self

    def minutes(self) -> np.ndarray:
        return _minutes(_minute_of_day(self.start), _minute_of_day(self.end) % MINUTES_PER_DAY)


class CriticalPeakWindow(_Model):
    """Seasonal critical peak: in ``months``, ``start``-``end`` is priced at peak + uplift."""

    months: list[int] = Field(..., min_length=1)
    start: str
    end: str
    uplift_pct: Decimal = Field(Decimal("20"), ge=0)

    @field_validator("months")
    @classmethod
    def _months(cls, v: list[int]) -> list[int]:
        bad = [m for m in v if not 1 <= m <= 12]
        if bad:
            raise ValueError(f"months must be 1-12, got {bad}")
        return sorted(set(v))

    @field_validator("start", "end")
    @classmethod
    def _time(cls, v: str) -> str:
        _minute_of_day(v)
        return v

    def minutes(self) -> np.ndarray:
        return _minutes(_minute_of_day(self.start), _minute_of_day(self.end) % MINUTES_PER_DAY)


class TouTariff(_Model):
    """A validated ToU tariff. Build it with :func:`parse_tariff` for a one-line error."""

    timezone: str = DEFAULT_TIMEZONE
    prices_yuan_per_kwh: dict[PeriodKind, Decimal]
    windows: list[TouWindow] = Field(..., min_length=1)
    critical_peak: list[CriticalPeakWindow] = Field(default_factory=list)
    source: str = ""
    unverified: bool = False

    @model_validator(mode="after")
    def _check(self) -> TouTariff:
        missing = [k.value for k in BASE_KINDS if k not in self.prices_yuan_per_kwh]
        if missing:
            raise ValueError(f"prices_yuan_per_kwh lacks {', '.join(missing)}")
        if PeriodKind.CRITICAL_PEAK in self.prices_yuan_per_kwh:
            raise ValueError("critical_peak price is derived from peak and uplift_pct")
        negative = [k.value for k, p in self.prices_yuan_per_kwh.items() if p < 0]
        if negative:
            raise ValueError(f"negative price for {', '.join(negative)}")
        cover = np.zeros(MINUTES_PER_DAY, dtype=np.int16)
        for w in self.windows:
            cover[w.minutes()] += 1
        if (cover > 1).any():
            raise ValueError(f"tariff periods overlap at {', '.join(_runs(cover > 1))}")
        if (cover == 0).any():
            raise ValueError(f"tariff periods leave gaps at {', '.join(_runs(cover == 0))}")
        for month in range(1, 13):
            cp = np.zeros(MINUTES_PER_DAY, dtype=np.int16)
            for cw in self.critical_peak:
                if month in cw.months:
                    cp[cw.minutes()] += 1
            if (cp > 1).any():
                raise ValueError(
                    f"critical-peak windows overlap in month {month} at {', '.join(_runs(cp > 1))}"
                )
        return self

    # --- lookups -------------------------------------------------------------------------------

    def critical_peak_price(self, window: CriticalPeakWindow) -> Decimal:
        return self.prices_yuan_per_kwh[PeriodKind.PEAK] * (1 + window.uplift_pct / 100)

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(kind code per minute of day, (13, 1440) critical-window index per month, -1 none)."""
        base = np.full(MINUTES_PER_DAY, -1, dtype=np.int8)
        for w in self.windows:
            base[w.minutes()] = _KIND_CODE[w.kind]
        crit = np.full((13, MINUTES_PER_DAY), -1, dtype=np.int16)
        for i, cw in enumerate(self.critical_peak):
            for m in cw.months:
                crit[m, cw.minutes()] = i
        return base, crit

    def _locate(self, index: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
            raise ValidationError("price_series needs a timezone-aware pandas DatetimeIndex")
        local = index.tz_convert(ZoneInfo(self.timezone))
        minute = np.asarray(local.hour * 60 + local.minute)
        month = np.asarray(local.month)
        base, crit = self._tables()
        return base[minute], crit[month, minute]

    def period_series(self, index: pd.DatetimeIndex) -> pd.Series:
        """The period name (``peak``/``flat``/``valley``/``critical_peak``) at each timestamp."""
        base, crit = self._locate(index)
        kinds = list(PeriodKind)
        names = [kinds[c].value for c in base]
        names = [PeriodKind.CRITICAL_PEAK.value if k >= 0 else n for n, k in zip(names, crit, strict=True)]
        return pd.Series(names, index=index, name="period")

    def price_series_decimal(self, index: pd.DatetimeIndex) -> pd.Series:
        """Exact prices (yuan/kWh, :class:`Decimal`, object dtype) at each timestamp: for money."""
        base, crit = self._locate(index)
        kinds = list(PeriodKind)
        crit_prices = [self.critical_peak_price(w) for w in self.critical_peak]
        values = [
            crit_prices[k] if k >= 0 else self.prices_yuan_per_kwh[kinds[c]]
            for c, k in zip(base, crit, strict=True)
        ]
        return pd.Series(values, index=index, dtype=object, name="price_yuan_per_kwh")

    def price_series(self, index: pd.DatetimeIndex) -> pd.Series:
        """Prices (yuan/kWh, float) at each timestamp: for optimisation and plots, not money."""
        exact = self.price_series_decimal(index)
        return pd.Series(
            np.array([float(p) for p in exact], dtype=float), index=index,
            name="price_yuan_per_kwh",
        )


def energy_cost_fen(power_kw: np.ndarray, index: pd.DatetimeIndex, tariff: TouTariff,
                    interval_minutes: int) -> int:
    """The energy bill of ``power_kw`` (kW, one row per device or one series; intervals along
    the last axis, starting at ``index``) at the tariff's exact prices, in fen: each interval's
    summed energy to integer Wh (:func:`bidding.money.to_wh`), times its price, rounded to fen
    once. Negative energy (export) is priced as a credit at the same price."""
    kw = np.atleast_2d(np.asarray(power_kw, dtype=float)).sum(axis=0)
    if kw.shape != (len(index),):
        raise ValidationError(f"power_kw has {kw.shape[0]} intervals but the index {len(index)}")
    if not np.isfinite(kw).all():
        raise ValidationError("power_kw has NaN/inf")
    prices = tariff.price_series_decimal(index).to_numpy()
    dt_h = interval_minutes / 60.0
    total = sum((Decimal(to_wh(float(k) * dt_h)) * p for k, p in zip(kw, prices, strict=True)),
                Decimal(0))
    return yuan_to_fen(total / 1000)


@dataclass(frozen=True)
class TouSaving:
    """A schedule's energy bill against running without it, over the same intervals (fen)."""

    without_fen: int
    with_fen: int

    @property
    def saving_fen(self) -> int:
        return self.without_fen - self.with_fen


def tou_saving(with_kw: np.ndarray, without_kw: np.ndarray, index: pd.DatetimeIndex,
               tariff: TouTariff, interval_minutes: int) -> TouSaving:
    """The bill of ``with_kw`` (the schedule) and of ``without_kw`` (the same devices without
    it), both by :func:`energy_cost_fen`: exact, so a flat tariff saves exactly what the
    energies differ by (nothing, where they are the same)."""
    return TouSaving(energy_cost_fen(without_kw, index, tariff, interval_minutes),
                     energy_cost_fen(with_kw, index, tariff, interval_minutes))


def parse_tariff(data: dict[str, Any], source: str = "tariff") -> TouTariff:
    """Validate a tariff table; :class:`ConfigError` ``"<source>: <key>: <reason>"`` if bad."""
    try:
        return TouTariff.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(f"{source}: {first_error(exc)}") from None
