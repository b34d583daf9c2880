"""Telemetry storage: batched inserts, per-device range reads (served by an index).

The poller hands readings to :class:`TelemetryBuffer`, which writes them in one multi-row
INSERT per batch. Reads return pandas frames indexed by aware UTC timestamps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, insert, select

from vpp.models import TelemetryReading
from vpp.timeutil import require_aware


@dataclass(frozen=True, slots=True)
class Reading:
    """One poll of one device (kW, kWh, %)."""

    device_id: int
    ts: datetime
    power_kw: float | None
    energy_kwh: float | None = None
    soc_pct: float | None = None
    available: bool = True
    flexibility_kw: float | None = None
    latency_ms: float | None = None


def write_readings(engine: Engine, readings: Iterable[Reading]) -> int:
    """Insert readings in one statement (executemany); returns the count written."""
    rows = []
    for r in readings:
        require_aware(r.ts, "reading timestamp")
        rows.append(asdict(r))
    if not rows:
        return 0
    with engine.begin() as conn:
        conn.execute(insert(TelemetryReading), rows)
    return len(rows)


class TelemetryBuffer:
    """Collects readings and flushes them in batches of ``batch_size``.

    If a flush fails (database down), the readings stay in the buffer (up to ``max_buffered``;
    the oldest are dropped beyond that and counted in ``dropped``) and are retried on the next
    flush, so a short outage loses nothing.
    """

    def __init__(self, engine: Engine, batch_size: int = 500, max_buffered: int = 1_000_000):
        self.engine = engine
        self.batch_size = batch_size
        self.max_buffered = max_buffered
        self._pending: list[Reading] = []
        self.written = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, reading: Reading) -> bool:
        """Buffer one reading; returns True when a full batch is waiting."""
        self._pending.append(reading)
        overflow = len(self._pending) - self.max_buffered
        if overflow > 0:
            del self._pending[:overflow]
            self.dropped += overflow
        return len(self._pending) >= self.batch_size

    def flush(self) -> int:
        """Write everything buffered; on error keep it and re-raise."""
        if not self._pending:
            return 0
        batch = list(self._pending)
        n = write_readings(self.engine, batch)
        del self._pending[: len(batch)]
        self.written += n
        return n


def read_device(engine: Engine, device_id: int, start: datetime, end: datetime) -> pd.DataFrame:
    """Readings of one device with ``start <= ts < end``, indexed by UTC timestamp."""
    require_aware(start, "start")
    require_aware(end, "end")
    t = TelemetryReading.__table__
    stmt = (
        select(t.c.ts, t.c.power_kw, t.c.energy_kwh, t.c.soc_pct, t.c.available)
        .where(t.c.device_id == device_id, t.c.ts >= start, t.c.ts < end)
        .order_by(t.c.ts)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    frame = pd.DataFrame(rows, columns=["ts", "power_kw", "energy_kwh", "soc_pct", "available"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.set_index("ts")
