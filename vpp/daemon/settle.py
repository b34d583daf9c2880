"""Settle finished events: one path (:func:`settle_event_db`) for the daemon and ``vpp settle``.

The daemon's :class:`Settler` runs as a supervised loop over ``completed`` events whose end is
at least ``daemon.settle_delay_minutes`` ago; ``vpp settle --event`` takes the same path, so an
event settles the same way whoever settles it, and an event already settled is shown as stored,
never settled a second time (``vpp settle --resettle`` settles again by the method its
settlement used, for corrected readings). First :func:`bidding.workflow.settle_from_db` (bidding's
database edge: the programme's baseline from each owner's metered history, the settlement, the
ledger). Where the history is too short for the programme's baseline method (a fleet enrolled
days ago), :func:`settle_one` settles against the baselines the daemon fixed at the event's first
plan (``GridEvent.detail.baseline_kw``: the programme method where possible, else the mean load
of the 15 minutes before the call, Jiangsu's real-time rule), through the same
:func:`bidding.settlement.settle_event` and :func:`bidding.ledger.post_settlement`; the
settlement's detail records which baseline was used. Posting is idempotent (the
ledger's fingerprint and idempotency keys), so a restart, or settling twice, never counts money
twice. A device without meter data in an interval counts as no response there (its load taken
to be its baseline; :func:`bidding.settlement.fill_unmetered`), so that the devices that were
metered are settled; the settlement's detail lists what was not (``unmetered``). Both paths
settle by the programme's ``export_counts`` with the owners' site meters
(:mod:`bidding.export_rule`), as the season simulator does. The ToU window
after the event covers the whole intervals that ended at least one interval before the settle
time (``settle_delay_minutes``; at most the 2 hours bidding uses).
An event that cannot be settled (no baseline, or less than half of its device-intervals
metered: the metering failed, not the devices) is marked ``unsettled`` with the reason for an
operator to look at, instead of being retried forever. From the second day of a month, once
every event of the previous month that can still settle has settled, the settler posts that
month's capacity payment
(:func:`bidding.capacity_ledger.post_month_when_settled`, the function ``vpp ledger capacity``
posts with), once per month and process (idempotent in the ledger).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from bidding.capacity_ledger import (
    PostedCapacity,
    post_month_when_settled,
    previous_month,
    programme_timezone,
)
from bidding.ledger import PostedSettlement, current_settlement, post_settlement
from bidding.meter_frame import read_owner_site
from bidding.programme import load_programme
from bidding.settlement import fill_unmetered, require_metered_share, settle_event
from bidding.workflow import SettleOutcome, settle_from_db
from vpp import failpoints
from vpp.calendar import make_calendar
from vpp.config import Settings
from vpp.daemon.delivery import latest_bid, measure_event
from vpp.db import session_scope
from vpp.domain.grid_calls import EventStatus
from vpp.errors import NotFoundError, ValidationError
from vpp.models import AuditLog, GridEvent, Settlement, table_of

if TYPE_CHECKING:
    from vpp.daemon.infra import Infra

log = logging.getLogger("vpp.daemon.settle")

#: ``Settlement.detail.baseline`` of a settlement against the baselines fixed at the first plan
FIXED_BASELINE = "fixed at the first plan"


def settle_one(s: Session, event_id: int, fee_pct: float, programmes_dir: str,
               tz: str, minutes: int, why: str = "", actor: str = "daemon") -> PostedSettlement:
    """Settle ``event_id`` against the baselines fixed at its first plan (the measurement
    :func:`vpp.daemon.delivery.measure_event` also shows live) and post it (idempotent)."""
    ev = s.get(GridEvent, event_id)
    if ev is None:
        raise NotFoundError(f"no event {event_id}")
    bid = latest_bid(s, event_id)
    if bid is None:
        raise ValidationError(f"event {event_id} has no bid")
    m = measure_event(s, ev, bid, minutes)
    # a device-interval without a reading counts as no response (its fixed baseline), so the
    # devices that were metered are settled; the settlement's detail lists the rest
    require_metered_share(np.isnan(m.metered_kw), f"event {event_id}")
    dev_meter, gap = fill_unmetered(m.metered_kw, m.baseline_kw)
    unmetered = {str(d): int(n) for d, n in zip(m.device_ids, gap.sum(axis=1), strict=True) if n}
    programme = load_programme(ev.programme, programmes_dir,
                               ev.start.astimezone(ZoneInfo(tz)).date())
    product = programme.product(ev.event_type, ev.direction)
    index = pd.DatetimeIndex(m.intervals).tz_convert(tz).rename("interval_start")
    owner_devs = {o: [d for d, r in zip(m.device_ids, m.owner_row, strict=True) if r == i]
                  for i, o in enumerate(m.owners)}
    bind = s.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    site = read_owner_site(engine, owner_devs, m.intervals[0],
                           m.intervals[-1] + timedelta(minutes=minutes), minutes)
    result = settle_event(
        index=index, owner_ids=m.owners, baseline_kw=m.by_owner(m.baseline_kw),
        metered_kw=m.by_owner(dev_meter),
        owner_declared_kw=[m.declared_kw[o] for o in m.owners],
        price_yuan_per_kwh=Decimal(bid.price_yuan_per_kwh), band=programme.band,
        fee_pct=Decimal(str(fee_pct)), direction=ev.direction,
        capacity_price_yuan_per_kw=product.capacity_price_yuan_per_kw,
        price_cap_yuan_per_kwh=product.price_cap_yuan_per_kwh,
        tariff=programme.tariff, interval_minutes=minutes,
        export_counts=programme.export_counts,
        site_import_kw=site.reindex(pd.DatetimeIndex(m.intervals))[m.owners].to_numpy().T,
    )
    posted = post_settlement(s, event_id, result, actor=actor,
                             extra={"baseline": FIXED_BASELINE,
                                    "baseline_methods": (ev.detail or {}).get("baseline_methods", {}),
                                    "why_not_history": why,
                                    **({"unmetered": {"rule": "no_response",
                                                      "device_event_intervals": unmetered}}
                                       if unmetered else {})})
    ev.status = EventStatus.SETTLED
    s.add(ev)
    return posted


def rebound_hours(elapsed_minutes: float, interval_minutes: int, cap_hours: float = 2.0) -> float:
    """Hours after an event counted in the owners' ToU bill change: the whole intervals that
    ended at least one interval before the settle time (``elapsed_minutes`` after the event's
    end; their readings are stored), at most ``cap_hours``."""
    whole = max(0, int(elapsed_minutes // interval_minutes) - 1)
    return min(cap_hours, whole * interval_minutes / 60)


@dataclass(frozen=True)
class SettleRun:
    """What :func:`settle_event_db` did: the current settlement, whether this call wrote it,
    the baseline it used, and (history path, when it ran) bidding's full outcome."""

    settlement: Settlement
    created: bool
    method: str  # HISTORY or FIXED
    reversed_version: int | None = None
    outcome: SettleOutcome | None = None


HISTORY = "history"
FIXED = "fixed"


def method_of(st: Settlement) -> str:
    """The baseline a stored settlement used."""
    return FIXED if st.detail.get("baseline") == FIXED_BASELINE else HISTORY


def settle_event_db(engine: Engine, event_id: int, settings: Settings, *, actor: str,
                    rebound_h: float, resettle: bool = False) -> SettleRun:
    """The one settlement path, for the daemon's settle loop and ``vpp settle``.

    An event already settled is left as it is (its stored settlement returned) unless
    ``resettle``, which settles it again by the method its settlement used (a corrected
    reading gives a new version; identical data, nothing new). Otherwise: the programme's
    baseline from each owner's metered history (:func:`bidding.workflow.settle_from_db`, on
    the configured working days ``forecasting.calendar``, the bid's; device-intervals without
    data counted as no response), and where that history is too short, the baselines fixed
    at the event's first plan (:func:`settle_one`).
    ValidationError / NotFoundError when neither can settle it.
    """
    with session_scope(engine) as s:
        stored = current_settlement(s, event_id)
    if stored is not None and not resettle:
        return SettleRun(stored, False, method_of(stored))
    fee = settings.bidding.aggregator_fee_pct
    why = ""  # why the history could not settle it
    if stored is None or method_of(stored) == HISTORY:
        try:
            out = settle_from_db(engine, event_id, settings.bidding.programmes_dir, fee,
                                 calendar=make_calendar(settings.forecasting.calendar),
                                 actor=actor, unmetered="no_response", rebound_hours=rebound_h)
            p = out.posted
            return SettleRun(p.settlement, p.created, HISTORY, p.reversed_version, out)
        except (ValidationError, NotFoundError) as exc:
            if stored is not None:
                raise
            why = exc.message
    # a re-settlement keeps the reason its first settlement gave for not using the history
    reason = why or (stored.detail.get("why_not_history", "") if stored is not None else "")
    try:
        with session_scope(engine) as s:
            p = settle_one(s, event_id, fee, str(settings.bidding.programmes_dir),
                           settings.service.timezone, settings.service.market_interval_minutes,
                           reason, actor=actor)
            return SettleRun(p.settlement, p.created, FIXED, p.reversed_version)
    except (ValidationError, NotFoundError) as exc:
        if why:
            exc.message = f"{exc.message} (from history: {why})"
        raise


def _due(s: Session, before) -> list[int]:  # noqa: ANN001
    return [int(i or 0) for i in s.exec(sm_select(GridEvent.id).where(
        GridEvent.status == EventStatus.COMPLETED, col(GridEvent.end) <= before)).all()]


def _mark_unsettled(s: Session, event_id: int, reason: str) -> None:
    ev = s.get(GridEvent, event_id)
    if ev is not None:
        ev.status = EventStatus.UNSETTLED
        ev.detail = {**(ev.detail or {}), "settle_error": reason}
        s.add(ev)
        s.add(AuditLog(actor="daemon", action="settlement_failed", subject=f"event:{event_id}",
                       detail={"reason": reason}))


def _totals(s: Session) -> dict[str, int]:
    st = table_of(Settlement)
    latest = (select(st.c.event_id, func.max(st.c.version).label("v"))
              .group_by(st.c.event_id).subquery())
    row = s.execute(
        select(func.coalesce(func.sum(st.c.revenue_fen), 0),
               func.coalesce(func.sum(st.c.penalty_fen), 0),
               func.coalesce(func.sum(st.c.fee_fen), 0))
        .join(latest, (latest.c.event_id == st.c.event_id) & (latest.c.v == st.c.version))
    ).one()
    return {"revenue": int(row[0]), "penalty": int(row[1]), "fee": int(row[2])}


def _post_capacity(s: Session, settings: Settings, now: datetime) -> PostedCapacity | None:
    b = settings.bidding
    month = previous_month(now, programme_timezone(b.programme, b.programmes_dir))
    return post_month_when_settled(s, b.programme, b.programmes_dir, month,
                                   b.aggregator_fee_pct, now=now)


class Settler:
    def __init__(self, infra: Infra) -> None:
        self.infra = infra
        self._capacity_posted: str | None = None  # the last month whose capacity was posted

    async def _capacity(self) -> None:
        """Post the previous month's capacity payment once its events have all settled
        (:func:`bidding.capacity_ledger.post_month_when_settled`; idempotent, so a restart
        checks it once more and writes nothing)."""
        now = self.infra.clock()
        b = self.infra.settings.bidding
        month = ""
        try:
            tz = programme_timezone(b.programme, b.programmes_dir)
            month = previous_month(now, tz)
            if month == self._capacity_posted or now.astimezone(ZoneInfo(tz)).day < 2:
                return  # posted, or the first day of the month: late readings may still settle
            posted = await self.infra.db.run(_post_capacity, self.infra.settings, now)
        except (ValidationError, NotFoundError) as exc:  # e.g. no programme version then
            log.error("capacity payment of %s not posted: %s", month, exc.message)
            self._capacity_posted = month  # said once; `vpp ledger capacity` posts it by hand
            return
        if posted is not None:
            self._capacity_posted = posted.payment.month
            if posted.created:
                log.info("capacity payment posted", extra={
                    "month": posted.payment.month, "version": posted.version,
                    "total_fen": posted.payment.total_fen})

    async def step(self) -> None:
        infra = self.infra
        settings = infra.settings
        before = infra.clock() - timedelta(minutes=settings.daemon.settle_delay_minutes)
        for event_id in await infra.db.run(_due, before):
            await failpoints.reach_async("settle.start")
            # the ToU window after the event: the whole intervals that ended at least one
            # interval before the settle time (their readings are stored), at most 2 hours; a
            # device-interval without data counts as no response (the rest settle)
            rebound_h = rebound_hours(settings.daemon.settle_delay_minutes,
                                      settings.service.market_interval_minutes)
            try:
                run = await infra.db.call(functools.partial(
                    settle_event_db, infra.db.engine, event_id, settings, actor="daemon",
                    rebound_h=rebound_h))
            except (ValidationError, NotFoundError) as exc:
                log.error("event not settled: %s", exc.message, extra={"event_id": event_id})
                await infra.db.run(_mark_unsettled, event_id, exc.message)
                continue
            row = run.settlement
            await failpoints.reach_async("settle.committed")
            infra.metrics.settlements.inc()
            log.info("event settled", extra={"event_id": event_id, "version": row.version,
                                             "revenue_fen": row.revenue_fen,
                                             "penalty_fen": row.penalty_fen})
        await self._capacity()
        totals = await infra.db.run(_totals)
        for kind, fen in totals.items():
            infra.metrics.settled_yuan.labels(kind).set(fen / 100)
