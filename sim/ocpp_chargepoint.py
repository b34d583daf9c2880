"""A simulated OCPP charge point (1.6J or 2.0.1) over a real WebSocket, with the same EV physics
as the Modbus chargers (:class:`sim.physics.ev_charger.EvChargerModel`, one per connector).

It connects to ``<url>/<identity>`` with HTTP Basic credentials, sends BootNotification, a
StatusNotification per connector, starts and ends transactions as cars arrive and leave
(1.6J Start/StopTransaction; 2.0.1 TransactionEvent), and meters every ``meter_period_s``
simulated seconds (1.6J MeterValues; 2.0.1 TransactionEvent ``Updated`` while charging,
MeterValues otherwise): ``Power.Active.Import`` in W and ``Energy.Active.Import.Register`` in Wh.

Charging profiles: a connector charges at the limit of its valid profile (``TxProfile`` of the
running transaction before ``TxDefaultProfile``, the highest stack level within a purpose;
valid until ``validTo`` and its schedule's ``startSchedule + duration``), else at full power:
a profile that runs out is the fallback. It meters right after accepting one, so the central
system sees the new power without waiting a period. Faults: ``reject_profiles`` answers
``Rejected``; :meth:`SimChargePoint.drop` closes the connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ocpp.v16 import ChargePoint as Cp16
from ocpp.v201 import ChargePoint as Cp201
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from device_adapters.ocpp.meter import parse_timestamp
from device_adapters.ocpp.profiles import ocpp_time
from sim.device import Clock
from sim.ocpp_messages import Messages, client_class
from sim.physics.ev_charger import EvChargerModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldProfile:
    purpose: str
    stack_level: int
    limit_w: float
    ends: datetime  # the earlier of validTo and startSchedule + duration
    transaction_id: str | None


class SimConnector:
    """One connector: its car physics (``physics``: one built elsewhere, e.g. with a
    scenario's behaviour, else a depot default of ``rated_kw`` seeded by ``seed``)."""

    def __init__(self, rated_kw: float, seed: int,
                 physics: EvChargerModel | None = None) -> None:
        self.physics = physics if physics is not None else EvChargerModel(
            connectors=1, max_charge_kw_per_connector=rated_kw, seed=seed)
        self.profiles: dict[int, HeldProfile] = {}
        self.transaction_id: str | None = None
        self.tx_seq = 0

    def limit_kw(self, now: datetime) -> float | None:
        """The effective limit (kW) of the valid profiles, None: the charger's default."""
        for pid in [p for p, h in self.profiles.items() if h.ends <= now]:
            del self.profiles[pid]
        live = [h for h in self.profiles.values()
                if h.purpose != "TxProfile" or h.transaction_id == self.transaction_id]
        tx = [h for h in live if h.purpose == "TxProfile"]
        pick = tx or [h for h in live if h.purpose == "TxDefaultProfile"]
        if not pick:
            return None
        return max(pick, key=lambda h: h.stack_level).limit_w / 1000.0

    @property
    def car_present(self) -> bool:
        return self.physics.sessions[0] is not None


def read_profile(profile: dict[str, Any], schedule: dict[str, Any],
                 now: datetime) -> HeldProfile:
    """A received profile (snake_case, either version) as held; W or A (230 V per phase)."""
    period = schedule["charging_schedule_period"][0]
    limit = float(period["limit"])
    if schedule["charging_rate_unit"] == "A":
        limit *= 230.0 * int(period.get("number_phases", 3) or 3)
    start = parse_timestamp(schedule["start_schedule"]) if schedule.get(
        "start_schedule") else now
    ends = [parse_timestamp(profile["valid_to"])] if profile.get("valid_to") else []
    if schedule.get("duration") is not None:
        ends.append(start + timedelta(seconds=int(schedule["duration"])))
    tx = profile.get("transaction_id")
    return HeldProfile(str(profile["charging_profile_purpose"]), int(profile["stack_level"]),
                       limit, min(ends) if ends else datetime.max.replace(tzinfo=now.tzinfo),
                       None if tx is None else str(tx))


class SimChargePoint:
    """One simulated charge point; ``run(url)`` until cancelled (reconnects when dropped)."""

    def __init__(self, identity: str, password: str, version: str, *, connectors: int,
                 rated_kw: float, clock: Clock, seed: int = 0, meter_period_s: float = 60.0,
                 rate: Callable[[], float] = lambda: 1.0,
                 physics: Mapping[int, EvChargerModel] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.identity = identity
        self.tls = tls  # trusted roots for a wss:// central system (None: the system's)
        self.password = password
        self.version = version
        self.clock = clock
        self.rate = rate
        self.meter_period_s = meter_period_s
        self.connectors = {c: SimConnector(rated_kw, seed * 100 + c,
                                           (physics or {}).get(c))
                           for c in range(1, connectors + 1)}
        self.reject_profiles = False
        self.profiles_accepted = 0
        self.booted = asyncio.Event()
        self.refused: str | None = None  # why the central system refused the handshake
        self._last = clock.now()
        self._ws: ClientConnection | None = None
        self._cp: Cp16 | Cp201 | None = None
        self._messages: Messages | None = None
        self._metered = asyncio.Event()
        #: set by whoever stops the charge point: the meter loop ends at its next turn (a
        #: cancellation can be swallowed by a wait_for in the ocpp library on Python 3.11)
        self.stopping = False

    # -- physics ---------------------------------------------------------------------------
    def advance(self) -> datetime:
        now, last = self.clock.now(), self._last
        dt = (now - last).total_seconds()
        self._last = now
        for c in self.connectors.values():
            c.physics.set_time(last)  # arrivals follow the hour of the simulated clock
            c.physics.step(max(dt, 0.0), c.limit_kw(now))
        return now

    def power_kw(self, connector_id: int) -> float:
        return self.connectors[connector_id].physics.power_kw

    # -- profiles (called by the client handlers) -----------------------------------------
    def accept_profile(self, connector_id: int, profile: dict[str, Any],
                       schedule: dict[str, Any]) -> str:
        if self.reject_profiles or connector_id not in self.connectors:
            return "Rejected"
        self.advance()
        c = self.connectors[connector_id]
        c.profiles[int(profile.get("charging_profile_id", profile.get("id", 0)))] = \
            read_profile(profile, schedule, self.clock.now())
        c.physics.step(0.0, c.limit_kw(self.clock.now()))
        self.profiles_accepted += 1
        self._metered.set()
        return "Accepted"

    def clear_profile(self, profile_id: int | None) -> str:
        self.advance()
        found = False
        for c in self.connectors.values():
            if profile_id in c.profiles:
                del c.profiles[profile_id]
                found = True
            elif profile_id is None and c.profiles:
                c.profiles.clear()
                found = True
            c.physics.step(0.0, c.limit_kw(self.clock.now()))
        self._metered.set()
        return "Accepted" if found else "Unknown"

    # -- the connection --------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.identity}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def connect(self, url: str) -> None:
        """Connect and boot once (raises on a refused handshake, ``refused`` says why)."""
        sub = Subprotocol("ocpp2.0.1" if self.version == "2.0.1" else "ocpp1.6")
        tls: dict[str, Any] = {"ssl": self.tls} if self.tls is not None else {}
        try:
            self._ws = await connect(f"{url}/{self.identity}", subprotocols=[sub],
                                     additional_headers=self._headers(), open_timeout=30,
                                     ping_interval=None, max_size=2**20,
                                     **tls)
        except Exception as exc:
            self.refused = str(exc)
            raise
        self._cp = client_class(self.version)(self, self._ws)
        self._messages = Messages(self, self._cp)
        self._serve = asyncio.create_task(self._cp.start(), name=f"sim-ocpp-{self.identity}")
        await self._messages.boot()
        self.booted.set()

    async def meter_loop(self) -> None:
        """Meter every ``meter_period_s`` simulated seconds (and after a profile change)."""
        assert self._messages is not None
        while not self.stopping:
            now = self.advance()
            await self._messages.transactions(now)
            await self._messages.meter(now)
            self._metered.clear()
            wait = self.meter_period_s / max(self.rate(), 1e-9)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives as the event is set (a profile just accepted), and the loop would
            # outlive its cancel (a benchmark's shutdown waited for it forever)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._metered.wait()

    async def run(self, url: str) -> None:
        """Connect, boot and meter until cancelled, stopped or the connection closes; the
        connection is closed on the way out, and ``run`` may be called again (a reconnect)."""
        try:
            await self.connect(url)
            await self.meter_loop()
        finally:
            await self._disconnect()

    async def drop(self) -> None:
        """Fault: close the connection without a word (the central system sees it go)."""
        if self._ws is not None:
            await self._ws.close()

    async def close(self) -> None:
        """Stop for good: the meter loop ends and the connection closes."""
        self.stopping = True
        await self._disconnect()

    async def _disconnect(self) -> None:
        # a reconnect runs the meter loop again: only close() stops it (setting ``stopping``
        # here left a charge point that had lost its connection rebooting every retry, never
        # metering again)
        if self._ws is not None:
            await self._ws.close()
        if getattr(self, "_serve", None) is not None:
            self._serve.cancel()
            await asyncio.gather(self._serve, return_exceptions=True)

    @property
    def now_text(self) -> str:
        return ocpp_time(self.clock.now())
