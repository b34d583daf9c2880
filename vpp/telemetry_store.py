"""Telemetry storage: batched inserts, per-device range reads (served by an index).

The poller hands readings to :class:`TelemetryBuffer`, which writes them in one multi-row
INSERT per batch. Reads return pandas frames indexed by aware UTC timestamps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, fields
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Connection, Engine, Integer, cast, func, insert, select

from vpp.models import TelemetryReading, table_of
from vpp.timeutil import require_aware


@dataclass(frozen=True, slots=True)
class Reading:
    """One poll of one device (kW, kWh, %; ``site_import_kw``: :class:`vpp.models.TelemetryReading`)."""

    device_id: int
    ts: datetime
    power_kw: float | None
    energy_kwh: float | None = None
    soc_pct: float | None = None
    available: bool = True
    flexibility_kw: float | None = None
    latency_ms: float | None = None
    site_import_kw: float | None = None  # the site meter's kW, + import; None: none


_FIELDS = tuple(f.name for f in fields(Reading))


def write_readings(engine: Engine, readings: Iterable[Reading]) -> int:
    """Insert readings in one statement (executemany); returns the count written."""
    rows = []
    for r in readings:
        require_aware(r.ts, "reading timestamp")
        # not dataclasses.asdict: it deep-copies every value (a quarter of the flush's time
        # in the daemon's profile at 1,000 readings a second)
        rows.append({f: getattr(r, f) for f in _FIELDS})
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

    def __init__(self, engine: Engine, batch_size: int = 500, max_buffered: int = 1_000_000,
                 writer: Callable[[Engine, list[Reading]], int] | None = None):
        self.engine = engine
        #: how a batch is written: one multi-row INSERT (:func:`write_readings`), or a poller
        #: worker's fenced COPY (:class:`vpp.cluster.ingest.FencedWriter`)
        self.writer = writer or write_readings
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
        n = self.writer(self.engine, batch)
        del self._pending[: len(batch)]
        self.written += n
        return n


def read_device(engine: Engine, device_id: int, start: datetime, end: datetime) -> pd.DataFrame:
    """Readings of one device with ``start <= ts < end``, indexed by UTC timestamp."""
    require_aware(start, "start")
    require_aware(end, "end")
    t = table_of(TelemetryReading)
    stmt = (
        select(t.c.ts, t.c.power_kw, t.c.energy_kwh, t.c.soc_pct, t.c.available,
               t.c.site_import_kw)
        .where(t.c.device_id == device_id, t.c.ts >= start, t.c.ts < end)
        .order_by(t.c.ts)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    frame = pd.DataFrame(rows, columns=["ts", "power_kw", "energy_kwh", "soc_pct", "available",
                                       "site_import_kw"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.set_index("ts")


def interval_means(engine: Engine | Connection, device_ids: Sequence[int], start: datetime,
                   end: datetime, interval_minutes: int) -> pd.DataFrame:
    """Mean kW per (device, interval) for ``start <= ts < end``, averaged *in the database*.

    One row per device and interval that has readings: columns ``interval_start`` (aware UTC,
    intervals aligned to the epoch in UTC, as ``Timestamp.floor`` does), ``device_id`` and
    ``power_kw`` (the mean of the non-null readings; NaN when all were null). The same numbers
    as flooring every raw reading in pandas and taking the mean, without fetching the raw
    rows: at one reading per device per second an interval is 900 rows per device, and
    fetching them into Python made the forecast refresh allocate hundreds of MB and hold the
    interpreter for seconds (see docs/reliability.md, load). ``engine`` may be an open
    connection (a session's, to read inside its transaction).
    """
    require_aware(start, "start")
    require_aware(end, "end")
    t = table_of(TelemetryReading)
    step_s = int(interval_minutes) * 60
    if engine.dialect.name == "sqlite":  # stored as naive UTC text
        epoch = cast(func.strftime("%s", t.c.ts), Integer)
        bucket = (epoch // step_s).label("bucket")  # integer division: floor for ts >= 1970
    else:
        bucket = cast(func.floor(func.extract("epoch", t.c.ts) / step_s), BigInteger
                      ).label("bucket")
    ids = [int(i) for i in device_ids]
    parts: list[pd.DataFrame] = []
    with engine.connect() if isinstance(engine, Engine) else nullcontext(engine) as conn:
        for k in range(0, len(ids), 900):  # stay under bound-parameter limits
            stmt = (select(t.c.device_id, bucket, func.avg(t.c.power_kw))
                    .where(t.c.device_id.in_(ids[k:k + 900]), t.c.ts >= start, t.c.ts < end)
                    .group_by(t.c.device_id, bucket))
            rows = conn.execute(stmt).all()
            if rows:
                parts.append(pd.DataFrame(rows, columns=["device_id", "bucket", "power_kw"]))
    if not parts:
        return pd.DataFrame({"interval_start": pd.DatetimeIndex([], tz="UTC"),
                             "device_id": np.array([], dtype=np.int64),
                             "power_kw": np.array([], dtype=float)})
    frame = pd.concat(parts, ignore_index=True)
    return pd.DataFrame({
        "interval_start": pd.to_datetime(frame["bucket"].astype(np.int64) * step_s, unit="s",
                                         utc=True),
        "device_id": frame["device_id"].astype(np.int64),
        "power_kw": pd.to_numeric(frame["power_kw"], errors="coerce").astype(float),
    })
