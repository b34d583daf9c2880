"""The OpenADR 2.0b VEN (openleadr): register with the VTN, take its events through the same
intake as REST calls, opt in or out by the intake's decision, report the fleet's load.

What an event asks for and over which window is read by :mod:`vpp.daemon.openadr_signals`
(``LOAD_DISPATCH`` delta and setpoint, ``SIMPLE`` levels; the window snapped out to the
programme's market intervals). The call's ``external_id`` is ``openadr:<event id>`` (``:m<n>``
for modification ``n``; a modification cancels the earlier version); a VTN cancellation cancels
the event; the call is of ``daemon.openadr.event_type`` (``auto``: real time or day ahead,
whichever product's notice bounds hold the event's notice) under ``daemon.openadr.programme``
(default: ``bidding.programme``). The stored event's
``detail.origin`` keeps the VTN's event id, its own window and how its signal was read.
The VEN opts out of an event it cannot act on or that the intake refuses; the reason is logged
(``vpp.daemon.openadr``, warning) and kept in :attr:`Ven.decisions`. Reports:
``TELEMETRY_USAGE`` with the fleet's metered power (kW) every ``report_interval_s``.
Registration is retried by the supervisor until the VTN answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pydantic
from openleadr import OpenADRClient
from openleadr.utils import certificate_fingerprint
from sqlmodel import Session, col, select

from bidding.capability import device_capability_kw
from bidding.participants import opted_out
from bidding.programme import Programme, load_programme
from vpp.config import OpenAdrSettings
from vpp.daemon.openadr_signals import (
    NotActionable,
    Request,
    active_window,
    market_window,
    read_request,
)
from vpp.domain.grid_calls import OPEN_EVENT_STATUSES, GridCallIn
from vpp.errors import (
    ConfigError,
    ConflictError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from vpp.models import Device, DeviceStatus, GridEvent

if TYPE_CHECKING:
    from vpp.daemon.fleet_runtime import FleetRuntime
    from vpp.daemon.infra import Infra
    from vpp.daemon.intake import Intake

log = logging.getLogger("vpp.daemon.openadr")

OPT_IN, OPT_OUT = "optIn", "optOut"


@dataclass(frozen=True)
class VenDecision:
    """The VEN's answer to one VTN event, and why (``reason`` is set on an opt-out)."""

    opt: str
    reason: str | None = None
    event_id: int | None = None  # the stored grid event, when the intake saw the call


def external_id(event: dict[str, Any]) -> str:
    desc = event["event_descriptor"]
    mod = int(desc.get("modification_number", 0) or 0)
    return f"openadr:{desc['event_id']}" + (f":m{mod}" if mod else "")


def event_type_for(programme: Programme, direction: str, notice_h: float, configured: str
                   ) -> str:
    """The product a VTN event is called as: ``configured`` unless ``auto``; then the first of
    real time and day ahead whose notice bounds hold ``notice_h`` (hours), else real time (and
    the intake refuses it with the notice reason)."""
    if configured != "auto":
        return configured
    for event_type in ("real_time", "day_ahead"):
        try:
            p = programme.product(event_type, direction)
        except ValidationError:
            continue
        if p.notice_min_hours <= notice_h and (p.notice_max_hours is None
                                               or notice_h <= p.notice_max_hours):
            return event_type
    return "real_time"


def to_call(event: dict[str, Any], settings: OpenAdrSettings, request: Request,
            window: tuple[datetime, datetime], event_type: str) -> GridCallIn:
    """The grid call for ``event``: ``request`` over ``window`` (the market intervals)."""
    return GridCallIn.model_validate({
        "external_id": external_id(event), "event_type": event_type,
        "direction": request.direction, "start": window[0], "end": window[1],
        "requested_kw": round(request.requested_kw, 3), "programme": settings.programme,
    })


def dependable_kw(session: Session, hours: float, start: datetime) -> float:
    """What the fleet can dependably shed for ``hours`` from ``start`` (kW): the sum of
    :func:`bidding.capability.device_capability_kw` over active devices not opted out
    (:func:`bidding.participants.opted_out`)."""
    total = 0.0
    for d in session.exec(select(Device).where(Device.status == DeviceStatus.ACTIVE.value)):
        if not opted_out(d.preferences, start):
            total += device_capability_kw(d, hours)
    return total


class Ven:
    def __init__(self, infra: Infra, settings: OpenAdrSettings, intake: Intake,
                 fleet: FleetRuntime) -> None:
        """``intake``: where the VTN's events go as calls; ``fleet``: the load reported."""
        self.infra = infra
        self.intake = intake
        self.fleet = fleet
        self.settings = settings
        self.client: OpenADRClient | None = None
        self.registered = False
        self.decisions: dict[str, VenDecision] = {}  # VTN event id -> the last answer

    def _make_client(self) -> OpenADRClient:
        s = self.settings
        client = OpenADRClient(
            ven_name=s.ven_name, vtn_url=str(s.vtn_url), ven_id=s.ven_id,
            cert=str(s.cert_file) if s.cert_file else None,
            key=str(s.key_file) if s.key_file else None,
            ca_file=str(s.ca_file) if s.ca_file else None,
            vtn_fingerprint=s.vtn_fingerprint, disable_signature=s.disable_signature,
            show_fingerprint=False,
        )
        if s.cert_file is not None:  # what the VTN operator registers this VEN by
            log.info("VEN certificate fingerprint %s",
                     certificate_fingerprint(s.cert_file.read_text()),
                     extra={"ven_name": s.ven_name})
        client.add_handler("on_event", self.on_event)
        client.add_handler("on_update_event", self.on_event)
        client.add_report(callback=self.fleet_power_kw, resource_id="fleet",
                          measurement="power_real", scale="k", unit="W",
                          sampling_rate=timedelta(seconds=s.report_interval_s),
                          report_duration=timedelta(hours=1))
        return client

    async def step(self) -> None:
        """Register (retrying until the VTN answers); once registered, openleadr polls."""
        if self.registered:
            return
        if self.client is not None:
            await self.client.stop()
        self.client = self._make_client()
        await self.client.run()
        if not self.client.registration_id:
            raise StorageError(f"VTN at {self.settings.vtn_url} did not register us")
        self.registered = True
        log.info("registered with the VTN", extra={"vtn": self.settings.vtn_url,
                                                   "ven_id": self.client.ven_id})

    async def fleet_power_kw(self) -> float:
        return float(self.fleet.fleet_power_kw() or 0.0)

    async def on_event(self, event: dict[str, Any]) -> str:
        """Opt in when the intake accepts the call; out otherwise (the reason is logged and
        kept in :attr:`decisions`)."""
        desc = event["event_descriptor"]
        vtn_id = str(desc["event_id"])
        if str(desc.get("event_status", "")).lower() == "cancelled":
            await self._cancel_versions(vtn_id)
            return self._answer(vtn_id, VenDecision(OPT_OUT, "cancelled by the VTN"))
        try:
            decision = await self._take(event)
        except NotActionable as exc:
            self.infra.metrics.grid_calls.labels("openadr", "rejected").inc()
            decision = VenDecision(OPT_OUT, exc.reason)
        return self._answer(vtn_id, decision)

    def _answer(self, vtn_id: str, decision: VenDecision) -> str:
        self.decisions[vtn_id] = decision
        if decision.opt == OPT_OUT:
            log.warning("opted out of VTN event %s: %s", vtn_id, decision.reason,
                        extra={"vtn_event_id": vtn_id, "event_id": decision.event_id,
                               "reason": decision.reason})
        return decision.opt

    async def _take(self, event: dict[str, Any]) -> VenDecision:
        """Read ``event``, hand the call to the intake, and say what it decided."""
        intake = self.intake
        start, end = active_window(event)
        settings = self.infra.settings
        name = self.settings.programme or settings.bidding.programme
        try:
            programme = load_programme(name, settings.bidding.programmes_dir, start)
        except (NotFoundError, ValidationError, ConfigError) as exc:
            raise NotActionable(exc.message) from None
        window = market_window(start, end, programme.interval_minutes, programme.timezone)
        hours = (window[1] - window[0]) / timedelta(hours=1)
        request = read_request(
            event, fleet_load_kw=self.fleet.fleet_power_kw(),
            dependable_kw=await self.infra.db.run(dependable_kw, hours, window[0]),
            simple_level_kw=self.settings.simple_level_kw)
        notice_h = (start - self.infra.clock()) / timedelta(hours=1)  # to the grid's start
        event_type = event_type_for(programme, request.direction, notice_h,
                                    self.settings.event_type)
        try:
            call = to_call(event, self.settings, request, window, event_type)
        except pydantic.ValidationError as exc:
            raise NotActionable(f"not understood: {exc.errors()[0]['msg']}") from None
        desc = event["event_descriptor"]
        if int(desc.get("modification_number", 0) or 0):
            await self._cancel_versions(str(desc["event_id"]), keep=call.external_id)
        origin = {"vtn_event_id": str(desc["event_id"]),
                  "modification_number": int(desc.get("modification_number", 0) or 0),
                  "window": {"start": start.isoformat(), "end": end.isoformat()},
                  "snapped_to_intervals": window != (start, end),
                  "reading": request.reading}
        try:
            decision = await intake.receive(call, source="openadr",
                                            actor=f"openadr:{self.settings.ven_name}",
                                            origin=origin)
        except ConflictError as exc:
            raise NotActionable(exc.message) from None
        if decision.accepted:
            return VenDecision(OPT_IN, None, decision.event_id)
        return VenDecision(OPT_OUT, f"{decision.reason} (the event read as {request.reading})",
                           decision.event_id)

    async def _cancel_versions(self, vtn_id: str, keep: str | None = None) -> None:
        def ids(s: Session) -> list[int]:
            rows = s.exec(select(GridEvent).where(
                col(GridEvent.external_id).startswith(f"openadr:{vtn_id}"))).all()
            return [int(r.id or 0) for r in rows if r.external_id != keep
                    and r.external_id.split(":")[1] == vtn_id
                    and r.status in OPEN_EVENT_STATUSES]

        intake = self.intake
        for event_id in await self.infra.db.run(ids):
            try:
                await intake.cancel(event_id, actor=f"openadr:{self.settings.ven_name}")
            except (ConflictError, NotFoundError, ValidationError) as exc:
                log.info("not cancelled: %s", exc.message, extra={"event_id": event_id})

    async def close(self) -> None:
        if self.client is not None:
            try:
                await self.client.stop()
            except Exception as exc:  # noqa: BLE001 -- closing; nothing else to do
                log.debug("VEN stop: %s", exc)
