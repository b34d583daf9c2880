"""Telemetry from a poller worker: batches by COPY, written only for gateways whose lease it
holds, never twice.

One transaction per batch: ``COPY`` the readings into a temporary staging table, then
``INSERT ... SELECT`` the rows of devices whose gateway's lease this worker owns (the lease rows
locked ``FOR SHARE``, so a takeover's ``UPDATE`` waits for the batch to commit and a batch
after a takeover finds the lease gone), leaving out any (device, time) already stored (a batch
retried after a commit whose acknowledgement was lost is not doubled; the telemetry index on
(device_id, ts) serves the check). Readings of a gateway whose lease was lost are dropped and
counted: another worker polls it now.

What a SIGKILL can lose: the readings of the poll cycle in progress, which the poller flushes at
the end of every cycle (:meth:`vpp.poller.Poller._cycle`); a reading is counted only once its
batch committed. PostgreSQL only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Engine

from vpp.telemetry_store import Reading
from vpp.timeutil import require_aware

log = logging.getLogger("vpp.cluster.ingest")

_COLS = ("device_id", "ts", "power_kw", "energy_kwh", "soc_pct", "available", "flexibility_kw",
         "latency_ms", "site_import_kw")
_STAGING = ("CREATE TEMPORARY TABLE IF NOT EXISTS vpp_telemetry_in (device_id integer, "
            "ts timestamptz, power_kw float8, energy_kwh float8, soc_pct float8, "
            "available boolean, flexibility_kw float8, latency_ms float8, "
            "site_import_kw float8) ON COMMIT DELETE ROWS")
_cols = ", ".join(_COLS)
_INSERT = (
    "WITH mine AS (SELECT gateway_id FROM gateway_lease WHERE owner = %(w)s FOR SHARE) "
    f"INSERT INTO telemetry ({_cols}) SELECT {', '.join('i.' + c for c in _COLS)} "
    "FROM vpp_telemetry_in i JOIN device d ON d.id = i.device_id "
    "JOIN mine m ON m.gateway_id = d.gateway_id "
    "WHERE NOT EXISTS (SELECT 1 FROM telemetry t WHERE t.device_id = i.device_id "
    "AND t.ts = i.ts)")


class FencedWriter:
    """``writer(engine, readings)`` for :class:`vpp.telemetry_store.TelemetryBuffer` in a poller
    worker: see the module docstring. ``skipped``: readings not written, because they were
    stored already or their gateway's lease was not this worker's."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.skipped = 0

    def __call__(self, engine: Engine, readings: Sequence[Reading]) -> int:
        rows = []
        for r in readings:
            require_aware(r.ts, "reading timestamp")
            rows.append(tuple(getattr(r, c) for c in _COLS))
        if not rows:
            return 0
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute(_STAGING)
            with cur.copy(f"COPY vpp_telemetry_in ({_cols}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
            cur.execute(_INSERT, {"w": self.worker_id})
            written = int(cur.rowcount)
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        finally:
            raw.close()
        skipped = len(rows) - written
        if skipped > 0:
            self.skipped += skipped
            log.warning("%d reading(s) not stored: stored already (a retried batch), or their "
                        "gateway's lease is another worker's", skipped,
                        extra={"worker_id": self.worker_id})
        return written
