"""The daemon's edge of :mod:`forecasting.device_baselines`: an event's per-device baselines
from the telemetry table, fixed once (at the event's first plan, or ahead of it) and stored.

The owners' meters are read as settlement reads them (:func:`bidding.meter_frame.
read_meter_frame`, every device of each owner summed, NaN where one is missing; the short
history first, the programme's whole lookback only where an owner lacks days); their baseline
days come from the programme's method, other events' days excluded; each device gets its mean
over its owner's days at the call's and the tail's wall-clock times. The fallback, per device:
the mean metered power of the ``RECENT_MINUTES`` before the call (the real-time rule of
Jiangsu's programme), else the last reading polled; a PV inverter's follows the sun from it
(the reading's clear-sky index over the window). Powers in kW.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func
from sqlalchemy import select as sa_select
from sqlmodel import Session

from bidding.meter_frame import owner_load, read_meter_frame
from bidding.programme import load_programme
from bidding.workflow import history_spans, other_event_days, owner_devices
from device_adapters.protocol import DeviceState
from forecasting.baselines import BaselineSpec
from forecasting.device_baselines import (
    OwnerDays,
    PlanBaselines,
    device_plan_baselines,
    owner_baseline_days,
)
from forecasting.pv import nowcast_load_kw
from vpp.calendar import MarketCalendar
from vpp.config import Settings
from vpp.device_kinds import DeviceKind, PvInverterParams, parse_params
from vpp.errors import NotFoundError, ValidationError
from vpp.models import Device, GridEvent, TelemetryReading, table_of

log = logging.getLogger("vpp.daemon.planning")

RECENT_MINUTES = 15


@dataclass(frozen=True)
class FixedBaselines:
    """An event's baselines as stored in ``GridEvent.detail``: kW per device id (str) over the
    call (``baseline_kw``, what settlement uses) and the tail; the count of devices per
    method."""

    call_kw: dict[str, list[float]]
    tail_kw: dict[str, list[float]]
    methods: dict[str, int]

    def detail(self) -> dict[str, object]:
        return {"baseline_kw": self.call_kw, "tail_baseline_kw": self.tail_kw,
                "baseline_methods": self.methods}


def _spec(ev: GridEvent, settings: Settings, day: date) -> BaselineSpec | None:
    try:
        programme = load_programme(ev.programme, settings.bidding.programmes_dir, day)
        return programme.product(ev.event_type, ev.direction).baseline
    except (ValidationError, NotFoundError) as exc:
        log.warning("no programme baseline method: %s", exc, extra={"event_id": ev.id})
        return None


def _fallback(s: Session, ids: list[int], anchor: datetime,
              latest: Callable[[int], DeviceState | None]) -> tuple[np.ndarray, list[str]]:
    """Per device: its recent mean (kW) before ``anchor``, else its last reading, else NaN."""
    t = table_of(TelemetryReading)
    recent = dict(s.execute(
        sa_select(t.c.device_id, func.avg(t.c.power_kw))
        .where(t.c.device_id.in_(ids), t.c.ts >= anchor - timedelta(minutes=RECENT_MINUTES),
               t.c.ts < anchor, t.c.power_kw.is_not(None))
        .group_by(t.c.device_id)).all())
    kw, methods = [], []
    for did in ids:
        v, m = recent.get(did), "recent_mean"
        if v is None:
            st = latest(did)
            v, m = (st.power_kw if st is not None else None), "last_reading"
        kw.append(np.nan if v is None else float(v))
        methods.append(m)
    return np.array(kw, dtype=float), methods


def _pv_follows_the_sun(devices: list[Device], window: pd.DatetimeIndex, fallback: np.ndarray,
                       names: list[str], anchor: datetime, minutes: int
                       ) -> tuple[np.ndarray, list[str]]:
    """The fallback per device and interval: a PV inverter's reading's clear-sky index over
    the window (:func:`forecasting.pv.nowcast_load_kw`, read at the middle of the recent
    minutes), every other device's value held flat."""
    out = np.repeat(fallback[:, None], len(window), axis=1)
    at = pd.Timestamp(anchor - timedelta(minutes=RECENT_MINUTES / 2))
    for i, d in enumerate(devices):
        if d.kind != DeviceKind.PV_INVERTER.value or not np.isfinite(fallback[i]):
            continue
        params = parse_params(DeviceKind.PV_INVERTER, d.params)
        if isinstance(params, PvInverterParams):
            out[i] = nowcast_load_kw(params, d.rated_power_kw, window, float(fallback[i]), at,
                                     minutes)
            names[i] = "pv_clear_sky_index"
    return out, names


def _owner_days(s: Session, engine: Engine, ev: GridEvent, owners: list[int],
                spec: BaselineSpec, start: pd.Timestamp, end: pd.Timestamp,
                calendar: MarketCalendar) -> tuple[OwnerDays, pd.DataFrame | None]:
    """The owners' baseline days and the device meter frame they were read from."""
    owner_devs = owner_devices(s, owners)
    ids = [d for v in owner_devs.values() for d in v]
    days, meter = OwnerDays({}, {o: "no history read" for o in owners}), None
    events = other_event_days(s, int(ev.id or 0), calendar.zone.key)
    minutes = calendar.interval_minutes
    for span in history_spans(spec):
        meter = read_meter_frame(engine, ids, (start.normalize() - pd.Timedelta(days=span))
                                 .to_pydatetime(), start.to_pydatetime(), minutes)
        loads = owner_load(meter, owner_devs)
        days = owner_baseline_days({o: loads[o] for o in owners}, start, end, spec, events,
                                   minutes, calendar.workdays)
        if not days.failed:
            break
    return days, meter


def fix_event_baselines(s: Session, engine: Engine, ev: GridEvent, devices: list[Device],
                        intervals: list[datetime], settings: Settings,
                        calendar: MarketCalendar,
                        latest: Callable[[int], DeviceState | None]) -> FixedBaselines:
    """``ev``'s baselines for ``devices`` over its ``intervals`` and the planning tail (module
    docstring); a device with neither history nor a reading is left out (logged)."""
    step = calendar.step
    n_tail = settings.scheduler.tail_intervals(calendar.interval_minutes)
    window = pd.DatetimeIndex([intervals[0] + k * step
                               for k in range(len(intervals) + n_tail)]).tz_convert(calendar.zone)
    start, end = window[0], window[len(intervals) - 1] + step
    ids = [int(d.id or 0) for d in devices]
    owner_of = [d.owner_id for d in devices]
    spec = _spec(ev, settings, start.date())
    days, meter = OwnerDays({}, {}), None
    if spec is not None and devices:
        days, meter = _owner_days(s, engine, ev, sorted(set(owner_of)), spec, start, end,
                                  calendar)

    def load_at(rows: np.ndarray, index: pd.DatetimeIndex) -> np.ndarray:
        assert meter is not None  # only called for owners with days, read from the meter
        return meter.reindex(index)[[ids[r] for r in rows]].to_numpy(dtype=float).T

    anchor = min(ev.received_at, intervals[0])
    fallback, names = _pv_follows_the_sun(devices, window, *_fallback(s, ids, anchor, latest),
                                          anchor, calendar.interval_minutes)
    base: PlanBaselines = device_plan_baselines(
        owner_of, days, load_at, window, spec.method if spec else "none", fallback, names)
    n = len(intervals)
    call_kw, tail_kw = {}, {}
    for i, did in enumerate(ids):
        if base.methods[i] == "none":
            log.warning("device left out of the baselines: no history and no reading",
                        extra={"event_id": ev.id, "device_id": did})
            continue
        call_kw[str(did)] = [float(v) for v in base.kw[i, :n]]
        tail_kw[str(did)] = [float(v) for v in base.kw[i, n:]]
    counts = {m: c for m, c in base.method_counts().items() if m != "none"}
    return FixedBaselines(call_kw, tail_kw, counts)
