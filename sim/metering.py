"""The revenue meters of the simulated fleet: per-owner load per interval, each owner's site
meter (site import, where its devices read one), and a rolling per-device history (for
disaggregating an owner's baseline over its devices when scheduling).

Powers in kW, one value per market interval (the average over the interval). Owner rows are in
the order of ``owners``; device rows in fleet order. Plain numpy; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

from bidding.meter_frame import site_import_by_owner


class MeterStore:
    """Meter data for ``index`` (every simulated interval) of ``n_devices`` grouped by owner."""

    def __init__(self, index: pd.DatetimeIndex, owner_of_device: Sequence[int] | np.ndarray,
                 n_owners: int, history_days: int = 14, steps_per_day: int = 96) -> None:
        self.index = index
        self.owner_of_device = np.asarray(owner_of_device, dtype=np.int64)
        self.n_devices = len(self.owner_of_device)
        self.n_owners = n_owners
        self.owner_kw = np.full((n_owners, len(index)), np.nan, dtype=np.float64)
        # kW at each owner's grid connection (+ import), NaN where none of its devices reads a
        # site meter: the settlement's and the offer's export rule (bidding.export_rule)
        self.owner_site_kw = np.full((n_owners, len(index)), np.nan, dtype=np.float64)
        self.steps_per_day = steps_per_day
        self.history_days = history_days
        # ring buffer of whole days: day slot -> (devices, steps)
        self._dev = np.zeros((history_days, self.n_devices, steps_per_day), dtype=np.float32)
        self._dev_day: list[date | None] = [None] * history_days
        self._pos = {ts: i for i, ts in enumerate(index)}
        self.recorded = 0

    def position(self, ts: pd.Timestamp) -> int:
        return self._pos[ts]

    def record(self, pos: int, device_kw: np.ndarray, site_kw: np.ndarray | None = None) -> None:
        """Store one interval's device powers (kW, fleet order) at index position ``pos``, and
        the site meters the devices read (``site_kw``, fleet order, NaN or None: none; an
        owner's metering point is :func:`bidding.meter_frame.site_import_by_owner`, as the
        daemon's)."""
        kw = np.asarray(device_kw, dtype=np.float64)
        self.owner_kw[:, pos] = np.bincount(self.owner_of_device, weights=kw,
                                            minlength=self.n_owners)
        site = np.full(kw.shape, np.nan) if site_kw is None else np.asarray(site_kw,
                                                                            dtype=np.float64)
        self.owner_site_kw[:, pos] = site_import_by_owner(
            site[:, None], kw[:, None], self.owner_of_device, self.n_owners)[:, 0]
        ts = self.index[pos]
        day = ts.date()
        slot = ts.hour * (self.steps_per_day // 24) + ts.minute * self.steps_per_day // 1440
        ring = day.toordinal() % self.history_days
        if self._dev_day[ring] != day:
            self._dev_day[ring] = day
            self._dev[ring] = np.nan
        self._dev[ring, :, slot] = kw
        self.recorded = max(self.recorded, pos + 1)

    def owner_series(self, owner: int, end: pd.Timestamp | None = None) -> pd.Series:
        """An owner's metered load up to (excluding) ``end``; only recorded intervals."""
        stop = self.recorded if end is None else min(self.recorded, self._pos.get(end, self.recorded))
        return pd.Series(self.owner_kw[owner, :stop], index=self.index[:stop])

    def owner_site_series(self, owner: int, end: pd.Timestamp | None = None) -> pd.Series:
        """An owner's site import up to (excluding) ``end`` (NaN: not metered)."""
        stop = self.recorded if end is None else min(self.recorded, self._pos.get(end, self.recorded))
        return pd.Series(self.owner_site_kw[owner, :stop], index=self.index[:stop])

    def site_window(self, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
        """Owners' site import (owners x intervals) over [start, end); NaN: not metered."""
        return self.owner_site_kw[:, self._pos[start]:self._pos[end]]

    def fleet_series(self, end: pd.Timestamp | None = None) -> pd.Series:
        stop = self.recorded if end is None else min(self.recorded, self._pos.get(end, self.recorded))
        return pd.Series(self.owner_kw[:, :stop].sum(axis=0), index=self.index[:stop])

    def window(self, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
        """Owner loads (owners x intervals) over [start, end)."""
        return self.owner_kw[:, self._pos[start]:self._pos[end]]

    def device_load_at(self, rows: np.ndarray, instants: pd.DatetimeIndex) -> np.ndarray:
        """Device loads (kW, ``rows`` x ``instants``) at interval starts ``instants``, from the
        per-device ring; NaN where that day is no longer (or not yet) held, or at NaT.
        The :data:`forecasting.device_baselines.DeviceLoadAt` of the simulator's meters."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.full((len(rows), len(instants)), np.nan)
        local = instants.tz_convert(self.index.tz)
        for j, ts in enumerate(local):
            if ts is pd.NaT:
                continue
            day = ts.date()
            ring = day.toordinal() % self.history_days
            if self._dev_day[ring] != day:
                continue
            slot = ts.hour * (self.steps_per_day // 24) + ts.minute * self.steps_per_day // 1440
            out[:, j] = self._dev[ring, rows, slot]
        return out

