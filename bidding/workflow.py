"""The database edge of bidding and settlement: read meters, bid an event, settle it.

Pure functions (:mod:`bidding.offer`, :mod:`bidding.settlement`, :mod:`forecasting.baselines`)
do the work; this module only reads rows, shapes arrays and writes results in one transaction.

Meter data is the ``telemetry`` table: readings are averaged per market interval (an interval
with no reading from a device is missing). An owner's load is the sum over their devices; an
interval where any of their devices is missing is missing for the owner (history days with gaps
are skipped by the baseline; gaps inside the settled window are an error).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from sqlalchemy import DateTime, Engine, String, select, type_coerce
from sqlmodel import Session
from sqlmodel import select as sql_select

from bidding.capability import device_capability_kw
from bidding.ledger import PostedSettlement, post_settlement
from bidding.offer import (
    VppOffer,
    aggregate_offers,
    deliverable_quantiles,
    owner_offer,
)
from bidding.offer import cap_owner_offers as cap_offers
from bidding.programme import Programme, load_programme
from bidding.settlement import (
    EventSettlement,
    SettlementError,
    fill_unmetered,
    require_metered_share,
    settle_event,
)
from forecasting.baselines import BaselineResult, BaselineSpec, compute_baseline, day_type_name
from forecasting.calendars import ChineseCalendar, DayCalendar
from vpp.bids import require_bid
from vpp.db import session_scope
from vpp.errors import NoHistoryError, NotFoundError, ValidationError
from vpp.models import AuditLog, Bid, Device, GridEvent, Owner, TelemetryReading
from vpp.timeutil import require_aware


def read_meter_frame(
    engine: Engine, device_ids: Sequence[int], start: datetime, end: datetime,
    interval_minutes: int = 15,
) -> pd.DataFrame:
    """Mean kW per (interval start, device) for ``start <= ts < end``; NaN where no reading.

    Timestamps are fetched raw and parsed by pandas in one vectorised call (the per-row
    ``AwareDateTime`` conversion dominated the read otherwise); the stored values are UTC.
    """
    t = TelemetryReading.__table__
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
    devs = session.exec(sql_select(Device).where(Device.owner_id.in_(list(owner_ids)))).all()  # type: ignore[attr-defined]
    out: dict[int, list[int]] = {o: [] for o in owner_ids}
    for d in devs:
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


MIN_SAME_TYPE_DAYS = 3
"""Fewest history days of the event day's type (working / non-working) that the empirical
fallback of :func:`bid_event` takes its quantiles over; with fewer it uses all history days."""


MIN_HISTORY_DAYS = MIN_SAME_TYPE_DAYS
"""Fewest whole days of metered history an owner without a forecast is bid from: quantiles of
one or two days have no spread to speak of (a new fleet's second day would otherwise declare
its whole envelope as certain). With fewer, the owner is not bid from history; when no owner
has them, :class:`~vpp.errors.NoHistoryError` (the daemon then bids
:func:`bidding.fallback.no_history_offer`)."""


def same_type_days(days: Sequence[date], event_date: date, calendar: DayCalendar,
                   min_days: int = MIN_SAME_TYPE_DAYS) -> tuple[list[int], str]:
    """Which of ``days`` (local dates of usable history) to take the bid's load quantiles over.

    The days of the event day's type in ``calendar`` (working vs non-working; for China
    statutory holidays are non-working and adjusted working weekends are working, as in
    :func:`forecasting.baselines.compute_baseline`'s ``similar_days``), when there are at least
    ``min_days`` of them; otherwise all of ``days``. Mixing the types makes the quantiles'
    low end the other type's load: for an office, a weekend's near-zero load would cap the
    confident offer of a working day at 0. ``min_days`` = 3 is the fewest days the
    similar-days baseline averages (``BaselineSpec.n_nonworking_days``); below it the tail
    quantiles (0.1, 0.9) of a handful of days say little. With the default 10 days of history a
    Monday after a plain week has 6 working days (after National Day, 3); a Saturday after a
    plain week has only 2 non-working days and uses all days (wider quantiles: a cautious offer).
    Returns the positions into ``days`` and a label for ``Bid.detail.sources``.
    """
    work = calendar.is_workday([event_date, *days])
    event_work = bool(work[0])
    same = [i for i, w in enumerate(work[1:]) if bool(w) == event_work]
    if len(same) >= min_days:
        return same, f"{len(same)} {day_type_name(event_work)}s (the event day's type)"
    return list(range(len(days))), (
        f"{len(days)} days of any type (only {len(same)} {day_type_name(event_work)}s, "
        f"fewer than {min_days})")


@dataclass
class OwnerForecast:
    """Forecast load quantiles per owner: ``values_kw[owner]`` is (levels, times) kW on ``index``.

    Built by the daemon from its per-site :class:`forecasting.forecast.LoadForecast` (an owner's
    quantiles are the sum of its sites' quantiles: comonotonic, so a wider band than the true
    one for the sum, which errs on the cautious side for the offer).
    """

    levels: Sequence[float]
    index: pd.DatetimeIndex
    values_kw: dict[int, np.ndarray]

    def window(self, owner_id: int, window: pd.DatetimeIndex) -> np.ndarray | None:
        """(levels, len(window)) for the owner, or None if the forecast does not cover it."""
        v = self.values_kw.get(owner_id)
        if v is None or len(window) == 0:
            return None
        pos = self.index.get_indexer(window)
        if (pos < 0).any():
            return None
        out = np.asarray(v, dtype=float)[:, pos]
        return out if np.isfinite(out).all() else None

    def median(self, q: np.ndarray) -> np.ndarray:
        lv = np.asarray(self.levels, dtype=float)
        return np.array([np.interp(0.5, lv, q[:, t]) for t in range(q.shape[1])])


def scheduler_envelopes(
    devices: Sequence[Device], forecast: OwnerForecast, window: pd.DatetimeIndex,
    confidence: float = 0.9, *, soc_pct: Mapping[int, float] | None = None,
    interval_minutes: int = 15,
) -> dict[int, np.ndarray]:
    """Per owner, the scheduler's flexibility envelope (kW per interval of ``window``).

    Calls :func:`vpp.scheduler.envelope.flexibility_envelope` for each owner's devices, with the
    owner's forecast quantiles split over its devices by rated power, held for the whole
    event. Batteries without a known state of charge (``soc_pct``) and EV chargers (no session
    data here) contribute nothing: conservative. Owners the forecast does not cover are left
    out (the caller falls back to device capability for them).
    """
    from vpp.device_kinds import DeviceKind, parse_params
    from vpp.scheduler.envelope import flexibility_envelope
    from vpp.scheduler.inputs import FleetDevice

    soc = soc_pct or {}
    by_owner: dict[int, list[Device]] = {}
    for d in devices:
        by_owner.setdefault(d.owner_id, []).append(d)
    out: dict[int, np.ndarray] = {}
    for o, ds in by_owner.items():
        q = forecast.window(o, window)
        if q is None:
            continue
        rated = np.array([max(d.rated_power_kw, 0.0) for d in ds])
        share = rated / rated.sum() if rated.sum() > 0 else np.full(len(ds), 1 / len(ds))
        fleet = []
        for d in ds:
            kind = DeviceKind(d.kind)
            fleet.append(FleetDevice(
                device_id=int(d.id or 0), kind=kind, rated_power_kw=d.rated_power_kw,
                min_setpoint_kw=d.min_setpoint_kw, max_setpoint_kw=d.max_setpoint_kw,
                params=parse_params(kind, d.params),  # type: ignore[arg-type]  # per-kind model
                owner=str(o), soc_pct=soc.get(int(d.id or 0)),
            ))
        bq = np.maximum(q, 0.0)[:, None, :] * share[None, :, None]
        env = flexibility_envelope(fleet, bq, list(forecast.levels), confidence,
                                   sustain_intervals=len(window),
                                   interval_minutes=interval_minutes)
        out[o] = env.reduction_kw
    return out


def bid_event(
    engine: Engine, event_id: int, programmes_dir: Path | str, *,
    price_yuan_per_kwh: Decimal | None = None, confidence: float | None = 0.9,
    levels: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9), history_days: int = 10,
    actor: str = "cli", load_forecast: OwnerForecast | None = None,
    envelope_kw: Mapping[int, np.ndarray] | None = None, scheduler_envelope: bool = False,
    soc_pct: Mapping[int, float] | None = None, calendar: DayCalendar | None = None,
) -> tuple[Bid, VppOffer]:
    """Build and store the VPP's offer for an event.

    Load quantiles: from ``load_forecast`` (the daemon's forecaster, per owner, covering the
    event) when given and complete for an owner; otherwise (labelled ``empirical`` in the bid)
    the empirical quantiles (kW per interval) of the owner's load in the event window over the
    last ``history_days`` calendar days with complete data, other events' days skipped (as for
    the settlement baseline), and of those only the days of the event day's type in
    ``calendar`` (default: Chinese working days) when there are enough of them
    (:func:`same_type_days`; the days used are in ``sources[owner]["history"]``).
    Envelope: ``envelope_kw[owner]`` (the scheduler's
    :func:`vpp.scheduler.envelope.flexibility_envelope`, see :func:`scheduler_envelopes`) when
    given, or computed here when ``scheduler_envelope`` is set, over ``load_forecast``'s quantiles
    or, without a forecast, over the empirical ones (batteries at their ``soc_pct[device]``, the
    latest polled state of charge);
    otherwise (labelled ``device capability (fallback)``) each owner's dependable capability
    (:func:`device_capability_kw`). The declared capacity is capped at the grid's
    ``requested_kw`` (owners scaled down pro rata; ``capped_from_kw`` in the bid detail).
    The programme version is the one in force on the event's local date in the programme's
    zone (:func:`bidding.programme.load_programme` with the aware start).
    Raises :class:`~vpp.errors.NoHistoryError` when no owner has a forecast or
    :data:`MIN_HISTORY_DAYS` whole days of history for the window (owners with fewer are not
    bid), and :class:`~vpp.errors.ValidationError` when the offer is not
    admissible (e.g. below the programme's minimum).
    """
    with session_scope(engine) as s:
        ev = get_event(s, event_id)
        require_aware(ev.start, "event start")
        prog = load_programme(ev.programme, programmes_dir, ev.start)
        hours = (ev.end - ev.start) / timedelta(hours=1)
        product = prog.check_event(ev.event_type, ev.direction, ev.start, ev.end)
        devices = s.exec(sql_select(Device)).all()
        skip_days = set(_event_days(s, event_id, prog.timezone))
        owners: dict[int, list[Device]] = {}
        for d in devices:
            owners.setdefault(d.owner_id, []).append(d)
        price = price_yuan_per_kwh
        if price is None:
            price = product.energy_price_yuan_per_kwh or product.price_cap_yuan_per_kwh
        if price is None:
            raise ValidationError(f"{product.key} has no energy price or cap: pass a bid price")
        step = prog.interval_minutes
        start_hist = ev.start - timedelta(days=history_days)
        ids = [d.id for d in devices]
        meter = read_meter_frame(engine, ids, start_hist, ev.start, step)
        loads = owner_load(meter, {o: [d.id for d in ds] for o, ds in owners.items()})
        n_t = int(round(hours * 60 / step))
        sources: dict[str, dict[str, str]] = {}
        offers = []
        normal_load = 0.0
        window = pd.date_range(ev.start, ev.end, freq=f"{step}min", inclusive="left")
        quantiles: dict[int, tuple[list[float], np.ndarray, np.ndarray, str]] = {}
        zone = ZoneInfo(prog.timezone)
        cal = calendar or ChineseCalendar()
        event_date = ev.start.astimezone(zone).date()
        for o in sorted(owners):
            days: list[np.ndarray] = []
            dates: list[date] = []
            for k in range(1, history_days + 1):
                day_start = ev.start - timedelta(days=k)
                if day_start.astimezone(zone).date() in skip_days:
                    continue
                w = loads[o].loc[day_start: ev.end - timedelta(days=k) - timedelta(minutes=step)]
                if len(w) == n_t and w.notna().all():
                    days.append(w.to_numpy())
                    dates.append(day_start.astimezone(zone).date())
            fq = load_forecast.window(o, window) if load_forecast is not None else None
            if fq is not None:
                quantiles[o] = (list(load_forecast.levels), load_forecast.median(fq), fq,  # type: ignore[union-attr]
                                "forecast")
            elif 0 < len(days) < MIN_HISTORY_DAYS:  # a spread over one or two days says nothing
                sources[str(o)] = {"history": f"only {len(days)} whole day(s), fewer than "
                                              f"{MIN_HISTORY_DAYS}: not bid"}
            elif days:
                use, rule = same_type_days(dates, event_date, cal)
                hist = np.vstack([days[i] for i in use])
                quantiles[o] = (list(levels), hist.mean(axis=0),
                                np.quantile(hist, levels, axis=0), "empirical (fallback)")
                sources[str(o)] = {"history": f"{rule}: " + ", ".join(
                    dates[i].isoformat() for i in sorted(use, key=lambda i: dates[i]))}
        if not quantiles:
            raise NoHistoryError(
                f"event {event_id}: no owner has a load forecast or {MIN_HISTORY_DAYS} whole days "
                f"of metered history (other events' days skipped) in the last {history_days} "
                "days for the window")
        if envelope_kw is None and scheduler_envelope:
            # the scheduler's envelope over the forecast quantiles, or, with no forecast, over the
            # empirical ones: a device can only shed load it actually draws in the window (an
            # office closed in the evening offers nothing), which nameplate capability ignores
            env_fc = load_forecast if load_forecast is not None else OwnerForecast(
                levels=list(levels), index=window,
                values_kw={o: q[2] for o, q in quantiles.items()})
            try:
                envelope_kw = scheduler_envelopes(
                    devices, env_fc, window, confidence or 0.9, soc_pct=soc_pct,
                    interval_minutes=step)
            except (ValidationError, ImportError) as exc:  # the scheduler is optional here
                sources["envelope_error"] = {"message": str(exc)}
        for o, ds in sorted(owners.items()):
            if o not in quantiles:
                continue
            lv, base, lq, qsrc = quantiles[o]
            normal_load += float(base.mean())
            env = None if envelope_kw is None else envelope_kw.get(o)
            if env is not None and len(env) == n_t:
                flex_t = np.maximum(np.asarray(env, dtype=float), 0.0)
                esrc = "scheduler envelope"
            else:
                flex_t = np.full(n_t, sum(device_capability_kw(d, hours) for d in ds))
                esrc = "device capability (fallback)"
            sources[str(o)] = {"quantiles": qsrc, "envelope": esrc, **sources.get(str(o), {})}
            rq = deliverable_quantiles(flex_t, base, lq, ev.direction)
            offers.append(owner_offer(o, lv, rq, flex_t, prog.band,
                                      Decimal(price), confidence=confidence))
        offers, capped_from = cap_offers(offers, ev.requested_kw)
        offer = aggregate_offers(
            offers, product, Decimal(price), min_declared_kw=prog.rules.min_declared_kw,
            normal_load_kw=normal_load or None,
            min_share_of_normal_load_pct=prog.rules.min_share_of_normal_load_pct,
        )
        bid = Bid(event_id=ev.id, declared_kw=offer.declared_kw,
                  price_yuan_per_kwh=offer.price_yuan_per_kwh,
                  detail={**offer.to_detail(), "programme": prog.name,
                          "programme_version": str(prog.effective_from),
                          "requested_kw": ev.requested_kw, "capped_from_kw": capped_from,
                          "sources": sources})
        s.add(bid)
        s.flush()
        s.add(AuditLog(actor=actor, action="bid_submitted", subject=f"event:{ev.id}",
                       detail={"bid_id": bid.id, "declared_kw": bid.declared_kw,
                               "capped_from_kw": capped_from,
                               "price_yuan_per_kwh": str(bid.price_yuan_per_kwh)}))
        return bid, offer


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
        shares = {int(o["owner_id"]): float(o["declared_kw"]) for o in bid.detail.get("owners", [])}
        if not shares:
            raise ValidationError(f"bid {bid.id} has no owner shares")
        owner_ids = sorted(shares)
        owner_devs = _owner_devices(s, owner_ids)
        names = {o.id: o.name for o in s.exec(sql_select(Owner).where(Owner.id.in_(owner_ids)))}  # type: ignore[union-attr]
        event_days = _event_days(s, ev.id, prog.timezone)
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
