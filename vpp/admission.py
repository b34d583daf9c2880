"""The database edge of the admission check (:func:`bidding.admission.assess_admission`), shared
by ``vpp admission`` and ``GET /api/v1/admission``.

Reads the configured programme's version in force on the reference day, every device
(``eligible`` by :func:`bidding.participants.can_take_part`), each battery's latest polled state
of charge (at most :data:`SOC_MAX_AGE` old, else unknown; a caller may pass fresher ones) and
the owners' metered history over the window's clock times on the ``history_days`` days before
it (:func:`bidding.meter_frame.read_meter_frame`, :func:`bidding.bid_inputs.whole_days`; days of
any event left out, as for an offer).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bidding.admission import AdmissionInput, assess_admission
from bidding.bid_inputs import BID_HISTORY_DAYS, BidDevice
from bidding.meter_frame import read_owner_inputs
from bidding.programme import Programme, load_programme, read_programme_file
from bidding.rules import Direction
from bidding.tariff import _minute_of_day
from bidding.workflow import bid_devices, other_event_days
from forecasting.calendars import make_calendar
from vpp.config import Settings
from vpp.db import session_scope
from vpp.device_kinds import DeviceKind
from vpp.domain.admission import (
    MAX_ADMISSION_HISTORY_DAYS,
    MIN_ADMISSION_HISTORY_DAYS,
    AdmissionResult,
)
from vpp.errors import ConfigError, NotFoundError, ValidationError
from vpp.models import Device, TelemetryReading

#: A battery's state of charge older than this is taken as unknown.
SOC_MAX_AGE = timedelta(hours=24)


def programme_on(settings: Settings, day: date) -> Programme:
    """The configured programme's version in force on ``day``: a missing programme is a
    configuration error, a day before its first version the caller's."""
    pdir = settings.bidding.programmes_dir
    name = settings.bidding.programme
    try:
        read_programme_file(pdir / f"{name}.toml")
    except NotFoundError as exc:
        raise ConfigError(f"key bidding.programme: {exc.message}") from None
    try:
        prog = load_programme(name, pdir, day)
    except NotFoundError as exc:
        raise ValidationError(f"day {day}: {exc.message}") from None
    if prog.interval_minutes != settings.service.market_interval_minutes:
        raise ConfigError(f"key bidding.programme: {name} measures in {prog.interval_minutes}-"
                          f"minute intervals, service.market_interval_minutes is "
                          f"{settings.service.market_interval_minutes}")
    return prog


def default_window(prog: Programme) -> str:
    """The first window of the programme's first peak-shaving product (else its first)."""
    shaving = [p for p in prog.rules.products if p.direction == Direction.PEAK_SHAVING]
    return (shaving or prog.rules.products)[0].windows[0]


def window_index(prog: Programme, day: date, window: str) -> pd.DatetimeIndex:
    """The interval starts of ``window`` (``HH:MM-HH:MM``, end after start, ``24:00`` allowed)
    on the local ``day``; :class:`ValidationError` unless it is on the programme's grid."""
    try:
        a, b = window.split("-")
        start_min, end_min = _minute_of_day(a), _minute_of_day(b)
    except (ValueError, KeyError):
        raise ValidationError(f"window must be HH:MM-HH:MM (00:00-24:00), got {window!r}") from None
    step = prog.interval_minutes
    if start_min >= end_min:
        raise ValidationError(f"window {window}: the end must come after the start")
    if start_min % step or end_min % step:
        raise ValidationError(f"window {window} is not on {step}-minute intervals")
    start = datetime.combine(day, time(), ZoneInfo(prog.timezone)) + timedelta(minutes=start_min)
    return pd.date_range(start, start + timedelta(minutes=end_min - start_min),
                         freq=f"{step}min", inclusive="left")


def latest_soc(session: Session, device_ids: list[int], until: datetime) -> dict[int, float]:
    """Each device's last polled state of charge in the :data:`SOC_MAX_AGE` before ``until``."""
    if not device_ids:
        return {}
    rows = session.exec(select(TelemetryReading.device_id, TelemetryReading.ts,
                               TelemetryReading.soc_pct).where(
        col(TelemetryReading.device_id).in_(device_ids),
        col(TelemetryReading.soc_pct).is_not(None),
        col(TelemetryReading.ts) >= until - SOC_MAX_AGE, col(TelemetryReading.ts) <= until))
    last: dict[int, tuple[datetime, float]] = {}
    for d, ts, soc in rows:
        ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
        if soc is not None and (d not in last or ts > last[d][0]):
            last[d] = (ts, float(soc))
    return {d: v for d, (_, v) in last.items()}


def _devices(session: Session, soc: Mapping[int, float], at: datetime) -> list[BidDevice]:
    return bid_devices(session.exec(select(Device).order_by(col(Device.id))), soc, at)


def load_admission_input(engine: Engine, settings: Settings, *, day: date | None = None,
                         window: str | None = None, history_days: int = BID_HISTORY_DAYS,
                         soc_pct: Mapping[int, float] | None = None,
                         now: datetime | None = None) -> AdmissionInput:
    """The check's input from the database (module docstring). ``day``: the reference day
    (None: today in the programme's zone); ``window``: None for :func:`default_window`;
    ``soc_pct``: states of charge that override the stored ones."""
    if not MIN_ADMISSION_HISTORY_DAYS <= history_days <= MAX_ADMISSION_HISTORY_DAYS:
        raise ValidationError(f"history days must be {MIN_ADMISSION_HISTORY_DAYS}.."
                              f"{MAX_ADMISSION_HISTORY_DAYS}, got {history_days}")
    now = now or datetime.now(UTC)
    day = day or now.astimezone(ZoneInfo(_zone_of(settings))).date()
    prog = programme_on(settings, day)
    idx = window_index(prog, day, window or default_window(prog))
    start, end = idx[0].to_pydatetime(), idx[-1].to_pydatetime() + idx.freq
    with session_scope(engine) as s:
        batteries = [int(d.id or 0) for d in s.exec(select(Device).where(
            Device.kind == DeviceKind.BATTERY.value))]
        soc = {**latest_soc(s, batteries, min(now, end)), **(soc_pct or {})}
        devices = _devices(s, soc, start)
        skip = set(other_event_days(s, -1, prog.timezone))
    step = prog.interval_minutes
    owners = read_owner_inputs(engine, devices, start, end, history_days, skip, prog.timezone,
                               step)
    return AdmissionInput(programme=prog, vpp_type=settings.bidding.vpp_type, window=idx,
                          owners=tuple(owners),
                          calendar=make_calendar(settings.forecasting.calendar),
                          confidence=settings.bidding.delivery_confidence)


def _zone_of(settings: Settings) -> str:
    """The programme's zone (its file's), for today's date before the version is chosen."""
    try:
        pf = read_programme_file(settings.bidding.programmes_dir /
                                 f"{settings.bidding.programme}.toml")
    except NotFoundError as exc:
        raise ConfigError(f"key bidding.programme: {exc.message}") from None
    return pf.timezone


def admission_from_db(engine: Engine, settings: Settings, *, day: date | None = None,
                      window: str | None = None, history_days: int = BID_HISTORY_DAYS,
                      soc_pct: Mapping[int, float] | None = None) -> AdmissionResult:
    """:func:`load_admission_input`, then :func:`bidding.admission.assess_admission`."""
    return assess_admission(load_admission_input(
        engine, settings, day=day, window=window, history_days=history_days, soc_pct=soc_pct))
