"""The OpenADR 2.0b VEN (openleadr): register with the VTN, take its events through the same
intake as REST calls, opt in or out by the intake's decision, report the fleet's load.

Event mapping: the window is the event's active period; the requested reduction is the largest
interval payload of a ``LOAD_DISPATCH`` signal (kW, ``delta`` or ``setpoint``), or
``daemon.openadr.simple_level_kw`` times the level of a ``SIMPLE`` signal (levels 0-3); an event
with neither opts out. The call's ``external_id`` is ``openadr:<event id>`` (``:m<n>`` for
modification ``n``; a modification cancels the earlier version); a VTN cancellation cancels the
event. Reports: ``TELEMETRY_USAGE`` with the fleet's metered power (kW) every
``report_interval_s``. Registration is retried by the supervisor until the VTN answers.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pydantic
from openleadr import OpenADRClient

from vpp.api.schemas import GridCallIn
from vpp.config import OpenAdrSettings
from vpp.errors import ConflictError, NotFoundError, StorageError, ValidationError

if TYPE_CHECKING:
    from vpp.daemon.services import Services

log = logging.getLogger("vpp.daemon.openadr")

OPT_IN, OPT_OUT = "optIn", "optOut"


def _signals(event: dict[str, Any]) -> list[dict[str, Any]]:
    sig = event.get("event_signals") or []
    return sig["event_signals"] if isinstance(sig, dict) else list(sig)


def requested_kw(event: dict[str, Any], simple_level_kw: float) -> float | None:
    """The reduction an OpenADR event asks for, in kW (``None``: nothing we can act on)."""
    best = None
    for sig in _signals(event):
        name = str(sig.get("signal_name", "")).upper()
        values = [float(i.get("signal_payload", 0) or 0) for i in sig.get("intervals", [])]
        if not values:
            continue
        if name == "LOAD_DISPATCH":
            kw = max(abs(v) for v in values)
        elif name == "SIMPLE" and simple_level_kw > 0:
            kw = max(values) * simple_level_kw
        else:
            continue
        best = kw if best is None else max(best, kw)
    return best if best and best > 0 else None


def to_call(event: dict[str, Any], settings: OpenAdrSettings, simple_level_kw: float
            ) -> GridCallIn | None:
    desc = event["event_descriptor"]
    period = event["active_period"]
    start: datetime = period["dtstart"]
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    duration: timedelta = period["duration"]
    kw = requested_kw(event, simple_level_kw)
    if kw is None:
        return None
    mod = int(desc.get("modification_number", 0) or 0)
    ext = f"openadr:{desc['event_id']}" + (f":m{mod}" if mod else "")
    return GridCallIn.model_validate({
        "external_id": ext, "event_type": settings.event_type, "direction": "peak_shaving",
        "start": start, "end": start + duration, "requested_kw": kw,
        "programme": settings.programme,
    })


class Ven:
    def __init__(self, services: Services, settings: OpenAdrSettings) -> None:
        self.services = services
        self.settings = settings
        self.client: OpenADRClient | None = None
        self.registered = False
        self.decisions: dict[str, str] = {}  # VTN event id -> optIn / optOut

    def _make_client(self) -> OpenADRClient:
        s = self.settings
        client = OpenADRClient(
            ven_name=s.ven_name, vtn_url=str(s.vtn_url),
            cert=str(s.cert_file) if s.cert_file else None,
            key=str(s.key_file) if s.key_file else None,
            vtn_fingerprint=s.vtn_fingerprint, disable_signature=s.disable_signature,
            show_fingerprint=False,
        )
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
        fleet = self.services.fleet
        value = fleet.fleet_power_kw() if fleet is not None else None
        return float(value or 0.0)

    async def on_event(self, event: dict[str, Any]) -> str:
        """Opt in when the intake accepts the call; out otherwise (the reason is logged)."""
        desc = event["event_descriptor"]
        vtn_id = str(desc["event_id"])
        intake = self.services.intake
        if intake is None:
            return OPT_OUT
        status = str(desc.get("event_status", "")).lower()
        if status == "cancelled":
            await self._cancel_versions(vtn_id)
            return OPT_OUT
        try:
            call = to_call(event, self.settings,
                           self.services.settings.daemon.openadr.simple_level_kw)
        except pydantic.ValidationError as exc:
            log.warning("VTN event not understood: %s", exc.errors()[0]["msg"],
                        extra={"vtn_event_id": vtn_id})
            return OPT_OUT
        if call is None:
            log.warning("VTN event has no signal we can act on", extra={"vtn_event_id": vtn_id})
            return OPT_OUT
        if int(desc.get("modification_number", 0) or 0):
            await self._cancel_versions(vtn_id, keep=call.external_id)
        try:
            decision = await intake.receive(call, source="openadr",
                                            actor=f"openadr:{self.settings.ven_name}")
        except ConflictError as exc:
            log.warning("VTN event conflicts: %s", exc.message, extra={"vtn_event_id": vtn_id})
            return OPT_OUT
        opt = OPT_IN if decision.accepted else OPT_OUT
        self.decisions[vtn_id] = opt
        return opt

    async def _cancel_versions(self, vtn_id: str, keep: str | None = None) -> None:
        from sqlmodel import Session, col, select

        from vpp.models import GridEvent

        def ids(s: Session) -> list[int]:
            rows = s.exec(select(GridEvent).where(
                col(GridEvent.external_id).startswith(f"openadr:{vtn_id}"))).all()
            return [int(r.id or 0) for r in rows if r.external_id != keep
                    and r.external_id.split(":")[1] == vtn_id
                    and r.status in ("accepted", "active")]

        intake = self.services.intake
        assert intake is not None
        for event_id in await self.services.db.run(ids):
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
