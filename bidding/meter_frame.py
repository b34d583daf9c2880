"""Meter data as frames: mean kW per market interval and device, and summed per owner.

Meter data is the ``telemetry`` table (:class:`vpp.models.TelemetryReading`, UTC timestamps):
readings are averaged per interval; an interval with no reading from a device is NaN, and an
owner's interval is NaN when any of their devices is missing. Re-exported by
:mod:`bidding.workflow`, which reads it to bid and settle.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from sqlalchemy import DateTime, Engine, String, select, type_coerce

from vpp.models import TelemetryReading, table_of


def read_meter_frame(
    engine: Engine, device_ids: Sequence[int], start: datetime, end: datetime,
    interval_minutes: int,
) -> pd.DataFrame:
    """Mean kW per (interval start, device) for ``start <= ts < end``; NaN where no reading.

    Timestamps are fetched raw and parsed by pandas in one vectorised call (the per-row
    ``AwareDateTime`` conversion dominated the read otherwise); the stored values are UTC.
    """
    t = table_of(TelemetryReading)
    ids = list(device_ids)
    sqlite = engine.dialect.name == "sqlite"
    ts_col = type_coerce(t.c.ts, String) if sqlite else type_coerce(t.c.ts, DateTime(timezone=True))
    dev: list = []
    stamps: list = []
    power: list = []
    with engine.connect() as conn:
        for k in range(0, len(ids), 900):  # stay under bound-parameter limits
            stmt = select(t.c.device_id, ts_col, t.c.power_kw).where(
                t.c.device_id.in_(ids[k:k + 900]), t.c.ts >= start, t.c.ts < end)
            for d, ts, p in conn.execute(stmt):
                dev.append(d)
                stamps.append(ts)
                power.append(p)
    grid = pd.date_range(start, end, freq=f"{interval_minutes}min", inclusive="left")
    if not dev:
        return pd.DataFrame(np.nan, index=grid, columns=ids)
    when = pd.to_datetime(pd.Series(stamps), utc=True, format="ISO8601")
    frame = pd.DataFrame({
        "device_id": np.asarray(dev, dtype=np.int64),
        "ts": when.dt.floor(f"{interval_minutes}min"),
        "power_kw": np.asarray(power, dtype=float),
    })
    wide = frame.groupby(["ts", "device_id"])["power_kw"].mean().unstack("device_id")
    wide.index = wide.index.tz_convert(grid.tz)
    return wide.reindex(index=grid, columns=ids)


def owner_load(meter: pd.DataFrame, owner_devices: dict[int, list[int]]) -> pd.DataFrame:
    """Sum device columns per owner; NaN where any of the owner's devices is missing."""
    owner_of = np.array([o for o, devs in owner_devices.items() for _ in devs])
    cols = [d for devs in owner_devices.values() for d in devs]
    sub = meter[cols].to_numpy()
    order = list(owner_devices)
    pos = {o: i for i, o in enumerate(order)}
    group = np.array([pos[o] for o in owner_of], dtype=np.int64)
    # device -> owner indicator: sums per owner as one sparse matrix product
    g = csr_matrix((np.ones(len(group)), (np.arange(len(group)), group)),
                   shape=(len(group), len(order)))
    nan = np.isnan(sub)
    out = np.asarray(g.T.dot(np.where(nan, 0.0, sub).T).T)
    missing = np.asarray(g.T.dot(nan.T.astype(np.float64)).T) > 0
    out[missing] = np.nan
    return pd.DataFrame(out, index=meter.index, columns=order)
