"""The database edge of bidding and settlement: read meters, bid an event, settle it.

Pure functions (:func:`bidding.core.make_offer`, :mod:`bidding.settlement`,
:mod:`forecasting.baselines`) do the work; this module only reads rows, shapes them into their
typed inputs (:func:`load_bid_input`) and writes results in one transaction.

Meter data is the ``telemetry`` table: readings are averaged per market interval (an interval
with no reading from a device is missing). An owner's load is the sum over their devices; an
interval where any of their devices is missing is missing for the owner (history days with gaps
are skipped by the baseline; gaps inside the settled window are an error).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func
from sqlmodel import Session, col
from sqlmodel import select as sql_select

from bidding.bid_inputs import (
    BID_HISTORY_DAYS,
    BidDevice,
    BidInput,
    NoHistoryPolicy,
    Offer,
)
from bidding.core import (  # noqa: F401  # re-exported: the rule's constants live in core
    MIN_HISTORY_DAYS,
    MIN_SAME_TYPE_DAYS,
    make_offer,
    same_type_days,
    scheduler_envelopes,
)
from bidding.ledger import PostedSettlement, post_settlement
from bidding.meter_frame import (  # re-exported
    owner_load,
    read_meter_frame,
    read_owner_inputs,
    read_owner_site,
)
from bidding.offer import cap_owner_offers as cap_offers  # noqa: F401  # re-exported
from bidding.participants import DeviceStanding, can_take_part, opted_out
from bidding.programme import Product, Programme, load_programme
from bidding.settlement import (
    EventSettlement,
    SettlementError,
    fill_unmetered,
    require_metered_share,
    settle_event,
)
from forecasting.baselines import BaselineResult, BaselineSpec, compute_baseline
from forecasting.calendars import DayCalendar
from forecasting.owners import OwnerForecast
from vpp.bids import add_bid, owner_shares, require_bid
from vpp.db import session_scope
from vpp.errors import NotFoundError, ValidationError
from vpp.models import (
    AuditLog,
    Bid,
    BidOwnerShare,
    Device,
    DeviceStatus,
    GridEvent,
    Owner,
    TelemetryReading,
)
from vpp.timeutil import require_aware


def owner_devices(session: Session, owner_ids: Sequence[int]) -> dict[int, list[int]]:
    """Every device of each owner (settlement meters the owner's whole site)."""
    devs = session.exec(sql_select(Device).where(col(Device.owner_id).in_(list(owner_ids)))).all()
    out: dict[int, list[int]] = {o: [] for o in owner_ids}
    for d in devs:
        assert d.id is not None, "device is stored"
        out[d.owner_id].append(d.id)
    empty = [o for o, v in out.items() if not v]
    if empty:
        raise ValidationError(f"owner(s) {empty} in the bid have no devices")
    return out


def other_event_days(session: Session, exclude_id: int, tz: str) -> list[date]:
    """Local dates of every other event (any programme, any status; both days of one across
    midnight): not baseline days."""
    zone, days = ZoneInfo(tz), set[date]()
    for i, start, end in session.exec(sql_select(GridEvent.id, GridEvent.start, GridEvent.end)):
        first, last = (t.astimezone(zone).date() for t in (start, end - timedelta(microseconds=1)))
        if i != exclude_id:
            days.update(first + timedelta(days=k) for k in range(max((last - first).days, 0) + 1))
    return sorted(days)


def get_event(session: Session, event_id: int) -> GridEvent:
    ev = session.get(GridEvent, event_id)
    if ev is None:
        raise NotFoundError(f"no event {event_id}")
    return ev


# --- bidding --------------------------------------------------------------------------------


def _first_reading(session: Session, device_ids: Sequence[int]) -> datetime | None:
    """The earliest metered instant of ``device_ids`` (aware UTC), None without any."""
    if not device_ids:
        return None
    first = session.exec(sql_select(func.min(TelemetryReading.ts)).where(
        col(TelemetryReading.device_id).in_(list(device_ids)))).one()
    if first is not None and first.tzinfo is None:  # SQLite's min() of a stored UTC time
        first = first.replace(tzinfo=UTC)
    return first


def bid_devices(rows: Iterable[Device], soc_pct: Mapping[int, float],
                at: datetime) -> list[BidDevice]:
    """The fleet's devices as the offer and the admission check see them: each marked
    ``eligible`` by :func:`bidding.participants.can_take_part` (active, not opted out for a
    window starting ``at``), with its latest state of charge (%) where ``soc_pct`` has one."""
    return [BidDevice(
        device_id=int(d.id or 0), owner_id=d.owner_id, kind=d.kind,
        rated_power_kw=d.rated_power_kw, min_setpoint_kw=d.min_setpoint_kw,
        max_setpoint_kw=d.max_setpoint_kw, params=dict(d.params or {}),
        soc_pct=soc_pct.get(int(d.id or 0)),
        eligible=can_take_part(DeviceStanding(
            int(d.id or 0), d.owner_id, active=d.status == DeviceStatus.ACTIVE.value,
            opted_out=opted_out(d.preferences, at))))
        for d in rows]


def load_bid_input(
    engine: Engine, session: Session, ev: GridEvent, prog: Programme, *,
    price_yuan_per_kwh: Decimal | None = None, confidence: float | None = 0.9,
    levels: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9), history_days: int = BID_HISTORY_DAYS,
    load_forecast: OwnerForecast | None = None,
    envelope_kw: Mapping[int, np.ndarray] | None = None, scheduler_envelope: bool = False,
    soc_pct: Mapping[int, float] | None = None, calendar: DayCalendar,
    no_history_fraction_pct: float | None = None,
) -> BidInput:
    """The database edge of :func:`bidding.core.make_offer`: the event's :class:`BidInput`.

    Devices: every device of the fleet (an owner's history is the sum of all its meters), each
    marked ``eligible`` by :func:`bidding.participants.can_take_part` (active, not opted out);
    history: the last ``history_days`` days of ``telemetry`` per owner, load and site meter
    (:func:`read_owner_inputs`), other events' days skipped; ``soc_pct``: the latest polled state of charge per device id; ``calendar``: the
    configured working days (``forecasting.calendar``) the history's day types follow."""
    require_aware(ev.start, "event start")
    product = prog.check_event(ev.event_type, ev.direction, ev.start, ev.end)
    price = price_yuan_per_kwh
    if price is None:
        price = product.energy_price_yuan_per_kwh or product.price_cap_yuan_per_kwh
    if price is None:
        raise ValidationError(f"{product.key} has no energy price or cap: pass a bid price")
    devices = bid_devices(session.exec(sql_select(Device)), soc_pct or {}, ev.start)
    step = prog.interval_minutes
    skip = set(other_event_days(session, int(ev.id or 0), prog.timezone))
    owners = read_owner_inputs(engine, devices, ev.start, ev.end, history_days, skip,
                               prog.timezone, step)
    policy = None
    if no_history_fraction_pct is not None:
        policy = NoHistoryPolicy(no_history_fraction_pct, _first_reading(
            session, [d.device_id for d in devices if d.eligible]))
    return BidInput(
        event_id=int(ev.id or 0), start=ev.start, end=ev.end, direction=ev.direction,
        requested_kw=ev.requested_kw, programme=prog, product=product,
        price_yuan_per_kwh=Decimal(price), owners=tuple(owners),
        calendar=calendar, confidence=confidence, levels=tuple(levels),
        history_days=history_days, forecast=load_forecast, envelope_kw=envelope_kw,
        scheduler_envelope=scheduler_envelope, no_history=policy)


def bid_event(
    engine: Engine, event_id: int, programmes_dir: Path | str, *,
    price_yuan_per_kwh: Decimal | None = None, confidence: float | None = 0.9,
    levels: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9), history_days: int = BID_HISTORY_DAYS,
    actor: str = "cli", load_forecast: OwnerForecast | None = None,
    envelope_kw: Mapping[int, np.ndarray] | None = None, scheduler_envelope: bool = False,
    soc_pct: Mapping[int, float] | None = None, calendar: DayCalendar,
    no_history_fraction_pct: float | None = None,
) -> tuple[Bid, Offer]:
    """Build and store the VPP's offer for an event: :func:`load_bid_input` (the database in),
    :func:`bidding.core.make_offer` (the offer; its docstring gives the rules), then the
    ``bid`` row (``detail``: :meth:`Offer.to_detail` plus the programme version), its owner
    shares (:func:`share_rows`, ``bid_owner_share``) and an audit row, in one transaction. The programme version is the one in force on the event's local
    date in the programme's zone. ``calendar``: the configured working days (required: bids
    and settlements follow the same calendar). ``no_history_fraction_pct``: bid the
    no-history offer (:mod:`bidding.fallback`) when no owner has a forecast or history (None: raise
    :class:`~vpp.errors.NoHistoryError`). Raises :class:`~vpp.errors.ValidationError` when
    the offer is not admissible (e.g. below the programme's minimum)."""
    with session_scope(engine) as s:
        ev = get_event(s, event_id)
        require_aware(ev.start, "event start")
        prog = load_programme(ev.programme, programmes_dir, ev.start)
        inp = load_bid_input(
            engine, s, ev, prog, price_yuan_per_kwh=price_yuan_per_kwh, confidence=confidence,
            levels=levels, history_days=history_days, load_forecast=load_forecast,
            envelope_kw=envelope_kw, scheduler_envelope=scheduler_envelope, soc_pct=soc_pct,
            calendar=calendar, no_history_fraction_pct=no_history_fraction_pct)
        offer = make_offer(inp)
        bid = add_bid(s, Bid(event_id=event_id, declared_kw=offer.declared_kw,
                             price_yuan_per_kwh=offer.price_yuan_per_kwh, status="submitted",
                             detail={**offer.to_detail(), "programme": prog.name,
                                     "programme_version": str(prog.effective_from)}),
                      share_rows(offer))
        s.add(AuditLog(actor=actor, action="bid_submitted", subject=f"event:{ev.id}",
                       detail={"bid_id": bid.id, "declared_kw": bid.declared_kw,
                               "capped_from_kw": offer.capped_from_kw, "rule": offer.rule,
                               "price_yuan_per_kwh": str(bid.price_yuan_per_kwh)}))
        return bid, offer


def share_rows(offer: Offer) -> list[BidOwnerShare]:
    """The offer's owner shares as :class:`~vpp.models.BidOwnerShare` rows (without a bid id:
    :func:`vpp.bids.add_bid` sets it)."""
    quantile = [o.envelope_kw is None for o in offer.owners]
    return [BidOwnerShare(owner_id=o.owner_id, declared_kw=o.declared_kw, share_fraction=o.share,
                          limited_by=o.limited_by,
                          expected_response_kw=o.expected_response_kw if q else None,
                          penalty_probability=o.p_penalty if q else None,
                          envelope_kw=o.envelope_kw)
            for o, q in zip(offer.owners, quantile, strict=True)]


# --- settlement -----------------------------------------------------------------------------


def history_spans(spec: BaselineSpec) -> list[int]:
    """Days of history to read for a baseline, shortest first (see :func:`settle_from_db`)."""
    spans = [spec.lookback_days]
    if spec.method != "forecast":
        short = 2 * max(spec.n_working_days, spec.n_nonworking_days, spec.y) + 7
        if short < spec.lookback_days:
            spans.insert(0, short)
    return spans


def _no_response(dev_meter: pd.DataFrame, owner_devs: dict[int, list[int]],
                 owner_ids: list[int], owner_base: np.ndarray, spec: BaselineSpec,
                 start: pd.Timestamp, win_end: pd.Timestamp, event_days: list[date],
                 step: int, in_event: np.ndarray, calendar: DayCalendar,
                 history: pd.DataFrame | None = None) -> tuple[np.ndarray, dict[str, object]]:
    """Owners' metered kW (owners x intervals) with the "no response" rule for device-intervals
    without data (see :func:`settle_from_db`), and the record of what was filled."""
    cols = [d for o in owner_ids for d in owner_devs[o]]
    require_metered_share(np.isnan(dev_meter[cols].to_numpy()[in_event]), "event window")
    filled = dev_meter.copy()
    dev_intervals: dict[str, int] = {}
    no_own_baseline: list[int] = []
    src = history if history is not None else dev_meter
    for d in [c for c in dev_meter.columns if dev_meter[c].isna().any()]:
        try:
            b = compute_baseline(src[d], start.to_pydatetime(), win_end.to_pydatetime(), spec,
                                 event_days=event_days, interval_minutes=step, calendar=calendar)
            own = b.baseline_kw.reindex(dev_meter.index).to_numpy()
        except ValidationError:
            own = np.full(len(dev_meter.index), np.nan)
            no_own_baseline.append(int(d))
        col_filled, mask = fill_unmetered(dev_meter[d].to_numpy(), own)
        filled[d] = col_filled
        dev_intervals[str(d)] = int((dev_meter[d].isna().to_numpy() & in_event).sum())
    loads = owner_load(filled, owner_devs)
    metered, owner_mask = fill_unmetered(loads[owner_ids].to_numpy().T, owner_base)
    record: dict[str, object] = {
        "rule": "no_response",
        "device_event_intervals": {k: v for k, v in dev_intervals.items() if v},
        "devices_without_own_baseline": no_own_baseline,
        "owner_event_intervals": {str(o): int((owner_mask[i] & in_event).sum())
                                  for i, o in enumerate(owner_ids)
                                  if (owner_mask[i] & in_event).any()},
    }
    return metered, record


@dataclass
class SettleOutcome:
    event: GridEvent
    bid: Bid
    programme: Programme
    result: EventSettlement
    posted: PostedSettlement
    owner_names: dict[int, str]
    baselines: dict[int, BaselineResult]
    owner_frames: dict[int, pd.DataFrame]  # per owner: baseline/metered/declared/response kW


@dataclass(frozen=True)
class _SettleRows:
    """What settling an event reads from the database before any meter data."""
    event: GridEvent
    bid: Bid
    programme: Programme
    product: Product
    shares_kw: dict[int, float]  # owner id -> declared kW in the bid
    owner_ids: list[int]  # sorted
    owner_devs: dict[int, list[int]]  # owner id -> device ids
    names: dict[int, str]
    event_days: list[date]  # other events' local days (kept out of the baselines)


@dataclass(frozen=True)
class _SettleWindow:
    """The settled intervals, programme-local: the event plus a rebound window for the ToU
    bill (within 24 h of the start); ``index`` holds the interval starts."""
    start: pd.Timestamp
    end: pd.Timestamp  # event end
    win_end: pd.Timestamp  # window end, exclusive
    index: pd.DatetimeIndex
    in_event: np.ndarray  # bool per interval


@dataclass(frozen=True)
class _Baselined:
    """The meter history read (kW per interval) and the owners' baselines over the window."""
    meter: pd.DataFrame  # per device
    loads: pd.DataFrame  # per owner
    base_kw: np.ndarray  # owners x intervals
    baselines: dict[int, BaselineResult]


@dataclass(frozen=True)
class _Metered:
    """The owners' metered kW (owners x intervals) and what the "no response" rule filled."""
    kw: np.ndarray
    gaps: dict[str, object]


def _read_settle_rows(engine: Engine, event_id: int, programmes_dir: Path | str) -> _SettleRows:
    """The event, its bid and owner shares, programme, devices and other event days."""
    with session_scope(engine) as s:
        ev = get_event(s, event_id)
        bid = require_bid(s, event_id)
        prog = load_programme(ev.programme, programmes_dir, ev.start)
        product = prog.product(ev.event_type, ev.direction)
        shares = {sh.owner_id: sh.declared_kw for sh in owner_shares(s, int(bid.id or 0))}
        if not shares:
            raise ValidationError(f"bid {bid.id} has no owner shares")
        owner_ids = sorted(shares)
        owner_devs = owner_devices(s, owner_ids)
        owners = s.exec(sql_select(Owner).where(col(Owner.id).in_(owner_ids))).all()
        names = {o.id: o.name for o in owners if o.id is not None}  # stored rows have an id
        event_days = other_event_days(s, event_id, prog.timezone)
    return _SettleRows(ev, bid, prog, product, shares, owner_ids, owner_devs, names, event_days)


def _settle_window(rows: _SettleRows, rebound_hours: float) -> _SettleWindow:
    """The event's intervals plus ``rebound_hours`` (h) after it, within 24 h of its start (a
    baseline's limit): an event across midnight is settled whole."""
    tz = rows.programme.timezone
    start = pd.Timestamp(rows.event.start).tz_convert(tz)
    end = pd.Timestamp(rows.event.end).tz_convert(tz)
    win_end = min(end + pd.Timedelta(hours=rebound_hours), start + pd.Timedelta(days=1))
    win_end = max(win_end, end)
    index = pd.date_range(start, win_end, freq=f"{rows.programme.interval_minutes}min",
                          inclusive="left")
    return _SettleWindow(start, end, win_end, index, np.asarray(index < end))


def _baselines_of(loads: pd.DataFrame, rows: _SettleRows, win: _SettleWindow,
                  calendar: DayCalendar) -> tuple[np.ndarray, dict[int, BaselineResult]]:
    """Each owner's baseline kW over the window; :class:`SettlementError` names the owner
    whose baseline cannot be computed from ``loads``."""
    base = np.empty((len(rows.owner_ids), len(win.index)))
    baselines: dict[int, BaselineResult] = {}
    for i, o in enumerate(rows.owner_ids):
        try:
            b = compute_baseline(loads[o], win.start.to_pydatetime(), win.win_end.to_pydatetime(),
                                 rows.product.baseline, event_days=rows.event_days,
                                 interval_minutes=rows.programme.interval_minutes,
                                 calendar=calendar)
        except ValidationError as exc:
            raise SettlementError(
                f"owner {o} ({rows.names.get(o, '?')}): {exc.message}") from None
        baselines[o] = b
        base[i] = b.baseline_kw.reindex(win.index).to_numpy()
    return base, baselines


def _owner_baselines(engine: Engine, rows: _SettleRows, win: _SettleWindow,
                     calendar: DayCalendar) -> _Baselined:
    """Read the meter history and compute the baselines. Day-matching baselines use only the
    most recent eligible days: read a short history first (whole local days, so any baseline
    it yields is the one the full history would give) and fall back to the whole lookback only
    if some owner lacks days. "forecast" reads it all."""
    device_ids = [d for v in rows.owner_devs.values() for d in v]
    spans = history_spans(rows.product.baseline)
    for k, days in enumerate(spans):
        hist_start = win.start.normalize() - pd.Timedelta(days=days)
        meter = read_meter_frame(engine, device_ids, hist_start.to_pydatetime(),
                                 win.win_end.to_pydatetime(), rows.programme.interval_minutes)
        loads = owner_load(meter, rows.owner_devs)
        try:
            base, baselines = _baselines_of(loads, rows, win, calendar)
        except SettlementError:
            if k == len(spans) - 1:
                raise
            continue
        return _Baselined(meter, loads, base, baselines)
    raise AssertionError("history_spans() is never empty")  # pragma: no cover


def _metered_kw(based: _Baselined, rows: _SettleRows, win: _SettleWindow,
                unmetered: str, calendar: DayCalendar) -> _Metered:
    """The owners' metered kW over the window, with the "no response" rule if asked."""
    metered = based.loads.reindex(win.index)[rows.owner_ids].to_numpy().T
    if unmetered == "no_response" and np.isnan(metered).any():
        metered, gaps = _no_response(
            based.meter.reindex(win.index), rows.owner_devs, rows.owner_ids, based.base_kw,
            rows.product.baseline, win.start, win.win_end, rows.event_days,
            rows.programme.interval_minutes, win.in_event, calendar, history=based.meter)
        return _Metered(metered, gaps)
    return _Metered(metered, {})


def _post_settled(engine: Engine, event_id: int, rows: _SettleRows, result: EventSettlement,
                  baselines: dict[int, BaselineResult], gaps: dict[str, object],
                  actor: str) -> PostedSettlement:
    """Post the settlement (idempotent) and mark the event settled, in one transaction."""
    prog = rows.programme
    with session_scope(engine) as s:
        posted = post_settlement(
            s, event_id, result, actor=actor,
            extra={"bid_id": rows.bid.id, "programme": prog.name,
                   "programme_version": str(prog.effective_from),
                   "baselines": {str(o): {"method": b.method, "days_used": [str(d) for d in b.days_used],
                                          "adjustment_kw": b.adjustment_kw} for o, b in baselines.items()},
                   **({"unmetered": gaps} if gaps else {})},
        )
        ev2 = s.get(GridEvent, event_id)
        assert ev2 is not None
        if ev2.status != "settled":
            ev2.status = "settled"
            s.add(ev2)
    return posted


def _owner_frames(rows: _SettleRows, win: _SettleWindow, base_kw: np.ndarray,
                  metered_kw: np.ndarray) -> dict[int, pd.DataFrame]:
    """Per owner: baseline/metered/declared/response kW over the window."""
    sign = 1.0 if rows.event.direction == "peak_shaving" else -1.0
    return {
        o: pd.DataFrame({"baseline_kw": base_kw[i], "metered_kw": metered_kw[i],
                         "declared_kw": np.where(win.in_event, rows.shares_kw[o], 0.0),
                         "response_kw": sign * (base_kw[i] - metered_kw[i])}, index=win.index)
        for i, o in enumerate(rows.owner_ids)
    }


def settle_from_db(
    engine: Engine, event_id: int, programmes_dir: Path | str, fee_pct: float | Decimal, *,
    calendar: DayCalendar, rebound_hours: float = 2.0, actor: str = "cli",
    unmetered: str = "error",
) -> SettleOutcome:
    """Settle an event from its bid and the meter data, and post it (idempotent).

    ``calendar``: the configured working days (``forecasting.calendar``, the bid's): which
    history days are working days for every baseline the settlement computes.

    ``unmetered``: what a device without meter data in an interval of the settled window
    means. ``"error"`` (the default, for an operator settling by hand): the settlement is
    refused. ``"no_response"`` (the daemon): that device-interval counts as no response, its
    load taken to be its own baseline (the programme's method over its own history;
    :func:`bidding.settlement.fill_unmetered`), or, when the device has no baseline of its
    own, the owner's whole interval counts as no response; the others are settled, and the
    settlement's detail lists what was not metered (``unmetered``).

    Export: the programme's ``export_counts`` (read here, not passed in: no caller settles by
    another rule than the bid's) and the owners' site meters (:mod:`bidding.export_rule`).
    """
    if unmetered not in ("error", "no_response"):
        raise ValidationError(f"unmetered must be 'error' or 'no_response', got {unmetered!r}")
    rows = _read_settle_rows(engine, event_id, programmes_dir)
    prog, product = rows.programme, rows.product
    win = _settle_window(rows, rebound_hours)
    based = _owner_baselines(engine, rows, win, calendar)
    metered = _metered_kw(based, rows, win, unmetered, calendar)
    site = read_owner_site(engine, rows.owner_devs, win.start.to_pydatetime(),
                           win.win_end.to_pydatetime(), prog.interval_minutes)
    result = settle_event(
        index=win.index, owner_ids=rows.owner_ids, baseline_kw=based.base_kw,
        metered_kw=metered.kw, owner_declared_kw=[rows.shares_kw[o] for o in rows.owner_ids],
        price_yuan_per_kwh=rows.bid.price_yuan_per_kwh, band=prog.band,
        fee_pct=Decimal(str(fee_pct)), direction=rows.event.direction, in_event=win.in_event,
        capacity_price_yuan_per_kw=product.capacity_price_yuan_per_kw,
        price_cap_yuan_per_kwh=product.price_cap_yuan_per_kwh, tariff=prog.tariff,
        interval_minutes=prog.interval_minutes, export_counts=prog.export_counts,
        site_import_kw=site.reindex(win.index)[rows.owner_ids].to_numpy().T,
    )
    posted = _post_settled(engine, event_id, rows, result, based.baselines, metered.gaps, actor)
    return SettleOutcome(rows.event, rows.bid, prog, result, posted, rows.names, based.baselines,
                         _owner_frames(rows, win, based.base_kw, metered.kw))
