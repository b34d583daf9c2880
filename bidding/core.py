"""The offer for a grid call, from a :class:`~bidding.bid_inputs.BidInput`: one pure function
for the daemon and the season simulator.

:func:`make_offer`:

1. **Load quantiles per owner** (:func:`owner_quantiles`): the forecaster's (``forecast``) where
   it covers the event for the owner; otherwise (labelled ``empirical (fallback)``) the
   empirical quantiles at ``levels`` of the owner's history days (:func:`bidding.bid_inputs.whole_days`),
   of those only the days of the event day's type in the calendar when there are
   :data:`MIN_SAME_TYPE_DAYS` of them (:func:`same_type_days`). An owner with fewer than
   :data:`MIN_HISTORY_DAYS` whole days and no forecast is not bid (a spread over one or two
   days says nothing).
2. **Envelope per owner**: ``envelope_kw`` when given; else, with ``scheduler_envelope``, the
   scheduler's flexibility envelope over those quantiles (:func:`scheduler_envelopes`,
   batteries at their polled state of charge); else (or where the scheduler cannot compute it)
   the devices' dependable capability (:func:`bidding.capability.device_capability_kw`).
   Valley filling: the envelope of the rise above the load (the scheduler's
   ``direction_sign = -1``; else :func:`bidding.fallback.raise_kw`), and the deliverable
   quantiles with the sign reversed (:func:`bidding.offer.deliverable_quantiles`).
3. **The export rule** (:func:`bidding.export_rule.deliverable_cap_kw`, the settlement's rule
   seen ahead): unless the programme counts export, a peak-shaving owner's envelope is capped
   per interval by its metering point's import at baseline (site meters standing in for the
   devices that read one: :func:`bidding.meter_frame.site_import_by_owner`; the mean of its
   history days, :func:`site_baseline_kw`), or without that history by its expected load.
4. **The offer rule** (:mod:`bidding.offer`, the band newsvendor) per owner, capped at the
   grid's request (pro rata), checked against the programme's minimums.
5. **No history** (no owner has quantiles): with a ``no_history`` policy, the fallback offer
   (:func:`bidding.fallback.no_history_offer`, a declared share of what the eligible devices
   hold for the whole event, at most the export rule's cap on their last metered interval,
   with the rule and the reason; :class:`NoHistoryOfferRefused`
   when it is not admissible); without one, :class:`~vpp.errors.NoHistoryError`.

Raises :class:`~vpp.errors.ValidationError` when an estimate exists but yields no admissible
offer (the caller declines the call: nameplate is never declared instead). No database, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from bidding.bid_inputs import BidDevice, BidInput, Offer, OwnerInput, OwnerShare
from bidding.capability import device_capability_kw
from bidding.export_rule import can_export, deliverable_cap_kw
from bidding.fallback import history_gap, no_history_offer, raise_kw
from bidding.offer import (
    VppOffer,
    aggregate_offers,
    cap_owner_offers,
    deliverable_quantiles,
    owner_offer,
)
from bidding.programme import Product
from bidding.rules import Direction
from forecasting.baselines import day_type_name
from forecasting.calendars import DayCalendar
from forecasting.owners import OwnerForecast
from vpp.calendar import MarketCalendar
from vpp.errors import NoHistoryError, ValidationError


class NoHistoryOfferRefused(ValidationError):
    """No history to bid from, and the no-history offer is not admissible either: the message
    gives both reasons."""


def direction_sign(direction: str) -> float:
    """+1 for peak shaving (response = baseline - load), -1 for valley filling (load -
    baseline): the scheduler's ``direction_sign``."""
    if direction not in (d.value for d in Direction):
        raise ValidationError(f"unknown direction {direction!r}")
    return 1.0 if direction == Direction.PEAK_SHAVING.value else -1.0


MIN_SAME_TYPE_DAYS = 3
"""Fewest history days of the event day's type (working / non-working) that the empirical
fallback takes its quantiles over; with fewer it uses all history days."""

MIN_HISTORY_DAYS = MIN_SAME_TYPE_DAYS
"""Fewest whole days of metered history an owner without a forecast is bid from: quantiles of
one or two days have no spread to speak of (a new fleet's second day would otherwise declare
its whole envelope as certain)."""


def bid_price(product: Product, price_cap_yuan_per_kwh: Decimal | None = None) -> Decimal:
    """What we ask (yuan/kWh): the programme's fixed price, else its cap, lowered to the
    grid's cap for the call (``price_cap_yuan_per_kwh``, None: none)."""
    if product.energy_price_yuan_per_kwh is not None:
        return Decimal(product.energy_price_yuan_per_kwh)
    caps = [c for c in (product.price_cap_yuan_per_kwh, price_cap_yuan_per_kwh) if c is not None]
    if not caps:
        raise ValidationError(f"{product.key} has no energy price or cap to bid at")
    return Decimal(min(caps))


def same_type_days(days: Sequence[date], event_date: date, calendar: DayCalendar,
                   min_days: int = MIN_SAME_TYPE_DAYS) -> tuple[list[int], str]:
    """Which of ``days`` (local dates of usable history) to take the load quantiles over.

    The days of the event day's type in ``calendar`` (working vs non-working; for China
    statutory holidays are non-working and adjusted working weekends are working) when there
    are at least ``min_days`` of them; otherwise all of ``days``. Mixing the types makes the
    quantiles' low end the other type's load (an office's weekend would cap a working day's
    confident offer at 0). ``min_days`` = 3 is the fewest days the similar-days baseline
    averages. Returns the positions into ``days`` and a label for the bid's sources.
    """
    work = calendar.is_workday([event_date, *days])
    event_work = bool(work[0])
    same = [i for i, w in enumerate(work[1:]) if bool(w) == event_work]
    if len(same) >= min_days:
        return same, f"{len(same)} {day_type_name(event_work)}s (the event day's type)"
    return list(range(len(days))), (
        f"{len(days)} days of any type (only {len(same)} {day_type_name(event_work)}s, "
        f"fewer than {min_days})")


def scheduler_envelopes(
    devices: Sequence[BidDevice], forecast: OwnerForecast, window: pd.DatetimeIndex,
    confidence: float = 0.9, *, soc_pct: Mapping[int, float] | None = None,
    interval_minutes: int, direction: str = Direction.PEAK_SHAVING.value,
) -> dict[int, np.ndarray]:
    """Per owner, the scheduler's flexibility envelope (kW per ``interval_minutes`` interval of
    ``window``).

    :func:`vpp.scheduler.envelope.flexibility_envelope` over each owner's devices, with the
    owner's forecast quantiles split over its devices by rated power, held for the whole event.
    Batteries without a known state of charge (``soc_pct``, else the device's own) and EV
    chargers (no session data here) contribute nothing: conservative. Owners the forecast does
    not cover are left out (the caller falls back to device capability for them).
    ``direction``: valley filling takes the envelope of the rise above the load (the
    up-flexibility: batteries' room to charge, each load at its high quantile) instead.
    """
    from vpp.device_kinds import DeviceKind, parse_params
    from vpp.scheduler.envelope import flexibility_envelope
    from vpp.scheduler.inputs import FleetDevice

    soc = soc_pct or {}
    by_owner: dict[int, list[BidDevice]] = {}
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
            did = int(d.id or 0)
            fleet.append(FleetDevice(
                device_id=did, kind=kind, rated_power_kw=d.rated_power_kw,
                min_setpoint_kw=d.min_setpoint_kw, max_setpoint_kw=d.max_setpoint_kw,
                params=parse_params(kind, d.params),
                owner=str(o), soc_pct=soc.get(did, getattr(d, "soc_pct", None)),
            ))
        # an owner's negative load (its batteries discharging) is kept for valley filling:
        # stopping the discharge is a rise (the envelope clips the other kinds at zero)
        valley = direction_sign(direction) < 0
        bq = (q if valley else np.maximum(q, 0.0))[:, None, :] * share[None, :, None]
        env = flexibility_envelope(fleet, bq, list(forecast.levels), confidence,
                                   sustain_intervals=len(window),
                                   interval_minutes=interval_minutes,
                                   direction_sign=direction_sign(direction))
        out[o] = env.reduction_kw
    return out


Quantiles = tuple[list[float], np.ndarray, np.ndarray, str]
"""(levels, expected load kW per interval, load quantiles levels x intervals, source label)."""


def owner_quantiles(inp: BidInput, owner: OwnerInput,
                    sources: dict[str, dict[str, str]]) -> Quantiles | None:
    """Step 1 of :func:`make_offer` for one owner (None: not bid); notes the source."""
    window = inp.window
    fq = inp.forecast.window(owner.owner_id, window) if inp.forecast is not None else None
    if fq is not None:
        assert inp.forecast is not None
        return list(inp.forecast.levels), inp.forecast.median(fq), fq, "forecast"
    days = owner.history
    key = str(owner.owner_id)
    if 0 < len(days) < MIN_HISTORY_DAYS:
        sources[key] = {"history": f"only {len(days)} whole day(s), fewer than "
                                   f"{MIN_HISTORY_DAYS}: not bid"}
        return None
    if not days:
        return None
    event_date = inp.start.astimezone(ZoneInfo(inp.programme.timezone)).date()
    dates = [h.day for h in days]
    use, rule = same_type_days(dates, event_date, inp.calendar)
    hist = np.vstack([days[i].load_kw for i in use])
    levels = list(inp.levels)
    sources[key] = {"history": f"{rule}: " + ", ".join(
        dates[i].isoformat() for i in sorted(use, key=lambda i: dates[i]))}
    return levels, hist.mean(axis=0), np.quantile(hist, levels, axis=0), "empirical (fallback)"


def site_baseline_kw(owner: OwnerInput, event_date: date,
                     calendar: DayCalendar) -> np.ndarray | None:
    """The owner's site import at baseline over the window (kW per interval, + import): the
    mean of its site meter's history days of the event day's type (:func:`same_type_days`;
    all days with fewer), None without any (no site meter, or no whole day of readings)."""
    days = owner.site_history
    if not days:
        return None
    use, _ = same_type_days([h.day for h in days], event_date, calendar)
    return np.vstack([days[i].load_kw for i in use]).mean(axis=0)


def _envelopes(inp: BidInput, quantiles: dict[int, Quantiles],
               sources: dict[str, dict[str, str]]) -> Mapping[int, np.ndarray] | None:
    """Step 2: the envelopes given, or the scheduler's over the quantiles (None: capability)."""
    if inp.envelope_kw is not None or not inp.scheduler_envelope:
        return inp.envelope_kw
    # the scheduler's envelope over the forecast quantiles, or, with no forecast, over the
    # empirical ones: a device can only shed load it draws in the window (an office closed in
    # the evening offers nothing), which nameplate capability ignores
    fc = inp.forecast if inp.forecast is not None else OwnerForecast(
        levels=list(inp.levels), index=inp.window,
        values_kw={o: q[2] for o, q in quantiles.items()})
    devices = [d for o in inp.owners for d in o.devices]
    try:
        return scheduler_envelopes(devices, fc, inp.window, inp.confidence or 0.9,
                                   interval_minutes=inp.interval_minutes,
                                   direction=inp.direction)
    except (ValidationError, ImportError) as exc:  # the scheduler is optional here
        sources["envelope_error"] = {"message": str(exc)}
        return None


def make_offer(inp: BidInput) -> Offer:
    """The offer for ``inp`` (module docstring). Pure: the same input gives the same offer."""
    sources: dict[str, dict[str, str]] = {}
    quantiles: dict[int, Quantiles] = {}
    for owner in sorted(inp.owners, key=lambda o: o.owner_id):
        q = owner_quantiles(inp, owner, sources)
        if q is not None:
            quantiles[owner.owner_id] = q
    if not quantiles:
        reason = (f"event {inp.event_id}: no owner has a load forecast or {MIN_HISTORY_DAYS} "
                  f"whole days of metered history (other events' days skipped) in the last "
                  f"{inp.history_days} days for the window")
        if inp.no_history is None:
            raise NoHistoryError(reason)
        return _no_history(inp, reason)
    envelope_kw = _envelopes(inp, quantiles, sources)
    n_t = len(inp.window)
    offers = []
    normal_load = 0.0
    price = Decimal(inp.price_yuan_per_kwh)
    for owner in sorted(inp.owners, key=lambda o: o.owner_id):
        if owner.owner_id not in quantiles:
            continue
        lv, base, lq, qsrc = quantiles[owner.owner_id]
        normal_load += float(base.mean())
        env = None if envelope_kw is None else envelope_kw.get(owner.owner_id)
        if env is not None and len(env) == n_t:
            flex_t = np.maximum(np.asarray(env, dtype=float), 0.0)
            esrc = "scheduler envelope"
        elif inp.direction == Direction.VALLEY_FILLING.value:
            cap = [raise_kw(d, inp.hours, d.soc_pct)  # type: ignore[arg-type]  # read-only
                   for d in owner.devices]
            flex_t = np.full(n_t, float(sum(cap)))
            esrc = "device rise capability (fallback)"
        else:
            cap = [device_capability_kw(d, inp.hours)  # type: ignore[arg-type]  # read-only fields
                   for d in owner.devices]
            flex_t = np.full(n_t, float(sum(cap)))
            esrc = "device capability (fallback)"
        key = str(owner.owner_id)
        flex_t, esrc = _export_capped(inp, owner, base, flex_t, esrc)
        sources[key] = {"quantiles": qsrc, "envelope": esrc, **sources.get(key, {})}
        rq = deliverable_quantiles(flex_t, base, lq, inp.direction)
        offers.append(owner_offer(owner.owner_id, lv, rq, flex_t, inp.programme.band, price,
                                  confidence=inp.confidence))
    offers, capped_from = cap_owner_offers(offers, inp.requested_kw)
    vpp = aggregate_offers(
        offers, inp.product, price, min_declared_kw=inp.programme.rules.min_declared_kw,
        normal_load_kw=normal_load or None,
        min_share_of_normal_load_pct=inp.programme.rules.min_share_of_normal_load_pct,
    )
    return _from_vpp(vpp, inp, capped_from, {"sources": sources})


def _export_capped(inp: BidInput, owner: OwnerInput, base_kw: np.ndarray, flex_kw: np.ndarray,
                   source: str) -> tuple[np.ndarray, str]:
    """Step 3 for one owner: its envelope (kW per interval) under the export rule
    (:func:`bidding.export_rule.deliverable_cap_kw`: the site's import at baseline, else the
    owner's expected load ``base_kw``; only for an owner that can export,
    :func:`bidding.export_rule.can_export`), and the envelope's source label, noting a cap."""
    if not can_export(d.min_setpoint_kw for d in owner.devices):
        return flex_kw, source
    site = site_baseline_kw(
        owner, inp.start.astimezone(ZoneInfo(inp.programme.timezone)).date(), inp.calendar)
    cap = deliverable_cap_kw(inp.programme.export_counts, inp.direction, base_kw, site)
    if not np.any(flex_kw > cap):
        return flex_kw, source
    why = ("the site's import at baseline" if site is not None
           else "the owner's expected load (no site meter)")
    return np.minimum(flex_kw, cap), f"{source} capped at {why}: export does not count"


def _from_vpp(vpp: VppOffer, inp: BidInput, capped_from: float | None,
              extra: dict) -> Offer:
    shares = tuple(OwnerShare(
        owner_id=o.owner_id, declared_kw=o.declared_kw, share=vpp.shares.get(o.owner_id, 0.0),
        limited_by=o.choice.limited_by, expected_response_kw=o.choice.expected_response_kw,
        p_penalty=o.choice.p_penalty) for o in vpp.owners)
    return Offer(event_type=vpp.event_type, direction=vpp.direction, declared_kw=vpp.declared_kw,
                 price_yuan_per_kwh=vpp.price_yuan_per_kwh, owners=shares, rule=vpp.rule,
                 capped_from_kw=capped_from, requested_kw=inp.requested_kw, extra=extra)


def _no_history(inp: BidInput, reason: str) -> Offer:
    """Step 4: :func:`bidding.fallback.no_history_offer` over the owners' devices."""
    policy = inp.no_history
    assert policy is not None
    calendar = MarketCalendar.from_programme(inp.programme, inp.calendar)
    local = calendar.local_date(inp.start)
    working = calendar.is_workday(local)
    devices = [d for o in inp.owners for d in o.devices if d.eligible]
    soc = {d.device_id: d.soc_pct for d in devices if d.soc_pct is not None}
    # the export rule on the owners' last metered interval (never metered: not capped)
    caps = {o.owner_id: float(deliverable_cap_kw(
        inp.programme.export_counts, inp.direction, np.array([o.latest_kw]),
        None if o.latest_site_kw is None else np.array([o.latest_site_kw]))[0])
        for o in inp.owners
        if o.latest_kw is not None and can_export(d.min_setpoint_kw for d in o.devices)}
    try:
        fb = no_history_offer(
            devices,  # type: ignore[arg-type]  # the protocol's fields, read-only here
            inp.programme, inp.product, start=inp.start, end=inp.end,
            season=calendar.season_of(local), requested_kw=inp.requested_kw or 0.0, price_yuan_per_kwh=inp.price_yuan_per_kwh,
            fraction_pct=policy.fraction_pct, soc_pct=soc, owner_cap_kw=caps, gap=history_gap(
                inp.product.baseline, working, inp.start, policy.first_reading, reason))
    except ValidationError as exc:
        raise NoHistoryOfferRefused(f"{exc.message} (bidding from history: {reason})") from None
    detail = dict(fb.detail)
    owners = tuple(OwnerShare(
        owner_id=int(o["owner_id"]), declared_kw=float(o["declared_kw"]),
        share=float(o["share"]), limited_by=str(o["limited_by"]),
        envelope_kw=float(o["envelope_kw"])) for o in detail.pop("owners"))
    for k in ("rule", "reason", "event_type", "direction", "requested_kw", "capped_from_kw"):
        detail.pop(k, None)
    return Offer(event_type=inp.product.event_type.value, direction=inp.product.direction.value,
                 declared_kw=fb.declared_kw, price_yuan_per_kwh=fb.price_yuan_per_kwh,
                 owners=owners, rule=str(fb.detail["rule"]), reason=reason,
                 capped_from_kw=fb.detail.get("capped_from_kw"), requested_kw=inp.requested_kw,
                 extra=detail)
