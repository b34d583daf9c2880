"""Accepted BootNotifications written in groups (group commit).

A boot storm (a daemon restart, a depot's power returning) brings thousands of first boots
within seconds; one transaction each queued them behind one another on the database. Here a
boot that arrives while a write is in flight joins the next one: every batch is one transaction
(:func:`vpp.ocpp_gateways.record_boot` for each charge point, then one read of their records),
and each charge point is answered only once its own batch is committed, so nothing is
acknowledged that is not stored. A failed batch fails each of its boots (the charge point gets
the protocol's error and boots again); the next batch is tried afresh.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlmodel import Session

from vpp.daemon.dbexec import Db
from vpp.ocpp_gateways import ChargePointRecord, load_charge_points, record_boot

log = logging.getLogger("vpp.ocpp")


@dataclass(frozen=True)
class _Boot:
    gateway_id: int
    identity: str
    detail: dict[str, str]
    done: asyncio.Future[ChargePointRecord | None]


def write_boots(session: Session, boots: list[tuple[int, dict[str, str]]],
                identities: list[str]) -> dict[str, ChargePointRecord]:
    """Record each (gateway id, reported detail) boot; the charge points' records after it."""
    for gateway_id, detail in boots:
        record_boot(session, gateway_id, detail)
    session.flush()
    return load_charge_points(session, identities)


class BootRecorder:
    """Writes boots for the central system, at most ``max_batch`` per transaction."""

    def __init__(self, db: Db, max_batch: int = 500) -> None:
        self.db = db
        self.max_batch = max_batch
        self._pending: list[_Boot] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions written (boots / batches: the grouping achieved)

    async def record(self, gateway_id: int, identity: str,
                     detail: dict[str, str]) -> ChargePointRecord | None:
        """Record one accepted boot; returns the charge point's record once committed (None:
        it is no longer registered)."""
        boot = _Boot(gateway_id, identity, detail, asyncio.get_running_loop().create_future())
        self._pending.append(boot)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="ocpp-boots")
        return await boot.done  # cancelled with its caller: the batch skips its answer

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[:self.max_batch]
            del self._pending[:len(batch)]
            try:
                records = await self.db.run(write_boots,
                                            [(b.gateway_id, b.detail) for b in batch],
                                            sorted({b.identity for b in batch}))
            except asyncio.CancelledError:
                self._fail(batch + self._pending, RuntimeError("the central system stopped"))
                self._pending.clear()
                raise
            except Exception as exc:  # each boot gets the error; the next batch is tried
                log.warning("OCPP boots of %d charge point(s) not recorded: %s", len(batch), exc)
                self._fail(batch, exc)
                continue
            self.batches += 1
            for b in batch:
                if not b.done.done():
                    b.done.set_result(records.get(b.identity))

    @staticmethod
    def _fail(batch: list[_Boot], exc: BaseException) -> None:
        for b in batch:
            if not b.done.done():
                b.done.set_exception(exc)

    async def close(self) -> None:
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
