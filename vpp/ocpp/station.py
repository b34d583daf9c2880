"""What a connected charge point's handlers share, whatever the OCPP version: its registration,
its live connector state, and the rules for input that does not fit.

Rules (each refusal is the protocol's CALLERROR and one log line naming the charge point):

- before its first accepted BootNotification (the gateway is still ``registered``) a charge
  point may send nothing else: ``SecurityError`` (OCPP 2.0.1 B02.FR.09; the same for 1.6J). A
  charge point that booted once need not boot again after a reconnection (neither version
  re-sends BootNotification on reconnect);
- a connector (1.6J connector id, 2.0.1 EVSE id) that is not registered:
  ``PropertyConstraintViolation``; the charge point's own connector 0 is accepted for status;
- a meter value that is not a number, not finite or in an unknown unit:
  ``PropertyConstraintViolation``; a timestamp that cannot be read: ``FormatViolation``;
- a meter value older than the newest one already received (out of order) is answered as
  accepted and does not replace the newer one (energy is a cumulative register: nothing lost).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from ocpp.exceptions import FormatViolationError, PropertyConstraintViolationError, SecurityError

from device_adapters.ocpp.adapter import ChargePointLink
from device_adapters.ocpp.meter import MeterValueError, latest_sample, parse_timestamp
from device_adapters.ocpp.profiles import ocpp_time
from vpp.ocpp_gateways import ChargePointRecord

log = logging.getLogger("vpp.ocpp")

#: 1.6J transaction ids are integers the central system assigns: unique within this process
#: (started from the clock so that a restarted daemon does not hand out the same ones again)
_TX_IDS = itertools.count(int(time.time()) % 1_000_000_000)


class Station:
    """One registered charge point while connected. ``on_boot``: records an accepted boot
    (the central system's database write and fleet attachment)."""

    def __init__(self, record: ChargePointRecord, link: ChargePointLink,
                 clock: Callable[[], datetime],
                 on_boot: Callable[[Station, dict[str, str]], Awaitable[None]],
                 heartbeat_interval_s: int) -> None:
        self.record = record
        self.link = link
        self.clock = clock
        self._on_boot = on_boot
        self.heartbeat_interval_s = heartbeat_interval_s
        self.booted = record.state == "active"
        self.connector_ids = {c.connector_id for c in record.connectors}

    @property
    def identity(self) -> str:
        return self.record.identity

    def now(self) -> str:
        return ocpp_time(self.clock())

    async def boot(self, detail: dict[str, Any]) -> None:
        clean = {k: str(v) for k, v in detail.items() if v is not None}
        await self._on_boot(self, clean)
        self.booted = True
        log.info("charge point %s booted (%s)", self.identity,
                 ", ".join(f"{k}={v}" for k, v in clean.items()))

    def require_booted(self, action: str) -> None:
        if not self.booted:
            log.warning("charge point %s sent %s before an accepted BootNotification: refused "
                        "(SecurityError)", self.identity, action)
            raise SecurityError(description=f"{action} before an accepted BootNotification")

    def check_connector(self, connector_id: int, action: str, allow_zero: bool = False) -> None:
        if connector_id in self.connector_ids or (allow_zero and connector_id == 0):
            return
        log.warning("charge point %s sent %s for connector %s, which is not registered "
                    "(registered: %s): refused", self.identity, action, connector_id,
                    sorted(self.connector_ids))
        raise PropertyConstraintViolationError(
            description=f"connector {connector_id} is not registered for {self.identity}")

    def set_status(self, connector_id: int, status: str) -> None:
        if connector_id == 0:
            log.info("charge point %s status %s", self.identity, status)
            return
        self.link.connector(connector_id).status = status

    def meter(self, connector_id: int, meter_values: list[dict[str, Any]], action: str) -> None:
        """Keep the newest meter value of the connector (see the module docstring)."""
        try:
            sample = latest_sample(meter_values)
        except MeterValueError as exc:
            log.warning("charge point %s: %s with an unreadable meter value: %s: refused",
                        self.identity, action, exc)
            if "timestamp" in str(exc):
                raise FormatViolationError(description=str(exc)) from None
            raise PropertyConstraintViolationError(description=str(exc)) from None
        if sample is None:
            return
        live = self.link.connector(connector_id)
        if live.sample is not None and sample.ts < live.sample.ts:
            log.debug("charge point %s connector %s: meter value of %s after one of %s "
                      "(out of order): kept the newer", self.identity, connector_id,
                      sample.ts, live.sample.ts)
            return
        live.sample, live.received_at = sample, self.clock()

    def start_transaction(self, connector_id: int, transaction_id: str | None = None) -> str:
        """Bind a transaction to the connector (1.6J: a new id from us; 2.0.1: the charger's)."""
        tx = transaction_id if transaction_id is not None else str(next(_TX_IDS))
        self.link.connector(connector_id).transaction_id = tx
        return tx

    def connector_of(self, transaction_id: str) -> int | None:
        for cid, live in self.link.connectors.items():
            if live.transaction_id == transaction_id:
                return cid
        return None

    def end_transaction(self, transaction_id: str, action: str) -> int | None:
        cid = self.connector_of(transaction_id)
        if cid is None:
            log.warning("charge point %s: %s for transaction %s, which is not known here "
                        "(started before a restart?): accepted", self.identity, action,
                        transaction_id)
            return None
        self.link.connector(cid).transaction_id = None
        return cid


def check_timestamp(text: str) -> None:
    """Refuse an unreadable date-time with FormatViolation (the message's own timestamp)."""
    try:
        parse_timestamp(text)
    except MeterValueError as exc:
        raise FormatViolationError(description=str(exc)) from None
