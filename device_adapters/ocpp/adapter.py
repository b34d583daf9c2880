"""One OCPP connector as a device adapter (:class:`device_adapters.protocol.DeviceAdapter`).

The charge point pushes meter values; the central system (:mod:`vpp.ocpp`) keeps the newest per
connector in its :class:`ChargePointLink`, and :meth:`OcppConnectorAdapter.read_state` reads it
like a Modbus register holding the last measurement: the poller samples it on its period and
stores the telemetry, and a connector whose charge point is not connected, or whose newest meter
value is older than ``stale_s``, fails its poll (offline after the poller's rule).

Setpoints are charging profiles (:mod:`.profiles`): clamped to the device's limits (and to 0 kW
below: no discharge over OCPP here), confirmed by the charge point's answer (``Accepted``), then
by the metered power (the daemon's override check compares readings with the held setpoint). The
profile ends after ``validity_s``; :meth:`heartbeat` renews a held one once half of it has run
(and at once when a new transaction started on the connector, since a ``TxProfile`` ends with
its transaction), so the charger returns to its default by itself if the daemon goes silent.
:meth:`release` clears the profile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from device_adapters.errors import GatewayUnreachable, RequestTimeout
from device_adapters.flex import flexibility
from device_adapters.ocpp.meter import MeterSample
from device_adapters.ocpp.profiles import LimitRequest
from device_adapters.protocol import DeviceState, SetpointResult, clamp_setpoint
from vpp.device_kinds import DeviceKind
from vpp.errors import DeviceError

log = logging.getLogger(__name__)

ACCEPTED = "Accepted"


class ChargePointSession(Protocol):
    """One live OCPP connection (:mod:`vpp.ocpp`'s version-specific charge point): sends the
    call and returns the charge point's status answer (raises on a CALLERROR or no answer)."""

    version: str

    async def set_limit(self, request: LimitRequest) -> str: ...

    async def clear_limit(self, connector_id: int) -> str: ...


@dataclass
class ConnectorLive:
    """What the charge point last told about one connector; ``received_at`` on the daemon's
    clock (the charger's own clock may be off)."""

    sample: MeterSample | None = None
    received_at: datetime | None = None
    status: str = "Unknown"
    transaction_id: str | None = None


@dataclass
class LinkStats:
    requests: int = 0  # calls sent to the charge point
    errors: int = 0  # calls refused, failed or unanswered


@dataclass
class ChargePointLink:
    """The daemon's side of one charge point, connected or not (``session`` None)."""

    identity: str
    gateway_id: int
    session: ChargePointSession | None = None
    connectors: dict[int, ConnectorLive] = field(default_factory=dict)
    stats: LinkStats = field(default_factory=LinkStats)

    def connector(self, connector_id: int) -> ConnectorLive:
        live = self.connectors.get(connector_id)
        if live is None:
            live = self.connectors[connector_id] = ConnectorLive()
        return live

    async def close(self) -> None:
        """Nothing to close here: the connection belongs to the central system (the poller
        calls this when it stops polling the charge point's last connector)."""


@dataclass(frozen=True)
class ProfilePolicy:
    """``validity_s``: each profile's life (s on the charger's clock); ``stale_s``: the oldest
    meter value a poll accepts; ``stack_level``: of the daemon's profiles."""

    validity_s: int
    stale_s: float
    stack_level: int


class OcppConnectorAdapter:
    """An ``ev_charger`` device that is connector ``connector_id`` of ``link``'s charge point."""

    kind = DeviceKind.EV_CHARGER
    #: no counter-resolution check (the poller's stuck-value rule): meter values are pushed,
    #: and a charger that stops sending them fails its poll after ``stale_s`` instead
    energy_resolution_kwh: float | None = None

    def __init__(self, link: ChargePointLink, *, device_id: int, connector_id: int,
                 rated_power_kw: float, min_setpoint_kw: float, max_setpoint_kw: float,
                 policy: ProfilePolicy, clock: Callable[[], datetime],
                 params: dict[str, Any] | None = None) -> None:
        self.link = link
        self.device_id = device_id
        self.connector_id = connector_id
        self.rated_power_kw = rated_power_kw
        self.min_setpoint_kw = min_setpoint_kw
        self.max_setpoint_kw = max_setpoint_kw
        self.params = dict(params or {})
        self.policy = policy
        self._clock = clock
        self.active_setpoint_kw: float | None = None
        self._sent_at: datetime | None = None  # when the held profile was sent (daemon clock)
        self._sent_tx: str | None = None  # the transaction it was bound to

    @property
    def live(self) -> ConnectorLive:
        return self.link.connector(self.connector_id)

    def _where(self) -> str:
        return f"charge point {self.link.identity} connector {self.connector_id}"

    async def read_state(self) -> DeviceState:
        """The newest meter value (see the module docstring for when this fails)."""
        now = self._clock()
        if self.link.session is None:
            raise GatewayUnreachable(f"{self._where()}: charge point not connected")
        live = self.live
        if live.sample is None or live.received_at is None:
            raise RequestTimeout(f"{self._where()}: no meter values received yet")
        age_s = (now - live.received_at).total_seconds()
        if age_s > self.policy.stale_s:
            raise RequestTimeout(f"{self._where()}: last meter values {age_s:.0f} s old "
                                 f"(more than {self.policy.stale_s:g} s)")
        power = live.sample.power_kw if live.sample.power_kw is not None else 0.0
        down, up = flexibility(self.kind, power, self.min_setpoint_kw, self.max_setpoint_kw,
                               live.sample.soc_pct, self.params)
        return DeviceState(
            device_id=self.device_id, ts=now, power_kw=power, energy_kwh=live.sample.energy_kwh,
            soc_pct=live.sample.soc_pct, indoor_temp_c=None, available=True,
            flex_down_kw=down, flex_up_kw=up,
            detail={"status": live.status, "transaction_id": live.transaction_id,
                    "active_setpoint_kw": self.active_setpoint_kw,
                    "ocpp": self.link.session.version},
            measured_at=live.received_at)

    async def _send(self, limit_kw: float) -> str:
        """Send ``limit_kw`` as a profile; the charge point's status (raises DeviceError)."""
        session = self.link.session
        if session is None:
            raise GatewayUnreachable(f"{self._where()}: charge point not connected")
        tx = self.live.transaction_id
        request = LimitRequest(self.connector_id, limit_kw * 1000.0, self._clock(),
                               self.policy.validity_s, self.policy.stack_level, tx)
        self.link.stats.requests += 1
        try:
            status = await session.set_limit(request)
        except TimeoutError:
            self.link.stats.errors += 1
            raise RequestTimeout(f"{self._where()}: no answer to SetChargingProfile") from None
        except DeviceError:
            self.link.stats.errors += 1
            raise
        if status == ACCEPTED:
            self._sent_at, self._sent_tx = request.start, tx
        else:
            self.link.stats.errors += 1
        return status

    async def apply_setpoint(self, setpoint_kw: float) -> SetpointResult:
        """Clamp, send the profile, confirm by the answer (see the module docstring)."""
        lo = max(self.min_setpoint_kw, 0.0)
        try:
            value, clamped = clamp_setpoint(float(setpoint_kw), lo, self.max_setpoint_kw)
        except ValueError as exc:
            return SetpointResult(self.device_id, setpoint_kw, 0.0, False, None, False, str(exc))
        if clamped:
            log.warning("device %s: setpoint %g kW outside [%g, %g]; clamped to %g",
                        self.device_id, setpoint_kw, lo, self.max_setpoint_kw, value)
        try:
            status = await self._send(value)
        except DeviceError as exc:
            log.warning("device %s: %s", self.device_id, exc)
            return SetpointResult(self.device_id, setpoint_kw, value, clamped, None, False,
                                  str(exc))
        if status != ACCEPTED:
            error = f"{self._where()} answered {status} to the charging profile of {value:g} kW"
            log.warning("device %s: %s", self.device_id, error)
            return SetpointResult(self.device_id, setpoint_kw, value, clamped, None, False,
                                  error)
        self.active_setpoint_kw = value
        return SetpointResult(self.device_id, setpoint_kw, value, clamped, value, True, None)

    async def release(self) -> None:
        """Clear the daemon's profile (the charger returns to its own default at once)."""
        session = self.link.session
        if session is None:
            raise GatewayUnreachable(f"{self._where()}: charge point not connected; its "
                                     "profile ends by itself at its validTo")
        self.link.stats.requests += 1
        try:
            status = await session.clear_limit(self.connector_id)
        except TimeoutError:
            self.link.stats.errors += 1
            raise RequestTimeout(f"{self._where()}: no answer to ClearChargingProfile") from None
        if status not in (ACCEPTED, "Unknown"):  # Unknown: no such profile (already ended)
            raise DeviceError(f"{self._where()} answered {status} to ClearChargingProfile")
        self.active_setpoint_kw = None
        self._sent_at = self._sent_tx = None

    def renewal_due(self) -> bool:
        """A held profile past half its validity, or bound to another transaction than the
        connector's current one."""
        if self.active_setpoint_kw is None:
            return False
        if self._sent_at is None or self._sent_tx != self.live.transaction_id:
            return True
        half = timedelta(seconds=self.policy.validity_s / 2)
        return self._clock() - self._sent_at >= half

    async def heartbeat(self) -> None:
        """Renew the held profile when due (:meth:`renewal_due`); nothing otherwise."""
        if not self.renewal_due():
            return
        assert self.active_setpoint_kw is not None
        value, _ = clamp_setpoint(self.active_setpoint_kw, max(self.min_setpoint_kw, 0.0),
                                  self.max_setpoint_kw)
        status = await self._send(value)
        if status != ACCEPTED:
            raise DeviceError(f"{self._where()} answered {status} to the renewed profile")
        self.active_setpoint_kw = value

