"""Settle finished events.

Runs as a supervised loop over ``completed`` events whose end is at least
``daemon.settle_delay_minutes`` ago. First :func:`bidding.workflow.settle_from_db` (bidding's
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
metered are settled; the settlement's detail lists what was not (``unmetered``). The ToU window
after the event covers the whole intervals that ended at least one interval before the settle
time (``settle_delay_minutes``; at most the 2 hours bidding uses).
An event that cannot be settled (no baseline, or less than half of its device-intervals
metered: the metering failed, not the devices) is marked ``unsettled`` with the reason for an
operator to look at, instead of being retried forever.
"""

from __future__ import annotations

import functools
import logging
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from bidding.ledger import post_settlement
from bidding.programme import load_programme
from bidding.settlement import fill_unmetered, require_metered_share, settle_event
from bidding.workflow import settle_from_db
from vpp import failpoints
from vpp.daemon.delivery import declared_by_owner, latest_bid
from vpp.daemon.intake import COMPLETED, SETTLED
from vpp.daemon.planning import event_intervals
from vpp.errors import NotFoundError, ValidationError
from vpp.models import AuditLog, Device, GridEvent, Settlement, table_of
from vpp.telemetry_store import interval_means

if TYPE_CHECKING:
    from vpp.daemon.services import Services

log = logging.getLogger("vpp.daemon.settle")

UNSETTLED = "unsettled"


def device_metered(s: Session, device_ids: list[int], intervals: list,
                   step: timedelta) -> np.ndarray:
    """(devices x intervals) metered kW: each device's mean power per interval, averaged by the
    database (:func:`vpp.telemetry_store.interval_means`, inside the session's transaction);
    NaN where a device has no reading in an interval."""
    minutes = int(step.total_seconds() // 60)
    idx = pd.DatetimeIndex(intervals).tz_convert("UTC")
    if (idx.floor(f"{minutes}min") != idx).any():
        raise ValidationError(f"event intervals starting {idx[0].isoformat()} are not aligned to "
                              f"{minutes}-minute intervals in UTC")
    means = interval_means(s.connection(), device_ids, intervals[0], intervals[-1] + step,
                           minutes)
    table = means.pivot_table(index="device_id", columns="interval_start", values="power_kw",
                              aggfunc="first", dropna=False)
    return table.reindex(index=device_ids, columns=idx).to_numpy(dtype=float)


def settle_one(s: Session, event_id: int, fee_pct: float, programmes_dir: str,
               tz: str, minutes: int, why: str = "") -> Settlement:
    ev = s.get(GridEvent, event_id)
    if ev is None:
        raise NotFoundError(f"no event {event_id}")
    bid = latest_bid(s, event_id)
    if bid is None:
        raise ValidationError(f"event {event_id} has no bid")
    detail = ev.detail or {}
    base_dev: dict[str, list[float]] = detail.get("baseline_kw") or {}
    if not base_dev:
        raise ValidationError(f"event {event_id} has no baselines (it was never planned)")
    declared = declared_by_owner(bid) or {}
    devices = {int(d.id or 0): d.owner_id for d in s.exec(sm_select(Device).where(
        col(Device.id).in_([int(k) for k in base_dev])))}
    owners = sorted(o for o in declared if o in set(devices.values()))
    if not owners:
        raise ValidationError(f"event {event_id}: no owner with a declared share and a baseline")
    step = timedelta(minutes=minutes)
    intervals = event_intervals(ev, minutes)
    row = {o: i for i, o in enumerate(owners)}
    dev_ids = sorted(d for d, o in devices.items() if o in row)
    dev_base = np.array([np.asarray(base_dev[str(d)], dtype=float) for d in dev_ids]).reshape(
        len(dev_ids), len(intervals))
    # a device-interval without a reading counts as no response (its fixed baseline), so the
    # devices that were metered are settled; the settlement's detail lists the rest
    raw = device_metered(s, dev_ids, intervals, step)
    require_metered_share(np.isnan(raw), f"event {event_id}")
    dev_meter, gap = fill_unmetered(raw, dev_base)
    owner_of = np.array([row[devices[d]] for d in dev_ids], dtype=np.int64)
    base = np.zeros((len(owners), len(intervals)))
    metered = np.zeros((len(owners), len(intervals)))
    np.add.at(base, owner_of, dev_base)
    np.add.at(metered, owner_of, dev_meter)
    unmetered = {str(d): int(n) for d, n in zip(dev_ids, gap.sum(axis=1), strict=True) if n}
    programme = load_programme(ev.programme, programmes_dir,
                               ev.start.astimezone(ZoneInfo(tz)).date())
    product = programme.product(ev.event_type, ev.direction)
    index = pd.DatetimeIndex(intervals).tz_convert(tz).rename("interval_start")
    result = settle_event(
        index=index, owner_ids=owners, baseline_kw=base, metered_kw=metered,
        owner_declared_kw=[declared[o] for o in owners],
        price_yuan_per_kwh=Decimal(bid.price_yuan_per_kwh), band=programme.band,
        fee_pct=Decimal(str(fee_pct)), direction=ev.direction,
        capacity_price_yuan_per_kw=product.capacity_price_yuan_per_kw,
        price_cap_yuan_per_kwh=product.price_cap_yuan_per_kwh,
        tariff=programme.tariff, interval_minutes=minutes,
    )
    posted = post_settlement(s, event_id, result, actor="daemon",
                             extra={"baseline": "fixed at the first plan",
                                    "baseline_methods": detail.get("baseline_methods", {}),
                                    "why_not_history": why,
                                    **({"unmetered": {"rule": "no_response",
                                                      "device_event_intervals": unmetered}}
                                       if unmetered else {})})
    ev.status = SETTLED
    s.add(ev)
    return posted.settlement


def _due(s: Session, before) -> list[int]:  # noqa: ANN001
    return [int(i or 0) for i in s.exec(sm_select(GridEvent.id).where(
        GridEvent.status == COMPLETED, col(GridEvent.end) <= before)).all()]


def _mark_unsettled(s: Session, event_id: int, reason: str) -> None:
    ev = s.get(GridEvent, event_id)
    if ev is not None:
        ev.status = UNSETTLED
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


class Settler:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def step(self) -> None:
        services = self.services
        settings = services.settings
        before = services.clock() - timedelta(minutes=settings.daemon.settle_delay_minutes)
        for event_id in await services.db.run(_due, before):
            await failpoints.reach_async("settle.start")
            try:
                # the ToU window after the event: the whole intervals that ended at least one
                # interval before now (their readings are stored), at most 2 hours; a
                # device-interval without data counts as no response (the rest settle)
                step = settings.service.market_interval_minutes
                rebound_h = min(2.0, max(0, int(settings.daemon.settle_delay_minutes // step)
                                         - 1) * step / 60)
                out = await services.db.call(functools.partial(
                    settle_from_db, services.db.engine, event_id,
                    settings.bidding.programmes_dir, settings.bidding.aggregator_fee_pct,
                    actor="daemon", unmetered="no_response", rebound_hours=rebound_h))
                row = out.posted.settlement
            except (ValidationError, NotFoundError) as first:
                try:
                    row = await services.db.run(
                        settle_one, event_id, settings.bidding.aggregator_fee_pct,
                        str(settings.bidding.programmes_dir), settings.service.timezone,
                        settings.service.market_interval_minutes, first.message)
                except (ValidationError, NotFoundError) as exc:
                    exc.message = f"{exc.message} (from history: {first.message})"
                    log.error("event not settled: %s", exc.message,
                              extra={"event_id": event_id})
                    await services.db.run(_mark_unsettled, event_id, exc.message)
                    continue
            await failpoints.reach_async("settle.committed")
            services.metrics.settlements.inc()
            log.info("event settled", extra={"event_id": event_id, "version": row.version,
                                             "revenue_fen": row.revenue_fen,
                                             "penalty_fen": row.penalty_fen})
        totals = await services.db.run(_totals)
        for kind, fen in totals.items():
            services.metrics.settled_yuan.labels(kind).set(fen / 100)
