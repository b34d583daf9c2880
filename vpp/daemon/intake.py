"""Grid call intake: one path for every call, whichever way it came in (REST, OpenADR, CLI).

``receive`` checks the call against the programme in force (window, duration, interval
alignment, and notice measured from when the call was received: at least the product's
``notice_min_hours``, at most its ``notice_max_hours``; a direction the programme has no
product for is refused there, before anything is bid), stores the
:class:`~vpp.models.GridEvent`, has :mod:`bidding` make and store the offer (:func:`bidding.workflow.bid_event`: owners' load quantiles from the daemon's load
forecast (:mod:`vpp.daemon.forecasts`), else their metered history; the scheduler's flexibility
envelope over those quantiles at the latest polled states of charge -- the bid's
``detail.sources`` says which), and wakes the control loop, which plans and dispatches. Where no
owner has the history ``bid_event`` needs (a fleet enrolled today: ``NoHistoryError``),
:func:`bidding.fallback.no_history_offer` is used instead -- a declared share
(``[bidding] no_history_fraction_pct``) of what the devices can hold for the whole event,
never nameplate -- and the bid says so and why (``detail.rule``, ``detail.reason``). When the estimate
exists but yields no admissible offer (below the programme's minimum, say), the call is
declined with that reason: falling back to nameplate capability there over-declares (the
1,021-device full-stack run declared 23 MW against an honest 5 MW and was penalised). A call
with an ``external_id`` already accepted (or cancelled, or in flight) is answered with the
stored decision (idempotent: a VTN or grid platform may resend); the same id with different
content is a conflict. Calls the programme does not allow are stored as ``rejected`` with the
reason (the grid is told why, nothing is bid or dispatched); since a rejection commits nothing,
the same ``external_id`` sent again is evaluated afresh, in the same row, with its earlier
rejections kept in the event's detail and the resend audit-logged. While the VPP is suspended
or expelled under its programme's performance record (:mod:`vpp.performance`,
:mod:`bidding.performance_record`) every call is refused the same way, with the record's
reason ("no bid: the VPP is suspended since ...; remedy by ..."), and logged as a warning;
once the operator records the remedy, a resent call is bid.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bidding.core import NoHistoryOfferRefused
from bidding.core import bid_price as core_bid_price
from bidding.programme import Product, Programme, load_programme
from bidding.workflow import bid_event
from vpp.bids import latest_bid
from vpp.domain.grid_calls import CallDecision, EventStatus, GridCallIn
from vpp.errors import ConflictError, NotFoundError, ValidationError
from vpp.models import AuditLog, GridEvent
from vpp.performance import bid_refusal

if TYPE_CHECKING:
    from vpp.daemon.control import ControlLoop
    from vpp.daemon.fleet_runtime import FleetRuntime
    from vpp.daemon.forecasts import ForecastRefresher
    from vpp.daemon.infra import Infra

log = logging.getLogger("vpp.daemon.intake")

#: Directions the planner dispatches: both (valley filling is peak shaving's plan with the
#: sign reversed, :mod:`vpp.scheduler.call_rows`); the programme's products say which it buys.
DISPATCHED_DIRECTIONS = ("peak_shaving", "valley_filling")


def _fingerprint(call: GridCallIn) -> dict[str, Any]:
    return call.model_dump(mode="json", exclude={"external_id"})


def bid_price(product: Product, call: GridCallIn) -> Decimal:
    """What we ask for the call: :func:`bidding.core.bid_price` with the call's cap."""
    return core_bid_price(product, call.price_cap_yuan_per_kwh)



def _grid_start(origin: Mapping[str, Any] | None) -> datetime | None:
    """The start the grid asked for when the source widened the window to whole market
    intervals (OpenADR: ``origin.window``, :mod:`vpp.daemon.openadr_signals`): the notice the
    grid gave is measured to it, not to the earlier interval the VEN chose to cover too (a call
    at 11:44:30 with 29 minutes' notice was refused for "0.24 h" of notice to 11:30)."""
    window = (origin or {}).get("window") or {}
    try:
        return datetime.fromisoformat(window["start"]) if "start" in window else None
    except (TypeError, ValueError):
        return None

class Intake:
    """Receives calls; see the module docstring."""

    def __init__(self, infra: Infra, fleet: FleetRuntime, forecasts: ForecastRefresher,
                 control: ControlLoop) -> None:
        """``fleet``: the polled states of charge the offer starts from; ``forecasts``: the
        owners' load forecast it is made from; ``control``: told of each accepted call."""
        self.infra = infra
        self.fleet = fleet
        self.forecasts = forecasts
        self.control = control

    def _programme(self, name: str, on: datetime) -> Programme:
        s = self.infra.settings
        local = on.astimezone(ZoneInfo(s.service.timezone))
        return load_programme(name, s.bidding.programmes_dir, local.date())

    def _product(self, call: GridCallIn) -> tuple[Programme, Product]:
        """The programme version in force on the call's start and its product, after checking
        the window, duration and interval alignment (not the notice: see :meth:`_check`)."""
        programme = self._programme(call.programme or self.infra.settings.bidding.programme,
                                    call.start)
        return programme, programme.check_event(call.event_type, call.direction, call.start,
                                                call.end)

    def _check(self, call: GridCallIn, received: datetime, grid_start: datetime | None = None
               ) -> tuple[Programme, Product]:
        """:meth:`_product`, plus the notice measured from ``received`` (when the call arrived:
        :meth:`bidding.programme.Programme.check_notice`) to the start the grid asked for
        (``grid_start``, :func:`_grid_start`; else the call's) and what the daemon can
        dispatch."""
        if call.direction not in DISPATCHED_DIRECTIONS:  # first: no other check could help
            raise ValidationError(
                f"{call.direction.replace('_', ' ')} is not planned by this daemon yet "
                f"(it dispatches {', '.join(DISPATCHED_DIRECTIONS)} only): no bid is made for "
                "a call that could not be dispatched"
            )
        programme, product = self._product(call)
        programme.check_notice(product, grid_start or call.start, received)
        if call.end <= received:
            raise ValidationError(f"the event window ended at {call.end.isoformat()}")
        return programme, product

    def _reason(self, session: Session, call: GridCallIn, received: datetime,
                origin: Mapping[str, Any] | None = None) -> str | None:
        """Why the programme or the daemon refuses the call, or ``None``: the programme's
        rules (:meth:`_check`), then the VPP's performance record (suspended or expelled:
        :func:`vpp.performance.bid_refusal`)."""
        try:
            self._check(call, received, _grid_start(origin))
        except (ValidationError, NotFoundError) as exc:
            return exc.message
        name = call.programme or self.infra.settings.bidding.programme
        refusal = bid_refusal(session, name, self.infra.settings.bidding.programmes_dir,
                              received)
        if refusal is not None:
            log.warning("grid call refused by the performance record: %s", refusal,
                        extra={"external_id": call.external_id, "programme": name})
            return f"no bid: {refusal}"
        return None

    def _store_event(self, session: Session, call: GridCallIn, source: str, actor: str,
                     received: datetime, origin: Mapping[str, Any] | None = None,
                     ) -> tuple[CallDecision | None, int, str | None]:
        """Insert the event (or find the duplicate); returns (duplicate decision, id, reason).

        A call whose ``external_id`` was rejected before is evaluated again on its new content,
        in the same row (:meth:`_reevaluate`): a rejection commits nothing."""
        existing = session.exec(
            select(GridEvent).where(GridEvent.external_id == call.external_id).with_for_update()
        ).first()
        if existing is not None and existing.status == EventStatus.REJECTED:
            return None, int(existing.id or 0), self._reevaluate(
                session, existing, call, source, actor, received, origin)
        if existing is not None:
            if existing.detail.get("call") != _fingerprint(call):
                raise ConflictError(
                    f"call {call.external_id!r} was already received with different content"
                )
            return self._decision(session, existing, duplicate=True), int(existing.id or 0), None
        programme_name = call.programme or self.infra.settings.bidding.programme
        reason = self._reason(session, call, received, origin)
        ev = GridEvent(
            external_id=call.external_id, source=source, event_type=call.event_type,
            direction=call.direction, programme=programme_name, start=call.start, end=call.end,
            requested_kw=call.requested_kw, price_cap_yuan_per_kwh=call.price_cap_yuan_per_kwh,
            status=EventStatus.RECEIVED if reason is None else EventStatus.REJECTED,
            received_at=received,
            detail={"call": _fingerprint(call), "actor": actor,
                    **({"origin": dict(origin)} if origin else {}),
                    **({"reason": reason} if reason else {})},
        )
        session.add(ev)
        session.flush()
        return None, int(ev.id or 0), reason

    def _reevaluate(self, session: Session, ev: GridEvent, call: GridCallIn, source: str,
                    actor: str, received: datetime, origin: Mapping[str, Any] | None = None,
                    ) -> str | None:
        """A rejected call sent again: the row takes the new content and receipt time (notice
        counts from this receipt) and is evaluated afresh; each earlier rejection is kept in
        ``detail["rejections"]`` (received at, source, reason, the call as then sent) and the
        resend is audit-logged (``grid_call_resent``). Returns the refusal reason, if any."""
        old = ev.detail or {}
        history = [*old.get("rejections", []), {
            "received_at": ev.received_at.isoformat() if ev.received_at else None,
            "source": ev.source, "reason": old.get("reason"), "call": old.get("call")}]
        session.add(AuditLog(actor=actor, action="grid_call_resent", subject=f"event:{ev.id}",
                             detail={"source": source, "external_id": ev.external_id,
                                     "previous_reason": old.get("reason"),
                                     "same_content": old.get("call") == _fingerprint(call)}))
        reason = self._reason(session, call, received, origin)
        ev.source, ev.event_type, ev.direction = source, call.event_type, call.direction
        ev.programme = call.programme or self.infra.settings.bidding.programme
        ev.start, ev.end, ev.requested_kw = call.start, call.end, call.requested_kw
        ev.price_cap_yuan_per_kwh = call.price_cap_yuan_per_kwh
        ev.status = EventStatus.RECEIVED if reason is None else EventStatus.REJECTED
        ev.received_at = received
        ev.detail = {"call": _fingerprint(call), "actor": actor, "rejections": history,
                     **({"origin": dict(origin)} if origin else {}),
                     **({"reason": reason} if reason else {})}
        session.add(ev)
        session.flush()
        return reason

    def _finish(self, session: Session, event_id: int, source: str, actor: str,
                reason: str | None) -> CallDecision:
        ev = session.get(GridEvent, event_id)
        if ev is None:
            raise NotFoundError(f"no event {event_id}")
        if ev.status == EventStatus.RECEIVED:
            ev.status = EventStatus.ACCEPTED if reason is None else EventStatus.REJECTED
            if reason:
                ev.detail = {**(ev.detail or {}), "reason": reason}
            session.add(ev)
        session.add(AuditLog(actor=actor, action="grid_call_received", subject=f"event:{ev.id}",
                             detail={"source": source, "external_id": ev.external_id,
                                     "status": ev.status, "reason": reason}))
        session.flush()
        return self._decision(session, ev)

    async def _bid(self, event_id: int, call: GridCallIn, actor: str) -> str | None:
        """Have bidding make and store the offer (:func:`bidding.workflow.bid_event`, the
        shared core :func:`bidding.core.make_offer` with the no-history fallback); returns the
        reason if none can be made."""
        infra = self.infra
        settings = infra.settings
        try:
            price = bid_price(self._product(call)[1], call)
            fc = self.forecasts.owner_forecast()
            soc = {int(did): float(st.last_state.soc_pct)
                   for did, st in self.fleet.poller.stats.items()
                   if st.last_state is not None and st.last_state.soc_pct is not None}
            _, offer = await infra.db.call(functools.partial(
                bid_event, infra.db.engine, event_id, settings.bidding.programmes_dir,
                price_yuan_per_kwh=price, confidence=settings.bidding.delivery_confidence,
                actor=actor, load_forecast=fc, scheduler_envelope=True, soc_pct=soc,
                calendar=infra.calendar.workdays,
                no_history_fraction_pct=settings.bidding.no_history_fraction_pct))
        except NoHistoryOfferRefused as exc:
            return exc.message
        except (ValidationError, NotFoundError) as exc:
            # an estimate exists and says no admissible offer (e.g. below the programme's
            # minimum): decline rather than declare nameplate capability the fleet cannot shed
            return f"no offer: {exc.message}"
        if offer.reason:
            log.info("bid without history: %s", offer.reason, extra={"event_id": event_id})
        return None

    def _decision(self, session: Session, ev: GridEvent, duplicate: bool = False) -> CallDecision:
        bid = latest_bid(session, int(ev.id or 0))
        return CallDecision(
            event_id=int(ev.id or 0), external_id=ev.external_id,
            accepted=ev.status not in (EventStatus.REJECTED, EventStatus.CANCELLED),
            status=EventStatus(ev.status),
            declared_kw=bid.declared_kw if bid else 0.0,
            price_yuan_per_kwh=bid.price_yuan_per_kwh if bid else None,
            reason=(ev.detail or {}).get("reason"), duplicate=duplicate,
        )

    async def receive(self, call: GridCallIn, source: str, actor: str,
                      origin: Mapping[str, Any] | None = None) -> CallDecision:
        """Take one call in; the same for every source. ``origin``: what the source knows of
        the call beyond it (the OpenADR event's own window, say), kept in ``detail.origin``."""
        t0 = time.perf_counter()
        infra = self.infra
        received = infra.clock()
        try:
            dup, event_id, reason = await infra.db.run(
                self._store_event, call, source, actor, received, origin)
        except IntegrityError:  # the same call arrived twice at once: answer as a duplicate
            dup, event_id, reason = await infra.db.run(
                self._store_event, call, source, actor, received, origin)
        if dup is not None:
            decision = dup
        else:
            if reason is None:
                reason = await self._bid(event_id, call, actor)
            decision = await infra.db.run(self._finish, event_id, source, actor, reason)
        new = dup is None
        infra.metrics.grid_calls.labels(
            source, "duplicate" if not new else ("accepted" if decision.accepted else "rejected")
        ).inc()
        if new and decision.accepted:
            infra.metrics.requested_kw.labels(str(decision.event_id)).set(call.requested_kw)
            infra.metrics.declared_kw.labels(str(decision.event_id)).set(decision.declared_kw)
            self.control.call_accepted(decision.event_id, t0)
        log.info("grid call %s", decision.status,
                 extra={"event_id": decision.event_id, "external_id": call.external_id,
                        "source": source, "declared_kw": decision.declared_kw,
                        "reason": decision.reason, "duplicate": decision.duplicate})
        return decision

    async def cancel(self, event_id: int, actor: str) -> None:
        def work(s: Session) -> None:
            ev = s.get(GridEvent, event_id)
            if ev is None:
                raise NotFoundError(f"no event {event_id}")
            if ev.status in (EventStatus.COMPLETED, EventStatus.SETTLED, EventStatus.REJECTED,
                             EventStatus.CANCELLED):
                raise ConflictError(f"event {event_id} is {ev.status}; it cannot be cancelled")
            ev.status = EventStatus.CANCELLED
            s.add(ev)
            s.add(AuditLog(actor=actor, action="event_cancelled", subject=f"event:{event_id}"))

        await self.infra.db.run(work)
        log.info("event cancelled", extra={"event_id": event_id})
        self.control.wake()

