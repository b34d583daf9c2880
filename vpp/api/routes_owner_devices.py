"""The owner portal's device views: each device's part of a settled event
(``GET /api/v1/owner/events/{event_id}/devices``) and what a preference change would do to
what a device can offer, before it is saved
(``POST /api/v1/owner/devices/{device_id}/preferences/preview``).

Contributions (:mod:`bidding.device_contribution`) use the readings and the baseline method of
the owner's settlement: the baselines fixed at the event's first plan where the settlement
used them (per device, as stored), else the programme's similar-days method over the owner's
baseline days (the settlement's ``days_used``), each device's mean on those days, with the
owner's day-of adjustment split in proportion. Preview: the scheduler's envelope
(:func:`vpp.scheduler.envelope.flexibility_envelope`) over the device's scheduler view
(:func:`vpp.scheduler.device_view.scheduler_device`, the planner's), from its last reading held
over the next ``PREVIEW_HOURS``, sustained over that window (as an offer is), peak shaving; an
interval that starts while the device is opted out (:func:`bidding.participants.opted_out`)
shows 0.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from pydantic import Field
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bidding.device_contribution import days_mean_baseline, device_contributions
from bidding.ledger import current_settlement
from bidding.meter_frame import read_meter_frame
from bidding.participants import opt_out_until, opted_out
from bidding.programme import load_programme
from bidding.workflow import owner_devices
from device_adapters.protocol import DeviceState
from forecasting.device_baselines import shift_to_day
from vpp.api.context import PARTS
from vpp.api.routes_fleet import check_preferences, merged_preferences
from vpp.api.routing import Call, Route, roles
from vpp.api.schemas import Preferences
from vpp.daemon.delivery import latest_bid, measure_event
from vpp.daemon.overrides import excluded_ids
from vpp.daemon.settle import FIXED_BASELINE
from vpp.device_kinds import DeviceKind, parse_params
from vpp.domain.base import InModel, OutModel
from vpp.errors import NotFoundError, ValidationError
from vpp.models import Device, GridEvent, Role, TelemetryReading
from vpp.scheduler.device_view import ev_session_from_preferences, scheduler_device
from vpp.scheduler.envelope import flexibility_envelope
from vpp.scheduler.inputs import Params

#: the preview's window: the next hours from now, on the market interval
PREVIEW_HOURS = 2


class ContributionQuery(InModel):
    owner_id: int | None = Field(None, ge=1, le=2**31 - 1,
                                 description="operators: whose share (owners: their own)")


class DeviceContributionOut(OutModel):
    device_id: int
    name: str
    kind: str
    baseline_kwh: float
    metered_kwh: float
    response_kwh: float
    share_pct: float | None
    unmetered_intervals: int
    excluded: bool


class EventDevicesOut(OutModel):
    """One owner's devices in one settled event (kWh over the event intervals). The devices'
    responses add up to ``settled_response_kwh`` within ``tolerance_kwh`` (settlement's
    rounding to Wh per interval); ``not_attributed_kwh`` is what is left beyond it (the
    connection meter rule on export, or a baseline method that is not a mean over days)."""

    event_id: int
    owner_id: int
    settlement_version: int
    baseline: str  # "fixed at the first plan" or the programme method's name
    devices: list[DeviceContributionOut]
    devices_response_kwh: float
    settled_response_kwh: float
    not_attributed_kwh: float
    tolerance_kwh: float


def _owner_of_call(call: Call) -> int:
    q: ContributionQuery = call.query
    scope = call.owner_scope()
    if scope is None:
        if q.owner_id is None:
            raise ValidationError("query.owner_id: required for an operator")
        return q.owner_id
    if q.owner_id is not None and q.owner_id != scope:
        raise NotFoundError(f"no share of owner {q.owner_id}")
    return int(scope)


def _fixed(s: Session, ev: GridEvent, owner: int, minutes: int) -> tuple[list[int], np.ndarray,
                                                                         np.ndarray]:
    bid = latest_bid(s, int(ev.id or 0))
    if bid is None:
        raise NotFoundError(f"event {ev.id} has no bid")
    m = measure_event(s, ev, bid, minutes)
    if owner not in m.owners:
        raise NotFoundError(f"no share of owner {owner} in event {ev.id}")
    rows = m.owner_row == m.owners.index(owner)
    ids = [d for d, r in zip(m.device_ids, rows, strict=True) if r]
    return ids, m.baseline_kw[rows], m.metered_kw[rows]


def _history(s: Session, ev: GridEvent, owner: int, detail: dict[str, Any],
             programmes_dir: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    info = (detail.get("baselines") or {}).get(str(owner)) or {}
    days = [datetime.fromisoformat(d).date() for d in info.get("days_used") or []]
    if not days:
        raise ValidationError(f"event {ev.id}: owner {owner}'s baseline ({info.get('method')}) "
                              "is not a mean over days; its devices' shares cannot be derived")
    prog = load_programme(ev.programme, programmes_dir, ev.start)
    minutes, tz = prog.interval_minutes, prog.timezone
    index = pd.date_range(pd.Timestamp(ev.start).tz_convert(tz), pd.Timestamp(ev.end).tz_convert(tz),
                          freq=f"{minutes}min", inclusive="left")
    ids = owner_devices(s, [owner]).get(owner, [])
    if not ids:
        raise NotFoundError(f"owner {owner} has no devices")
    bind = s.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    first = pd.Timestamp(min(days)).tz_localize(tz)
    frame = read_meter_frame(engine, ids, first.to_pydatetime(), index[-1].to_pydatetime()
                             + timedelta(minutes=minutes), minutes)
    day_rows = [frame.reindex(shift_to_day(index, d)).to_numpy().T for d in days]
    base = days_mean_baseline(day_rows, info.get("adjustment_kw"))
    return ids, base, frame.reindex(index).to_numpy().T


async def event_devices(call: Call) -> EventDevicesOut:
    event_id = int(call.path["event_id"])
    owner = _owner_of_call(call)
    parts = call.request.app[PARTS]
    settings = parts.settings

    def work(s: Session) -> EventDevicesOut:
        ev = s.get(GridEvent, event_id)
        st = current_settlement(s, event_id) if ev is not None else None
        if ev is None or st is None or "result" not in (st.detail or {}):
            raise NotFoundError(f"no settled event {event_id}")
        detail = st.detail or {}
        share = next((o for o in detail["result"]["owners"] if int(o["owner_id"]) == owner), None)
        if share is None:
            raise NotFoundError(f"no share of owner {owner} in event {event_id}")
        minutes = settings.service.market_interval_minutes
        fixed = detail.get("baseline") == FIXED_BASELINE
        if fixed:
            ids, base, meter = _fixed(s, ev, owner, minutes)
            method = FIXED_BASELINE
        else:
            ids, base, meter = _history(s, ev, owner, detail, str(settings.bidding.programmes_dir))
            method = str(((detail.get("baselines") or {}).get(str(owner)) or {}).get("method"))
            minutes = load_programme(ev.programme, str(settings.bidding.programmes_dir),
                                     ev.start).interval_minutes
        out = device_contributions(
            ids, base, meter, np.ones(base.shape[1], dtype=bool),
            sign=1.0 if ev.direction == "peak_shaving" else -1.0, interval_minutes=minutes,
            settled_response_kwh=float(share["response_kwh"]), excluded=excluded_ids(ev))
        rows = {int(d.id or 0): d for d in (s.get(Device, i) for i in ids) if d is not None}
        return EventDevicesOut(
            event_id=event_id, owner_id=owner, settlement_version=st.version, baseline=method,
            devices=[DeviceContributionOut(
                **vars(c), name=rows[c.device_id].name if c.device_id in rows else "?",
                kind=rows[c.device_id].kind if c.device_id in rows else "?")
                for c in out.devices],
            devices_response_kwh=out.devices_response_kwh,
            settled_response_kwh=out.settled_response_kwh,
            not_attributed_kwh=out.not_attributed_kwh, tolerance_kwh=out.tolerance_kwh)

    return await parts.db.run(work)


class PreviewOut(OutModel):
    """What a device could shed (kW per interval of the next hours, the scheduler's envelope)
    with its stored preferences and with the change; nothing is saved."""

    device_id: int
    window_start: datetime
    interval_minutes: int
    current: dict[str, Any]
    proposed: dict[str, Any]
    before_kw: list[float]
    after_kw: list[float]
    before_max_kw: float
    after_max_kw: float
    lines: list[str]  # plain-language summary (English; the portal words it per language)


def _envelope(d: Device, prefs: dict[str, Any], state: DeviceState, now: datetime,
              start: datetime, tz: str, minutes: int) -> np.ndarray:
    n = PREVIEW_HOURS * 60 // minutes
    # an interval starting while the device is opted out: the planner leaves it out
    out = np.array([opted_out(prefs, start + timedelta(minutes=minutes * k)) for k in range(n)])
    if out.all():
        return np.zeros(n)
    kind = DeviceKind(d.kind)
    fd = scheduler_device(
        int(d.id or 0), kind, cast(Params, parse_params(kind, d.params)),
        rated_power_kw=d.rated_power_kw, min_setpoint_kw=d.min_setpoint_kw,
        max_setpoint_kw=d.max_setpoint_kw, owner=str(d.owner_id), state=state,
        preferences=prefs, horizon_intervals=n,
        sessions=ev_session_from_preferences(prefs, now.astimezone(ZoneInfo(tz)),
                                             timedelta(minutes=minutes), 0),
        interval_minutes=minutes)
    bq = np.full((1, 1, n), max(float(state.power_kw), 0.0))
    env = flexibility_envelope([fd], bq, [0.5], 0.5, sustain_intervals=n,
                               interval_minutes=minutes)
    return np.where(out, 0.0, np.round(env.reduction_kw, 3))


def _lines(d: Device, before: float, after: float, cur: dict[str, Any],
           new: dict[str, Any]) -> list[str]:
    what = f"{d.name} would shed at most {after:.1f} kW"
    lines = [f"{what} instead of {before:.1f} kW" if abs(after - before) > 1e-6
             else f"{what}, as now"]
    if new.get("participate") is False:
        lines.append("it would be left out of every plan while it does not take part")
    else:
        until = opt_out_until(new)
        if until is not None:
            lines.append(f"it would be left out of the events that start before "
                         f"{until.isoformat(timespec='minutes')}, and take part again after")
    band = ("comfort_min_c", "comfort_max_c")
    if any(new.get(k) != cur.get(k) for k in band) and abs(after - before) <= 1e-6:
        lines.append("the indoor temperature stays inside the new comfort band for its whole "
                     "shed, so the band does not shorten it")
    return lines


def _stored_state(s: Session, device_id: int) -> DeviceState | None:
    """The device's last stored reading, when this process has not polled it yet."""
    r = s.exec(select(TelemetryReading).where(TelemetryReading.device_id == device_id,
                                              col(TelemetryReading.power_kw).is_not(None))
               .order_by(col(TelemetryReading.ts).desc()).limit(1)).first()
    if r is None or r.power_kw is None:
        return None
    return DeviceState(device_id=device_id, ts=r.ts, power_kw=float(r.power_kw),
                       energy_kwh=r.energy_kwh, soc_pct=r.soc_pct, indoor_temp_c=None,
                       available=r.available, flex_down_kw=0.0, flex_up_kw=0.0)


async def preview_preferences(call: Call) -> PreviewOut:
    device_id = int(call.path["device_id"])
    body: Preferences = call.body
    changes = body.model_dump(exclude_unset=True, mode="json")
    parts = call.request.app[PARTS]
    minutes = parts.settings.service.market_interval_minutes
    tz = parts.settings.service.timezone

    def work(s: Session) -> PreviewOut:
        d = s.get(Device, device_id)
        if d is None:
            raise NotFoundError(f"no device {device_id}")
        call.check_owner(d.owner_id, f"device {device_id}")
        now = parts.clock()
        cur = merged_preferences(d.preferences, {}, now)
        new = merged_preferences(d.preferences, changes, now)
        check_preferences(d, new, now)
        state = parts.fleet.latest(device_id) or _stored_state(s, device_id)
        if state is None:
            raise ValidationError(f"device {device_id} has no reading yet: the preview needs "
                                  "its current state")
        start = pd.Timestamp(now).floor(f"{minutes}min").to_pydatetime()
        before = _envelope(d, cur, state, now, start, tz, minutes)
        after = _envelope(d, new, state, now, start, tz, minutes)
        b, a = float(before.max(initial=0.0)), float(after.max(initial=0.0))
        return PreviewOut(device_id=device_id, window_start=start, interval_minutes=minutes,
                          current=cur, proposed=new, before_kw=before.tolist(),
                          after_kw=after.tolist(), before_max_kw=b, after_max_kw=a,
                          lines=_lines(d, b, a, cur, new))

    return await parts.db.run(work)


ROUTES = [
    Route("GET", "/api/v1/owner/events/{event_id}/devices", event_devices,
          "Each device's baseline, metered energy and response in a settled event (kWh); the "
          "responses add up to the owner's settled response within tolerance_kwh", "owners",
          roles(Role.OPERATOR, Role.OWNER), query=ContributionQuery, response=EventDevicesOut),
    Route("POST", "/api/v1/owner/devices/{device_id}/preferences/preview", preview_preferences,
          "What a preference change would do to what the device can shed (nothing saved)",
          "owners", roles(Role.OPERATOR, Role.OWNER), body=Preferences, response=PreviewOut),
]
