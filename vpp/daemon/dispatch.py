"""Write the setpoints of one interval of a plan, and record exactly what happened.

Restart safety lives here. Only ``pending`` rows of the *current* interval are ever sent; rows
of intervals that have passed are marked ``stale`` and never sent; a row is marked with what
the device did (``written``, ``clamped``, ``unverified``, ``failed``) in the same bulk update
that records the write, so a restarted daemon finds written rows written and does not send
them again. If the process dies between a write and that update, the row is still ``pending``
and is sent once more on restart: setpoints are absolute values, so this repeats a write, it
never adds to one. Every write lands in the append-only audit log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, bindparam, insert, update
from sqlmodel import Session, col, select

from device_adapters.protocol import SetpointResult
from vpp.models import AuditLog, Setpoint, table_of

if TYPE_CHECKING:
    from vpp.daemon.fleet_runtime import FleetRuntime
    from vpp.daemon.infra import Infra

log = logging.getLogger("vpp.daemon.dispatch")


@dataclass
class DispatchReport:
    plan_id: int
    interval_start: datetime
    sent: int
    ok: int
    failed: int
    stale: int
    seconds: float
    #: device -> kW of the writes verified by read-back (``written``/``clamped``): what each
    #: device now holds, for :mod:`vpp.daemon.overrides`
    held: dict[int, float] = field(default_factory=dict)


def outcome(r: SetpointResult) -> str:
    if r.error is not None and r.readback_kw is None:
        return "failed"
    if not r.verified:
        return "unverified"
    return "clamped" if r.clamped else "written"


def _pending(s: Session, plan_id: int, interval_start: datetime) -> tuple[list[Setpoint], int]:
    stale = cast(CursorResult[Any], s.execute(  # an UPDATE: a CursorResult
        update(Setpoint).where(col(Setpoint.plan_id) == plan_id,
                               col(Setpoint.status) == "pending",
                               col(Setpoint.interval_start) < interval_start)
        .values(status="stale")
    )).rowcount or 0
    rows = list(s.exec(select(Setpoint).where(
        Setpoint.plan_id == plan_id, Setpoint.interval_start == interval_start,
        Setpoint.status == "pending")))
    return rows, int(stale)


def _record(s: Session, event_id: int, results: list[tuple[int, SetpointResult]],
            now: datetime) -> None:
    """Store the writes' outcomes at ``now`` (the daemon's clock, as every event time is)."""
    t = table_of(Setpoint)
    stmt = (update(t).where(t.c.id == bindparam("row_id"))
            .values(status=bindparam("new_status"), written_at=bindparam("at"),
                    readback_kw=bindparam("back"), setpoint_kw=bindparam("kw")))
    s.connection().execute(stmt, [
        {"row_id": row_id, "new_status": outcome(r),
         "at": now if outcome(r) != "failed" else None, "back": r.readback_kw,
         "kw": r.written_kw if r.error is None else r.requested_kw}
        for row_id, r in results
    ])
    s.execute(insert(AuditLog), [
        {"ts": now, "actor": "daemon", "action": "setpoint_written",
         "subject": f"device:{r.device_id}",
         "detail": {"event_id": event_id, "setpoint_row": row_id, "requested_kw": r.requested_kw,
                    "written_kw": r.written_kw, "readback_kw": r.readback_kw,
                    "clamped": r.clamped, "verified": r.verified, "error": r.error}}
        for row_id, r in results
    ])


def written_setpoints(s: Session, plan_id: int, interval_start: datetime,
                      verified_only: bool = False) -> dict[int, float]:
    """Setpoints of this interval that reached their devices (for resuming after a restart);
    ``verified_only``: those whose read-back matched (what the devices are known to hold)."""
    statuses = ("written", "clamped") if verified_only else ("written", "clamped", "unverified")
    return {
        r.device_id: r.setpoint_kw for r in s.exec(select(Setpoint).where(
            Setpoint.plan_id == plan_id, Setpoint.interval_start == interval_start,
            col(Setpoint.status).in_(statuses)))
    }


async def dispatch_interval(infra: Infra, fleet: FleetRuntime, event_id: int, plan_id: int,
                            interval_start: datetime) -> DispatchReport:
    """Send the pending setpoints of ``interval_start`` through ``fleet``; see the module
    docstring."""
    t0 = time.perf_counter()
    rows, stale = await infra.db.run(_pending, plan_id, interval_start)
    if not rows:
        return DispatchReport(plan_id, interval_start, 0, 0, 0, stale, 0.0)
    sem = asyncio.Semaphore(infra.settings.daemon.dispatch_concurrency)
    order = {d: k for k, d in enumerate(fleet.interleave([r.device_id for r in rows]))}
    rows.sort(key=lambda r: order[r.device_id])

    async def one(row: Setpoint) -> tuple[int, SetpointResult]:
        async with sem:
            return int(row.id or 0), await fleet.apply(row.device_id, row.setpoint_kw)

    t_write = time.perf_counter()
    async with fleet.priority():
        results = await asyncio.gather(*(one(r) for r in rows))
    t_record = time.perf_counter()
    await infra.db.run(_record, event_id, list(results), infra.clock())
    t_done = time.perf_counter()
    seconds = time.perf_counter() - t0
    m = infra.metrics
    failed = 0
    for _, r in results:
        o = outcome(r)
        m.setpoints.labels(o).inc()
        if o == "failed":
            failed += 1
            log.warning("setpoint not written: %s", r.error,
                        extra={"event_id": event_id, "device_id": r.device_id})
    m.dispatch_seconds.observe(seconds)
    log.info("setpoints written", extra={"event_id": event_id, "plan_id": plan_id,
                                         "interval_start": interval_start.isoformat(),
                                         "sent": len(rows), "failed": failed,
                                         "seconds": round(seconds, 3),
                                         "load_s": round(t_write - t0, 3),
                                         "write_s": round(t_record - t_write, 3),
                                         "record_s": round(t_done - t_record, 3)})
    held = {r.device_id: r.written_kw for _, r in results
            if outcome(r) in ("written", "clamped")}
    return DispatchReport(plan_id, interval_start, len(rows), len(rows) - failed, failed, stale,
                          seconds, held)
