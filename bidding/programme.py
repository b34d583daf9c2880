"""Demand-response programme rules as data, versioned by the date they take effect.

A programme is one TOML file ``<programmes_dir>/<name>.toml`` holding a list of ``[[versions]]``,
each with an ``effective_from`` date; :func:`load_programme` returns the version in force on a
given day (the latest one that has started). A version states: admission minimums, the products
offered (event type x direction: notice, response windows, baseline method, prices and caps),
the effective-response band and penalty, and the time-of-use tariff. Figures that no source
confirmed are listed in the version's ``unverified`` keys (see docs/bidding.md).

Powers in kW, energies in kWh, prices as exact :class:`~decimal.Decimal` yuan.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pydantic
from pydantic import Field, field_validator, model_validator

from bidding.rules import Band, Direction, EventType, _Model
from bidding.tariff import TouTariff, _minute_of_day
from forecasting.baselines import BaselineSpec
from vpp.config import first_error, read_toml
from vpp.errors import ConfigError, NotFoundError, ValidationError
from vpp.timeutil import DEFAULT_INTERVAL_MINUTES, DEFAULT_TIMEZONE, require_aware


class Product(_Model):
    """One kind of event the programme buys: event type x direction."""

    event_type: EventType
    direction: Direction
    notice_min_hours: float = Field(0.0, ge=0)
    notice_max_hours: float | None = Field(None, gt=0)
    windows: list[str] = Field(default_factory=lambda: ["00:00-24:00"])
    min_duration_hours: float = Field(1.0, gt=0)
    max_duration_hours: float | None = Field(None, gt=0)
    energy_price_yuan_per_kwh: Decimal | None = Field(None, ge=0)  # fixed price, if any
    price_cap_yuan_per_kwh: Decimal | None = Field(None, ge=0)  # cap on bids
    capacity_price_yuan_per_kw: Decimal | None = Field(None, ge=0)  # per kW per event
    price_cap_yuan_per_kw: Decimal | None = Field(None, ge=0)
    baseline: BaselineSpec


    @field_validator("windows")
    @classmethod
    def _windows(cls, v: list[str]) -> list[str]:
        for w in v:
            try:
                a, b = w.split("-")
            except ValueError:
                raise ValueError(f"window must be 'HH:MM-HH:MM', got {w!r}") from None
            if _minute_of_day(a) >= _minute_of_day(b):
                raise ValueError(f"window {w!r} must end after it starts (same day)")
        return v

    @model_validator(mode="after")
    def _caps(self) -> Product:
        if (
            self.energy_price_yuan_per_kwh is not None
            and self.price_cap_yuan_per_kwh is not None
            and self.energy_price_yuan_per_kwh > self.price_cap_yuan_per_kwh
        ):
            raise ValueError("energy_price_yuan_per_kwh exceeds price_cap_yuan_per_kwh")
        if self.energy_price_yuan_per_kwh is None and self.price_cap_yuan_per_kwh is None \
                and self.capacity_price_yuan_per_kw is None and self.price_cap_yuan_per_kw is None:
            raise ValueError("a product needs an energy or capacity price or a price cap")
        return self

    @model_validator(mode="after")
    def _notice(self) -> Product:
        if self.notice_max_hours is not None and self.notice_max_hours < self.notice_min_hours:
            raise ValueError(f"notice_max_hours ({self.notice_max_hours:g}) is below "
                             f"notice_min_hours ({self.notice_min_hours:g})")
        return self

    @property
    def key(self) -> str:
        return f"{self.event_type.value}/{self.direction.value}"


class PerformanceRules(_Model):
    """The VPP's performance record (docs/bidding.md, "Performance record"): which failed
    responses warn and suspend it, and when a suspension ends in exit.

    A failed response is a settled event whose performance ratio is below the band's
    ``lower_pct`` (nothing paid). Failures count within the ``failure_window_months`` before
    each one, from the last reinstatement on; ``warn_after_failures`` of them warn,
    ``suspend_after_failures`` suspend. A suspension not remedied within
    ``remedy_deadline_months``, a failed first response after a remedy (when
    ``expel_on_failed_first_response_after_remedy``), or ``expel_after_suspensions``
    suspensions within ``suspension_window_months`` mean exit. Durations in calendar months.
    """

    source: str = ""
    warn_after_failures: int = Field(..., ge=1, le=100)
    suspend_after_failures: int = Field(..., ge=1, le=100)
    failure_window_months: int = Field(..., ge=1, le=120)
    remedy_deadline_months: int = Field(..., ge=1, le=120)
    expel_on_failed_first_response_after_remedy: bool = True
    expel_after_suspensions: int = Field(..., ge=1, le=100)
    suspension_window_months: int = Field(..., ge=1, le=120)

    @model_validator(mode="after")
    def _order(self) -> PerformanceRules:
        if self.warn_after_failures > self.suspend_after_failures:
            raise ValueError(f"warn_after_failures ({self.warn_after_failures}) exceeds "
                             f"suspend_after_failures ({self.suspend_after_failures})")
        return self


class ProgrammeVersion(_Model):
    """The rules of one programme from ``effective_from`` on."""

    effective_from: date
    source: str = ""
    unverified: list[str] = Field(default_factory=list)
    measurement_interval_minutes: int = Field(DEFAULT_INTERVAL_MINUTES, gt=0, le=60)
    min_declared_kw: float = Field(0.0, ge=0)
    min_share_of_normal_load_pct: float = Field(0.0, ge=0, le=100)
    capacity_payment_yuan_per_kw_month: Decimal = Field(Decimal("0"), ge=0)
    # the events whose verified capacity earns the monthly payment (bidding.capacity)
    capacity_payment_directions: list[Direction] = Field(
        default_factory=lambda: [Direction.PEAK_SHAVING])
    band: Band = Field(default_factory=Band)
    # a metering point's export (net metered load below zero, e.g. a battery discharging past
    # its host site's load) counts as response only when the programme says so
    export_counts: bool = False
    products: list[Product] = Field(..., min_length=1)
    tariff: TouTariff
    # the performance record's rules; None: the programme keeps no record (nothing refused)
    performance: PerformanceRules | None = None

    @field_validator("measurement_interval_minutes")
    @classmethod
    def _divides(cls, v: int) -> int:
        if 60 % v:
            raise ValueError(f"measurement interval must divide an hour, got {v}")
        return v

    @model_validator(mode="after")
    def _unique(self) -> ProgrammeVersion:
        keys = [p.key for p in self.products]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"product declared twice: {', '.join(dupes)}")
        return self


class ProgrammeFile(_Model):
    name: str = Field(..., min_length=1)
    region: str = ""
    title: str = ""
    timezone: str = DEFAULT_TIMEZONE
    versions: list[ProgrammeVersion] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _dates(self) -> ProgrammeFile:
        days = [v.effective_from for v in self.versions]
        if len(set(days)) != len(days):
            raise ValueError("two versions take effect on the same day")
        return self


class Programme(_Model):
    """One programme version in force: what the rest of the code uses."""

    name: str
    region: str
    title: str
    timezone: str
    effective_from: date
    effective_until: date | None  # the day the next version takes over, if any
    rules: ProgrammeVersion

    @property
    def tariff(self) -> TouTariff:
        return self.rules.tariff

    @property
    def band(self) -> Band:
        return self.rules.band

    @property
    def export_counts(self) -> bool:
        """Whether export past a metering point's own load counts as response."""
        return self.rules.export_counts

    @property
    def interval_minutes(self) -> int:
        return self.rules.measurement_interval_minutes

    @property
    def performance(self) -> PerformanceRules | None:
        """The performance record's rules (None: the programme keeps no record)."""
        return self.rules.performance

    def product(self, event_type: str, direction: str) -> Product:
        for p in self.rules.products:
            if p.event_type.value == event_type and p.direction.value == direction:
                return p
        offered = ", ".join(p.key for p in self.rules.products)
        raise ValidationError(
            f"programme {self.name} ({self.effective_from}) has no {event_type}/{direction} "
            f"product (offered: {offered})"
        )

    def check_event(
        self, event_type: str, direction: str, start: datetime, end: datetime,
        notified_at: datetime | None = None,
    ) -> Product:
        """The product for an event, after checking its window, duration and notice."""
        require_aware(start, "event start")
        require_aware(end, "event end")
        p = self.product(event_type, direction)
        hours = (end - start) / timedelta(hours=1)
        step = self.interval_minutes
        if hours <= 0:
            raise ValidationError(f"event ends ({end}) before it starts ({start})")
        if hours < p.min_duration_hours:
            raise ValidationError(
                f"event lasts {hours:g} h, below the minimum {p.min_duration_hours:g} h of {p.key}"
            )
        if p.max_duration_hours is not None and hours > p.max_duration_hours:
            raise ValidationError(
                f"event lasts {hours:g} h, above the maximum {p.max_duration_hours:g} h of {p.key}"
            )
        tz = ZoneInfo(self.timezone)
        ls, le = start.astimezone(tz), end.astimezone(tz)
        if ls.minute % step or le.minute % step or ls.second or le.second:
            raise ValidationError(f"event {ls:%H:%M}-{le:%H:%M} is not on {step}-minute intervals")
        a = ls.hour * 60 + ls.minute
        b = a + int(round(hours * 60))
        if not _within_windows(a, b, p.windows):
            raise ValidationError(
                f"event {ls:%H:%M}-{le:%H:%M} is outside the {p.key} windows {', '.join(p.windows)}"
            )
        if notified_at is not None:
            self.check_notice(p, start, notified_at)
        return p

    def check_notice(self, p: Product, start: datetime, notified_at: datetime) -> None:
        """Refuse a call whose notice (``start - notified_at``, when the call was received) is
        outside the product's ``notice_min_hours``..``notice_max_hours``.

        A product with no minimum notice (``notice_min_hours = 0``) takes a call that starts in
        the measurement interval in progress when it arrives (the interval is then settled as a
        whole), never one that started in an earlier interval.
        """
        require_aware(notified_at, "notice time")
        notice_h = (start - notified_at) / timedelta(hours=1)
        if p.notice_min_hours > 0 and notice_h < p.notice_min_hours:
            raise ValidationError(
                f"notice of {round(notice_h, 2):g} h is shorter than {p.notice_min_hours:g} h for {p.key}"
            )
        if start <= notified_at - timedelta(minutes=self.interval_minutes):
            raise ValidationError(
                f"the event started at {start.isoformat()}, before the {self.interval_minutes}-"
                f"minute interval in progress when the call arrived ({notified_at.isoformat()})"
            )
        if p.notice_max_hours is not None and notice_h > p.notice_max_hours:
            raise ValidationError(
                f"notice of {round(notice_h, 2):g} h is longer than the {p.notice_max_hours:g} h "
                f"{self.name} allows for {p.key}: calls are taken at most "
                f"{p.notice_max_hours:g} h ahead"
            )



def read_programme_file(path: Path) -> ProgrammeFile:
    """Read and validate one programme file (all versions); :class:`ConfigError` if bad."""
    if not path.exists():
        raise NotFoundError(f"{path}: programme file not found")
    data = read_toml(path)
    try:
        parsed = ProgrammeFile.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(f"{path}: {first_error(exc)}") from None
    if parsed.name != path.stem:
        raise ConfigError(f"{path}: key name: {parsed.name!r} does not match the file name")
    return parsed


def load_programme(name: str, programmes_dir: Path | str, on: date | datetime) -> Programme:
    """The version of programme ``name`` in force on ``on`` (latest ``effective_from <= on``).

    An aware datetime (an event's start) is taken as a local date in the programme's zone.
    """
    pdir = Path(programmes_dir)
    path = pdir / f"{name}.toml"
    if not path.exists():
        known = sorted(p.stem for p in pdir.glob("*.toml")) if pdir.is_dir() else []
        raise NotFoundError(
            f"no programme {name!r} in {pdir} (known: {', '.join(known) or 'none'})"
        )
    pf = read_programme_file(path)
    if isinstance(on, datetime):
        on = on.astimezone(ZoneInfo(pf.timezone)).date() if on.tzinfo else on.date()
    versions = sorted(pf.versions, key=lambda v: v.effective_from)
    in_force = [v for v in versions if v.effective_from <= on]
    if not in_force:
        raise NotFoundError(
            f"programme {name} has no version in force on {on} "
            f"(first takes effect {versions[0].effective_from})"
        )
    chosen = in_force[-1]
    later = [v.effective_from for v in versions if v.effective_from > on]
    return Programme(
        name=pf.name, region=pf.region, title=pf.title, timezone=pf.timezone,
        effective_from=chosen.effective_from, effective_until=later[0] if later else None,
        rules=chosen,
    )


def configured_programme(name: str, programmes_dir: Path | str, on: date | datetime, *,
                         market_interval_minutes: int, key: str = "bidding.programme") -> Programme:
    """The programme a configuration names, checked against the service's market interval.

    The market interval is one concept: the daemon plans, dispatches and meters in
    ``service.market_interval_minutes`` and settles in the programme's
    ``measurement_interval_minutes``, so the two must be equal. :class:`ConfigError` names
    ``key`` and the reason (an unknown programme, no version in force, another interval).
    """
    try:
        programme = load_programme(name, programmes_dir, on)
    except NotFoundError as exc:
        raise ConfigError(f"key {key}: {exc.message}") from None
    if programme.interval_minutes != market_interval_minutes:
        raise ConfigError(
            f"key {key}: programme {name} measures in {programme.interval_minutes}-minute "
            f"intervals but service.market_interval_minutes is {market_interval_minutes}: "
            "they must be equal")
    return programme


def _within_windows(start_min: int, end_min: int, windows: list[str]) -> bool:
    """True when local minutes ``start_min``..``end_min`` (the end may pass midnight, 1,440) lie
    inside the daily windows, each day's part inside one window: "00:00-24:00" takes an event
    across midnight, "00:00-07:00" does not take one that starts at 23:00."""
    spans = [(_minute_of_day(w.split("-")[0]), _minute_of_day(w.split("-")[1])) for w in windows]
    parts = [(start_min, min(end_min, 1440))]
    if end_min > 1440:
        parts.append((0, end_min - 1440))
    return all(any(lo <= a and b <= hi for lo, hi in spans) for a, b in parts)
