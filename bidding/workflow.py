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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from sqlalchemy import DateTime, Engine, String, func, select, type_coerce
from sqlmodel import Session, col
from sqlmodel import select as sql_select

from bidding.bid_inputs import (
    BID_HISTORY_DAYS,
    BidDevice,
    BidInput,
    NoHistoryPolicy,
    Offer,
    OwnerInput,
    owners_of,
    whole_days,
)
from bidding.core import (  # noqa: F401  # re-exported: the rule's constants live in core
    MIN_HISTORY_DAYS,
    MIN_SAME_TYPE_DAYS,
    make_offer,
    same_type_days,
    scheduler_envelopes,
)
from bidding.ledger import PostedSettlement, post_settlement
from bidding.offer import cap_owner_offers as cap_offers  # noqa: F401  # re-exported
from bidding.participants import DeviceStanding, can_take_part, opted_out
from bidding.programme import Programme, load_programme
from bidding.settlement import (
    EventSettlement,
    SettlementError,
    fill_unmetered,
    require_metered_share,
    settle_event,
)
from forecasting.baselines import BaselineResult, BaselineSpec, compute_baseline
from forecasting.calendars import ChineseCalendar, DayCalendar
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
    table_of,
)
from vpp.timeutil import require_aware


def read_meter_frame(
    engine: Engine, device_ids: Sequence[int], start: datetime, end: datetime,
    interval_minutes: int = 15,
) -> pd.DataFrame:
    """Mean kW per (interval start, device) for ``start <= ts < end``; NaN where no reading.

    Timestamps are fetched raw and parsed by pandas in one vectorised call (the per-row
    ``AwareDateTime`` conversion dominated the read otherwise); the stored values are UTC.
    """
    t = table_of(TelemetryReading)
    ids = list(device_ids)
    sqlite = engine.dialect.name == "sqlite"
    ts_col = type_coerce(t.c.ts, String) if sqlite else type_coerce(t.c.ts, DateTime(timezone=True))
    dev: list = []
    stamps: list = []
    power: list = []
    with engine.connect() as conn:
        for k in range(0, len(ids), 900):  # stay under bound-parameter limits
            stmt = select(t.c.device_id, ts_col, t.c.power_kw).where(
                t.c.device_id.in_(ids[k:k + 900]), t.c.ts >= start, t.c.ts < end)
            for d, ts, p in conn.execute(stmt):
                dev.append(d)
                stamps.append(ts)
                power.append(p)
    grid = pd.date_range(start, end, freq=f"{interval_minutes}min", inclusive="left")
    if not dev:
        return pd.DataFrame(np.nan, index=grid, columns=ids)
    when = pd.to_datetime(pd.Series(stamps), utc=True, format="ISO8601")
    frame = pd.DataFrame({
        "device_id": np.asarray(dev, dtype=np.int64),
        "ts": when.dt.floor(f"{interval_minutes}min"),
        "power_kw": np.asarray(power, dtype=float),
    })
    wide = frame.groupby(["ts", "device_id"])["power_kw"].mean().unstack("device_id")
    wide.index = wide.index.tz_convert(grid.tz)
    return wide.reindex(index=grid, columns=ids)


def owner_load(meter: pd.DataFrame, owner_devices: dict[int, list[int]]) -> pd.DataFrame:
    """Sum device columns per owner; NaN where any of the owner's devices is missing."""
    owner_of = np.array([o for o, devs in owner_devices.items() for _ in devs])
    cols = [d for devs in owner_devices.values() for d in devs]
    sub = meter[cols].to_numpy()
    order = list(owner_devices)
    pos = {o: i for i, o in enumerate(order)}
    group = np.array([pos[o] for o in owner_of], dtype=np.int64)
    # device -> owner indicator: sums per owner as one sparse matrix product
    g = csr_matrix((np.ones(len(group)), (np.arange(len(group)), group)),
                   shape=(len(group), len(order)))
    nan = np.isnan(sub)
    out = np.asarray(g.T.dot(np.where(nan, 0.0, sub).T).T)
    missing = np.asarray(g.T.dot(nan.T.astype(np.float64)).T) > 0
    out[missing] = np.nan
    return pd.DataFrame(out, index=meter.index, columns=order)


def _owner_devices(session: Session, owner_ids: Sequence[int]) -> dict[int, list[int]]:
    devs = session.exec(sql_select(Device).where(col(Device.owner_id).in_(list(owner_ids)))).all()
    out: dict[int, list[int]] = {o: [] for o in owner_ids}
    for d in devs:
        assert d.id is not None, "device is stored"
        out[d.owner_id].append(d.id)
    empty = [o for o, v in out.items() if not v]
    if empty:
        raise ValidationError(f"owner(s) {empty} in the bid have no devices")
    return out


def _event_days(session: Session, exclude_id: int, tz: str) -> list[date]:
    """Local dates of every other event (any programme, any status): not baseline days."""
    rows = session.exec(sql_select(GridEvent.id, GridEvent.start)).all()
    return sorted({start.astimezone(ZoneInfo(tz)).date() for i, start in rows if i != exclude_id})


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


def load_bid_input(
    engine: Engine, session: Session, ev: GridEvent, prog: Programme, *,
    price_yuan_per_kwh: Decimal | None = None, confidence: float | None = 0.9,
    levels: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9), history_days: int = BID_HISTORY_DAYS,
    load_forecast: OwnerForecast | None = None,
    envelope_kw: Mapping[int, np.ndarray] | None = None, scheduler_envelope: bool = False,
    soc_pct: Mapping[int, float] | None = None, calendar: DayCalendar | None = None,
    no_history_fraction_pct: float | None = None,
) -> BidInput:
    """The database edge of :func:`bidding.core.make_offer`: the event's :class:`BidInput`.

    Devices: every device of the fleet (an owner's history is the sum of all its meters), each
    marked ``eligible`` by :func:`bidding.participants.can_take_part` (active, not opted out);
    history: the last ``history_days`` days of ``telemetry`` (:func:`read_meter_frame`, per
    owner :func:`owner_load`, then :func:`bidding.bid_inputs.whole_days`), other events' days
    skipped; ``soc_pct``: the latest polled state of charge per device id."""
    require_aware(ev.start, "event start")
    product = prog.check_event(ev.event_type, ev.direction, ev.start, ev.end)
    price = price_yuan_per_kwh
    if price is None:
        price = product.energy_price_yuan_per_kwh or product.price_cap_yuan_per_kwh
    if price is None:
        raise ValidationError(f"{product.key} has no energy price or cap: pass a bid price")
    rows = list(session.exec(sql_select(Device)))
    soc = soc_pct or {}
    devices = [BidDevice(
        device_id=int(d.id or 0), owner_id=d.owner_id, kind=d.kind,
        rated_power_kw=d.rated_power_kw, min_setpoint_kw=d.min_setpoint_kw,
        max_setpoint_kw=d.max_setpoint_kw, params=dict(d.params or {}),
        soc_pct=soc.get(int(d.id or 0)),
        eligible=can_take_part(DeviceStanding(
            int(d.id or 0), d.owner_id, active=d.status == DeviceStatus.ACTIVE.value,
            opted_out=opted_out(d.preferences))))
        for d in rows]
    by_owner = owners_of(devices)
    step = prog.interval_minutes
    skip = set(_event_days(session, int(ev.id or 0), prog.timezone))
    owners = []
    if devices:
        meter = read_meter_frame(engine, [d.device_id for d in devices],
                                 ev.start - timedelta(days=history_days), ev.start, step)
        loads = owner_load(meter, {o: [d.device_id for d in ds] for o, ds in by_owner.items()})
        owners = [OwnerInput(o, tuple(ds), whole_days(
            loads[o], ev.start, ev.end, history_days, skip, prog.timezone, step))
            for o, ds in by_owner.items()]
    policy = None
    if no_history_fraction_pct is not None:
        policy = NoHistoryPolicy(no_history_fraction_pct, _first_reading(
            session, [d.device_id for d in devices if d.eligible]))
    return BidInput(
        event_id=int(ev.id or 0), start=ev.start, end=ev.end, direction=ev.direction,
        requested_kw=ev.requested_kw, programme=prog, product=product,
        price_yuan_per_kwh=Decimal(price), owners=tuple(owners),
        calendar=calendar or ChineseCalendar(), confidence=confidence, levels=tuple(levels),
        history_days=history_days, forecast=load_forecast, envelope_kw=envelope_kw,
        scheduler_envelope=scheduler_envelope, no_history=policy)


def bid_event(
    engine: Engine, event_id: int, programmes_dir: Path | str, *,
    price_yuan_per_kwh: Decimal | None = None, confidence: float | None = 0.9,
    levels: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9), history_days: int = BID_HISTORY_DAYS,
    actor: str = "cli", load_forecast: OwnerForecast | None = None,
    envelope_kw: Mapping[int, np.ndarray] | None = None, scheduler_envelope: bool = False,
    soc_pct: Mapping[int, float] | None = None, calendar: DayCalendar | None = None,
    no_history_fraction_pct: float | None = None,
) -> tuple[Bid, Offer]:
    """Build and store the VPP's offer for an event: :func:`load_bid_input` (the database in),
    :func:`bidding.core.make_offer` (the offer; its docstring gives the rules), then the
    ``bid`` row (``detail``: :meth:`Offer.to_detail` plus the programme version), its owner
    shares (:func:`share_rows`, ``bid_owner_share``) and an audit row, in one transaction. The programme version is the one in force on the event's local
    date in the programme's zone. ``no_history_fraction_pct``: bid the no-history offer
    (:mod:`bidding.fallback`) when no owner has a forecast or history (None: raise
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
                 step: int, in_event: np.ndarray,
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
                                 event_days=event_days, interval_minutes=step)
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


def settle_from_db(
    engine: Engine, event_id: int, programmes_dir: Path | str, fee_pct: float | Decimal, *,
    rebound_hours: float = 2.0, actor: str = "cli", unmetered: str = "error",
) -> SettleOutcome:
    """Settle an event from its bid and the meter data, and post it (idempotent).

    ``unmetered``: what a device without meter data in an interval of the settled window
    means. ``"error"`` (the default, for an operator settling by hand): the settlement is
    refused. ``"no_response"`` (the daemon): that device-interval counts as no response, its
    load taken to be its own baseline (the programme's method over its own history;
    :func:`bidding.settlement.fill_unmetered`), or, when the device has no baseline of its
    own, the owner's whole interval counts as no response; the others are settled, and the
    settlement's detail lists what was not metered (``unmetered``).
    """
    if unmetered not in ("error", "no_response"):
        raise ValidationError(f"unmetered must be 'error' or 'no_response', got {unmetered!r}")
    with session_scope(engine) as s:
        ev = get_event(s, event_id)
        bid = require_bid(s, event_id)
        prog = load_programme(ev.programme, programmes_dir, ev.start)
        product = prog.product(ev.event_type, ev.direction)
        shares = {sh.owner_id: sh.declared_kw for sh in owner_shares(s, int(bid.id or 0))}
        if not shares:
            raise ValidationError(f"bid {bid.id} has no owner shares")
        owner_ids = sorted(shares)
        owner_devs = _owner_devices(s, owner_ids)
        owners = s.exec(sql_select(Owner).where(col(Owner.id).in_(owner_ids))).all()
        names = {o.id: o.name for o in owners if o.id is not None}  # stored rows have an id
        event_days = _event_days(s, event_id, prog.timezone)
    step = prog.interval_minutes
    spec = product.baseline
    tz = prog.timezone
    start = pd.Timestamp(ev.start).tz_convert(tz)
    end = pd.Timestamp(ev.end).tz_convert(tz)
    # settle window: the event plus a rebound window for the ToU bill (same local day)
    midnight = (start + pd.Timedelta(days=1)).normalize()
    win_end = min(end + pd.Timedelta(hours=rebound_hours), midnight) if rebound_hours else end
    index = pd.date_range(start, win_end, freq=f"{step}min", inclusive="left")
    device_ids = [d for v in owner_devs.values() for d in v]
    # Day-matching baselines use only the most recent eligible days: read a short history first
    # (whole local days, so any baseline it yields is the one the full history would give) and
    # fall back to the whole lookback only if some owner lacks days. "forecast" reads it all.
    spans = history_spans(spec)
    for k, days in enumerate(spans):
        hist_start = start.normalize() - pd.Timedelta(days=days)
        meter = read_meter_frame(engine, device_ids, hist_start.to_pydatetime(),
                                 win_end.to_pydatetime(), step)
        loads = owner_load(meter, owner_devs)
        base = np.empty((len(owner_ids), len(index)))
        baselines: dict[int, BaselineResult] = {}
        try:
            for i, o in enumerate(owner_ids):
                try:
                    b = compute_baseline(loads[o], start.to_pydatetime(), win_end.to_pydatetime(),
                                         spec, event_days=event_days, interval_minutes=step)
                except ValidationError as exc:
                    raise SettlementError(
                        f"owner {o} ({names.get(o, '?')}): {exc.message}") from None
                baselines[o] = b
                base[i] = b.baseline_kw.reindex(index).to_numpy()
            break
        except SettlementError:
            if k == len(spans) - 1:
                raise
    metered = loads.reindex(index)[owner_ids].to_numpy().T
    in_event = np.asarray(index < end)
    gaps: dict[str, object] = {}
    if unmetered == "no_response" and np.isnan(metered).any():
        metered, gaps = _no_response(meter.reindex(index), owner_devs, owner_ids, base, spec,
                                     start, win_end, event_days, step, in_event, history=meter)
    result = settle_event(
        index=index, owner_ids=owner_ids, baseline_kw=base, metered_kw=metered,
        owner_declared_kw=[shares[o] for o in owner_ids],
        price_yuan_per_kwh=bid.price_yuan_per_kwh, band=prog.band, fee_pct=Decimal(str(fee_pct)),
        direction=ev.direction, in_event=in_event,
        capacity_price_yuan_per_kw=product.capacity_price_yuan_per_kw,
        price_cap_yuan_per_kwh=product.price_cap_yuan_per_kwh, tariff=prog.tariff,
        interval_minutes=step,
    )
    with session_scope(engine) as s:
        posted = post_settlement(
            s, event_id, result, actor=actor,
            extra={"bid_id": bid.id, "programme": prog.name,
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
    sign = 1.0 if ev.direction == "peak_shaving" else -1.0
    frames = {
        o: pd.DataFrame({"baseline_kw": base[i], "metered_kw": metered[i],
                         "declared_kw": np.where(in_event, shares[o], 0.0),
                         "response_kw": sign * (base[i] - metered[i])}, index=index)
        for i, o in enumerate(owner_ids)
    }
    return SettleOutcome(ev, bid, prog, result, posted, names, baselines, frames)
