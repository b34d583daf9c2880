"""Meter data as frames: mean kW per market interval and device, and summed per owner.

Meter data is the ``telemetry`` table (:class:`vpp.models.TelemetryReading`, UTC timestamps):
readings are averaged per interval; an interval with no reading from a device is NaN, and an
owner's interval is NaN when any of their devices is missing. A device behind a site meter
also reports the site's import (``site_import_kw``, + import, - export): an owner's site
import is :func:`owner_site_import`. Re-exported by :mod:`bidding.workflow`, which reads it to
bid and settle.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from sqlalchemy import DateTime, Engine, String, or_, select, type_coerce

from bidding.bid_inputs import BidDevice, OwnerInput, owner_input, owners_of
from vpp.models import TelemetryReading, table_of

#: The telemetry columns a meter frame can be read from.
METER_COLUMNS = ("power_kw", "site_import_kw")


def read_meter_frame(
    engine: Engine, device_ids: Sequence[int], start: datetime, end: datetime,
    interval_minutes: int, column: str = "power_kw",
) -> pd.DataFrame:
    """Mean kW per (interval start, device) for ``start <= ts < end``; NaN where no reading.
    ``column``: the device's own power (``power_kw``) or its site meter's import
    (``site_import_kw``; NaN for devices without a site meter). :func:`read_meter_frames`
    reads several columns in one pass."""
    return read_meter_frames(engine, device_ids, start, end, interval_minutes, (column,))[column]


def read_meter_frames(
    engine: Engine, device_ids: Sequence[int], start: datetime, end: datetime,
    interval_minutes: int, columns: Sequence[str] = METER_COLUMNS,
) -> dict[str, pd.DataFrame]:
    """:func:`read_meter_frame` of each of ``columns`` (of :data:`METER_COLUMNS`), from one
    query. Null values are not readings (a missing site meter, an unavailable poll).

    Timestamps are fetched raw and parsed by pandas in one vectorised call (the per-row
    ``AwareDateTime`` conversion dominated the read otherwise); the stored values are UTC.
    """
    bad = [c for c in columns if c not in METER_COLUMNS]
    if bad or not columns:
        raise ValueError(f"columns must be some of {METER_COLUMNS}, got {list(columns)!r}")
    t = table_of(TelemetryReading)
    ids = list(device_ids)
    sqlite = engine.dialect.name == "sqlite"
    ts_col = type_coerce(t.c.ts, String) if sqlite else type_coerce(t.c.ts, DateTime(timezone=True))
    values = [t.c[c] for c in columns]
    cols: list[list] = [[] for _ in range(2 + len(columns))]  # device, ts, then each column
    add = [c.append for c in cols]
    with engine.connect() as conn:
        for k in range(0, len(ids), 900):  # stay under bound-parameter limits
            stmt = select(t.c.device_id, ts_col, *values).where(
                t.c.device_id.in_(ids[k:k + 900]), t.c.ts >= start, t.c.ts < end,
                or_(*(v.is_not(None) for v in values)))
            if len(columns) == 1:  # the common read: unpacked without an inner loop
                for d, ts, v in conn.execute(stmt):
                    add[0](d)
                    add[1](ts)
                    add[2](v)
            else:
                for row in conn.execute(stmt):
                    for f, v in zip(add, row, strict=True):
                        f(v)
    grid = pd.date_range(start, end, freq=f"{interval_minutes}min", inclusive="left")
    if not cols[0]:
        return {c: pd.DataFrame(np.nan, index=grid, columns=ids) for c in columns}
    when = pd.to_datetime(pd.Series(cols[1]), utc=True, format="ISO8601")
    frame = pd.DataFrame({
        "device_id": np.asarray(cols[0], dtype=np.int64),
        "ts": when.dt.floor(f"{interval_minutes}min"),
        **{c: np.asarray(v, dtype=float) for c, v in zip(columns, cols[2:], strict=True)},
    })
    out = {}
    for c in columns:  # mean of the non-null readings per interval and device
        wide = frame.groupby(["ts", "device_id"])[c].mean().unstack("device_id")
        wide.index = wide.index.tz_convert(grid.tz)
        out[c] = wide.reindex(index=grid, columns=ids)
    return out


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


def site_import_by_owner(site_kw: np.ndarray, device_kw: np.ndarray, owner_of: np.ndarray,
                         n_owners: int) -> np.ndarray:
    """Owners' import at their metering points (owners x intervals, kW, + import) from their
    devices' site readings and own power (devices x intervals each; NaN: no reading);
    ``owner_of``: each device's owner position.

    An owner is metered as one connection, as its load is (the owner's load floored at zero
    was the rule before site meters): each device counts what is metered at its own grid
    connection. A device that reads a site meter (any finite value in its ``site_kw`` row: a
    hybrid inverter's or storage EMS's grid meter, one per site; where several share one
    meter, map it on one of them only) counts that meter, its host site's load included;
    any other device counts its own power. So an owner without site meters has its load here,
    and the export rule floors it at zero as before; a battery behind a metered site can
    discharge down to its site's zero import. NaN where a device has no value in an interval
    (the settlement's floor applies there)."""
    site = np.asarray(site_kw, dtype=float)
    own = np.asarray(device_kw, dtype=float)
    n_t = site.shape[1]
    reads = np.isfinite(site).any(axis=1)
    eff = np.where(reads[:, None], site, own)
    seen = np.isfinite(eff)
    cell = (np.asarray(owner_of, dtype=np.int64)[:, None] * n_t + np.arange(n_t)).ravel()
    total = np.bincount(cell, weights=np.where(seen, eff, 0.0).ravel(), minlength=n_owners * n_t)
    gaps = np.bincount(cell, weights=(~seen).ravel().astype(float), minlength=n_owners * n_t)
    has = np.bincount(np.asarray(owner_of, dtype=np.int64), minlength=n_owners) > 0
    ok = (gaps.reshape(n_owners, n_t) == 0) & has[:, None]
    return np.where(ok, total.reshape(n_owners, n_t), np.nan)


def owner_site_import(site: pd.DataFrame, power: pd.DataFrame,
                      owner_devices: dict[int, list[int]]) -> pd.DataFrame:
    """:func:`site_import_by_owner` over frames from :func:`read_meter_frames` (its
    ``site_import_kw`` and ``power_kw``, on one index); columns are the owners of
    ``owner_devices``."""
    order = list(owner_devices)
    cols = [d for devs in owner_devices.values() for d in devs]
    owner_of = np.array([i for i, o in enumerate(order) for _ in owner_devices[o]],
                        dtype=np.int64)
    sub = site.reindex(columns=cols).to_numpy(dtype=float).T
    own = power.reindex(index=site.index, columns=cols).to_numpy(dtype=float).T
    out = site_import_by_owner(sub, own, owner_of, len(order))
    return pd.DataFrame(out.T, index=site.index, columns=order)


def read_owner_site(engine: Engine, owner_devices: dict[int, list[int]], start: datetime,
                    end: datetime, interval_minutes: int) -> pd.DataFrame:
    """Owners' import at their metering points (kW per interval, + import; NaN: a device
    without a value) for ``start <= ts < end``: :func:`read_meter_frames`, then
    :func:`owner_site_import`."""
    ids = [d for devs in owner_devices.values() for d in devs]
    frames = read_meter_frames(engine, ids, start, end, interval_minutes)
    return owner_site_import(frames["site_import_kw"], frames["power_kw"], owner_devices)


def read_owner_inputs(engine: Engine, devices: Sequence[BidDevice], start: datetime,
                      end: datetime, history_days: int, skip_days: set[date], tz: str,
                      interval_minutes: int) -> list[OwnerInput]:
    """Each owner of ``devices`` as an offer or the admission check sees it: its devices, its
    metered load and its site meter's import over ``[start, end)``'s clock window on each of
    the ``history_days`` days before, ``skip_days`` left out, and their last metered intervals
    (:func:`bidding.bid_inputs.owner_input`). The one reader of owners' history for the daemon's offer and admission."""
    if not devices:
        return []
    by_owner = owners_of(devices)
    since = start - timedelta(days=history_days)
    groups = {o: [d.device_id for d in ds] for o, ds in by_owner.items()}
    frames = read_meter_frames(engine, [d.device_id for d in devices], since, start,
                               interval_minutes)
    loads = owner_load(frames["power_kw"], groups)
    sites = owner_site_import(frames["site_import_kw"], frames["power_kw"], groups)
    return [owner_input(o, ds, loads[o], sites[o], start, end, history_days, skip_days, tz,
                        interval_minutes) for o, ds in by_owner.items()]
