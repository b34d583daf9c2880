"""What one bid is made from and what it returns: the typed contract of :func:`bidding.core.make_offer`.

Two edges build a :class:`BidInput`: the daemon's database loader
(:func:`bidding.workflow.bid_event`, from the ``device`` and ``telemetry`` tables) and the season
simulator (:func:`sim.aggregator.bid_call`, from its in-memory meters). Both shape an owner's
metered history with :func:`whole_days`, so the days an offer is made from are chosen once.

Units: kW (interval mean power), Decimal yuan/kWh; timestamps tz-aware; an owner's load is the
sum of its devices' (an interval where one of them is not metered is missing for the owner).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from bidding.programme import Product, Programme
from forecasting.calendars import DayCalendar
from forecasting.owners import OwnerForecast

#: Calendar days of metered history before an event that an offer without a forecast is made
#: from (the daemon's intake, ``vpp bid`` and the season simulator).
BID_HISTORY_DAYS = 10


@dataclass(frozen=True)
class BidDevice:
    """One device as the offer sees it (its owner, kind, limits and per-kind parameters as
    stored, ``soc_pct`` the latest polled state of charge of a battery, None when unknown).
    ``eligible``: the device can take part (:func:`bidding.participants.can_take_part`); the
    owner's history is metered over all its devices, the no-history envelope only over these."""

    device_id: int
    owner_id: int
    kind: str
    rated_power_kw: float
    min_setpoint_kw: float
    max_setpoint_kw: float
    params: dict[str, Any]
    soc_pct: float | None = None
    eligible: bool = True

    @property
    def id(self) -> int:
        """The device id under the name :mod:`bidding.capability` and the fallback read."""
        return self.device_id


@dataclass(frozen=True)
class HistoryDay:
    """An owner's metered load over the event's clock window on one earlier local ``day``
    (kW per interval, complete: no interval missing)."""

    day: date
    load_kw: np.ndarray


@dataclass(frozen=True)
class OwnerInput:
    """One owner: its devices and its whole history days (:func:`whole_days`), newest first;
    ``site_history``: the same of its site meter's import (kW, + import; empty where no device
    of the owner reads a site meter), what :mod:`bidding.export_rule` caps the offer by;
    ``latest_kw`` / ``latest_site_kw``: the last metered interval of each before the event
    (None: none), the export rule's cap of an offer made without history."""

    owner_id: int
    devices: tuple[BidDevice, ...]
    history: tuple[HistoryDay, ...] = ()
    site_history: tuple[HistoryDay, ...] = ()
    latest_kw: float | None = None
    latest_site_kw: float | None = None


@dataclass(frozen=True)
class NoHistoryPolicy:
    """How a fleet without history bids (:mod:`bidding.fallback`): ``fraction_pct`` of the
    dependable envelope; ``first_reading`` is the fleet's first metered instant (None: none)."""

    fraction_pct: float
    first_reading: datetime | None


@dataclass(frozen=True)
class BidInput:
    """Everything one offer depends on; see :func:`bidding.core.make_offer`.

    ``forecast``: the daemon's forecaster's owner quantiles (None: none yet); ``levels``: the
    quantile levels of the empirical history fallback; ``envelope_kw``: per owner, an envelope
    given by the caller (kW per interval) instead of the computed one; ``scheduler_envelope``:
    compute the scheduler's envelope (else device capability); ``no_history``: bid the
    fallback offer when no owner has a forecast or enough history (None: raise
    :class:`~vpp.errors.NoHistoryError`)."""

    event_id: int
    start: datetime
    end: datetime
    direction: str
    requested_kw: float | None
    programme: Programme
    product: Product
    price_yuan_per_kwh: Decimal
    owners: tuple[OwnerInput, ...]
    calendar: DayCalendar
    confidence: float | None = 0.9
    levels: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)
    history_days: int = BID_HISTORY_DAYS
    forecast: OwnerForecast | None = None
    envelope_kw: Mapping[int, np.ndarray] | None = None
    scheduler_envelope: bool = False
    no_history: NoHistoryPolicy | None = None

    @property
    def interval_minutes(self) -> int:
        return self.programme.interval_minutes

    @property
    def window(self) -> pd.DatetimeIndex:
        """The starts of the event's market intervals."""
        return pd.date_range(self.start, self.end, freq=f"{self.interval_minutes}min",
                             inclusive="left")

    @property
    def hours(self) -> float:
        return (self.end - self.start) / timedelta(hours=1)


@dataclass(frozen=True)
class OwnerShare:
    """An owner's part of the offer: ``declared_kw`` and its ``share`` of the VPP's declared
    capacity (0..1); ``limited_by`` the rule's binding limit; ``envelope_kw`` its envelope
    (the smallest kW over the event) when the no-history rule made it."""

    owner_id: int
    declared_kw: float
    share: float
    limited_by: str
    expected_response_kw: float = 0.0
    p_penalty: float = 0.0
    envelope_kw: float | None = None


@dataclass(frozen=True)
class Offer:
    """The VPP's offer for an event: ``declared_kw`` at ``price_yuan_per_kwh``, its owners'
    shares, the ``rule`` that made it and, for a fallback, the ``reason``. ``capped_from_kw``:
    the total before the cap at the grid's request (None: not capped). ``extra``: what the rule
    records beside (quantile and envelope sources; the no-history rule's envelope)."""

    event_type: str
    direction: str
    declared_kw: float
    price_yuan_per_kwh: Decimal
    owners: tuple[OwnerShare, ...]
    rule: str
    reason: str | None = None
    capped_from_kw: float | None = None
    requested_kw: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shares(self) -> dict[int, float]:
        return {o.owner_id: o.share for o in self.owners}

    def owner_declared_kw(self) -> dict[int, float]:
        return {o.owner_id: o.declared_kw for o in self.owners}

    def to_detail(self) -> dict[str, Any]:
        """For ``Bid.detail`` (JSON): the rule and what it recorded. The owners' shares are not
        in it: they are stored as rows (``bid_owner_share``, :func:`bidding.workflow.share_rows`)."""
        return {"rule": self.rule, **({"reason": self.reason} if self.reason else {}),
                "event_type": self.event_type, "direction": self.direction,
                "requested_kw": self.requested_kw, "capped_from_kw": self.capped_from_kw,
                **self.extra}


def whole_days(load_kw: pd.Series, start: datetime, end: datetime, history_days: int,
               skip_days: set[date] | frozenset[date], tz: str,
               interval_minutes: int) -> tuple[HistoryDay, ...]:
    """The owner's load over ``[start, end)``'s clock window on each of the ``history_days``
    days before it (newest first), keeping only complete days and not ``skip_days`` (local
    dates of other events). ``load_kw``: kW per interval on a tz-aware index, NaN = missing."""
    zone = ZoneInfo(tz)
    step = timedelta(minutes=interval_minutes)
    n_t = int(round((end - start) / step))
    out: list[HistoryDay] = []
    for k in range(1, history_days + 1):
        day_start = start - timedelta(days=k)
        day = day_start.astimezone(zone).date()
        if day in skip_days:
            continue
        w = load_kw.loc[day_start: end - timedelta(days=k) - step]
        if len(w) == n_t and bool(w.notna().all()):
            out.append(HistoryDay(day, w.to_numpy(dtype=float)))
    return tuple(out)


def last_metered(load_kw: pd.Series) -> float | None:
    """The last finite value of a kW series (None: none): an owner's latest metered interval."""
    finite = load_kw[np.isfinite(load_kw.to_numpy(dtype=float))]
    return None if finite.empty else float(finite.iloc[-1])


def owner_input(owner_id: int, devices: Sequence[BidDevice], load_kw: pd.Series,
                site_kw: pd.Series, start: datetime, end: datetime, history_days: int,
                skip_days: set[date] | frozenset[date], tz: str,
                interval_minutes: int) -> OwnerInput:
    """One owner as an offer sees it, from its metered load and its site meter's import (kW
    per interval up to the event, NaN = missing): :func:`whole_days` of each and the last
    metered interval of each (:func:`last_metered`). The daemon's and the season's edges both
    build owners here."""
    days = [whole_days(s, start, end, history_days, skip_days, tz, interval_minutes)
            for s in (load_kw, site_kw)]
    return OwnerInput(owner_id, tuple(devices), days[0], days[1], last_metered(load_kw),
                      last_metered(site_kw))


def owners_of(devices: Sequence[BidDevice]) -> dict[int, list[BidDevice]]:
    """Devices grouped by owner, owners in ascending id."""
    out: dict[int, list[BidDevice]] = {}
    for d in sorted(devices, key=lambda d: (d.owner_id, d.device_id)):
        out.setdefault(d.owner_id, []).append(d)
    return out
