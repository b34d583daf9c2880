"""Load forecasts in the daemon: per site, from stored telemetry, refreshed by the ``baselines``
loop (:meth:`ForecastRefresher.step`).

The history is the last ``settings.forecasting.train_days`` (at most :data:`MAX_READ_DAYS`) of
telemetry, each device averaged per market interval by the database and devices summed per site
(a site interval is missing when one of its devices is); gaps up to
``forecasting.max_gap_minutes`` are interpolated. It is kept between steps
(:class:`SiteLoadHistory`): a step reads only the intervals closed since the last one (and the
last two hours again, for late readings). Sites with less than :data:`MIN_HISTORY_DAYS` days
of data for the configured model are not forecast, and the status says so
(``insufficient_history``): no numbers are made up. The model
(:class:`forecasting.forecast.LoadForecaster`) is fitted, then re-fitted every
``forecasting.retrain_every_days`` or when the set of sites changes, and asked for a forecast
whenever a new interval has closed. Reading, fitting and forecasting run in executors, never
on the event loop.

The latest forecast is kept in memory (:attr:`ForecastRefresher.latest`, sites as columns) and
per owner for bidding (:meth:`ForecastRefresher.owner_forecast`); no forecast table exists, so
nothing is written to the database here (the bid records which quantiles it used). The
computation from the site frame on (gap filling, the minimum history, fitting, forecasting,
owners' sums) is :mod:`forecasting.owners`, which the season simulator calls too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd
from sqlmodel import Session, col, select

from forecasting.forecast import LoadForecast, LoadForecaster
from forecasting.owners import (
    MAX_READ_DAYS,
    MIN_HISTORY_DAYS,
    OwnerForecast,
    forecast_sites,
    owner_forecast,
)
from vpp.models import Device
from vpp.telemetry_store import interval_means

if TYPE_CHECKING:
    from vpp.daemon.infra import Infra

log = logging.getLogger("vpp.daemon.forecasts")

__all__ = ["MAX_READ_DAYS", "MIN_HISTORY_DAYS", "ForecastRefresher", "SiteLoadHistory", "site_means"]


@dataclass
class ForecastStatus:
    state: str = "not_run"  # not_run | ok | insufficient_history | error
    message: str = ""
    sites_total: int = 0
    sites_forecast: int = 0
    history_days: float = 0.0
    refreshed_at: datetime | None = None
    fitted_at: datetime | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "state": self.state, "message": self.message, "sites_total": self.sites_total,
            "sites_forecast": self.sites_forecast, "history_days": round(self.history_days, 2),
            "refreshed_at": self.refreshed_at.isoformat() if self.refreshed_at else None,
            "fitted_at": self.fitted_at.isoformat() if self.fitted_at else None,
            "seconds": round(self.seconds, 3),
        }


def _sites(s: Session) -> dict[int, tuple[int, list[int]]]:
    """site_id -> (owner_id, device ids) for enrolled devices (not pending or failed)."""
    out: dict[int, tuple[int, list[int]]] = {}
    rows = s.exec(select(Device.id, Device.site_id, Device.owner_id, Device.status)
                  .where(col(Device.status).not_in(["pending", "failed"]))).all()
    for did, site, owner, _ in rows:
        out.setdefault(int(site), (int(owner), []))[1].append(int(did or 0))
    return out


def site_means(means: pd.DataFrame, sites: dict[int, tuple[int, list[int]]],
               grid: pd.DatetimeIndex) -> pd.DataFrame:
    """kW per (interval in ``grid``, site) from per-device interval means (the long frame of
    :func:`vpp.telemetry_store.interval_means`): the sum of the site's devices, NaN where one
    of them has no mean (the rule of :func:`bidding.workflow.owner_load`)."""
    site_of = {d: site for site, (_, devs) in sites.items() for d in devs}
    columns = list(sites)
    if means.empty:
        return pd.DataFrame(np.nan, index=grid, columns=columns)
    m = means[means["device_id"].isin(site_of.keys())]
    m = m.assign(site=m["device_id"].map(site_of))
    g = m.groupby(["interval_start", "site"])["power_kw"].agg(["sum", "count"])
    total = g["sum"].unstack("site").reindex(index=grid, columns=columns)
    count = g["count"].unstack("site").reindex(index=grid, columns=columns).fillna(0)
    need = np.array([len(sites[c][1]) for c in columns], dtype=float)
    return total.where(count.to_numpy() >= need)


#: intervals re-read at every refresh before the last one read: readings that reach the
#: database late (buffered by the poller through a database outage of up to 2 hours) still
#: count. Later ones are picked up by the full re-read.
REREAD_INTERVALS = 8
#: a full re-read of the window at least this often (and whenever the sites change)
FULL_REREAD_EVERY = timedelta(days=1)


class SiteLoadHistory:
    """The per-site load history the forecast trains on, kept between refreshes.

    The first refresh reads the window ``[start, end)`` (at most :data:`MAX_READ_DAYS`); the
    next ones read only the intervals closed since, plus the last :data:`REREAD_INTERVALS`
    again, and shift the window; nothing is read while no interval has closed. Averaging is
    done by the database (:func:`vpp.telemetry_store.interval_means`), so no raw reading is
    fetched. Before this, every 60 s refresh re-read every raw reading of the window into
    Python and built a (days x 96) x devices grid: ~290 MB allocated and 2.5-3.7 s of CPU per
    minute at 1,000 devices, the load benchmark's memory growth (docs/reliability.md).

    Memory: one float per site and interval of the window, at most
    ``MAX_READ_DAYS * 1440 / interval_minutes * 8`` bytes per site (92 kB at 15 minutes).
    """

    def __init__(self, interval_minutes: int) -> None:
        self.interval_minutes = interval_minutes
        self.frame: pd.DataFrame | None = None  # un-interpolated, index = the window's grid
        self.last_read: tuple[datetime, datetime] | None = None  # what the last update read
        self._key: tuple | None = None
        self._end: datetime | None = None
        self._full_at: datetime | None = None

    def update(self, engine, sites: dict[int, tuple[int, list[int]]],  # type: ignore[no-untyped-def]
               start: datetime, end: datetime) -> pd.DataFrame:
        """The site frame for ``[start, end)`` (un-interpolated); reads what is new."""
        step = timedelta(minutes=self.interval_minutes)
        key = tuple(sorted((site, tuple(sorted(devs))) for site, (_, devs) in sites.items()))
        grid = pd.date_range(start, end, freq=f"{self.interval_minutes}min", inclusive="left")
        full = (self.frame is None or self._end is None or self._full_at is None
                or key != self._key or end < self._end or end - self._full_at >= FULL_REREAD_EVERY)
        if not full and end == self._end and self.frame is not None \
                and self.frame.index[0] == grid[0]:
            self.last_read = None
            return self.frame
        read_from = start if full else max(  # not full: self._end is set
            start, cast(datetime, self._end) - REREAD_INTERVALS * step)
        ids = [d for _, devs in sites.values() for d in devs]
        fresh = site_means(interval_means(engine, ids, read_from, end, self.interval_minutes),
                           sites, grid[grid >= read_from])
        if full:
            frame = fresh
            self._full_at = end
        else:
            old = self.frame
            assert old is not None
            kept = old[(old.index >= start) & (old.index < read_from)]
            frame = pd.concat([kept, fresh]).reindex(index=grid, columns=list(sites))
        self.frame, self._key, self._end, self.last_read = frame, key, end, (read_from, end)
        return frame


class ForecastRefresher:
    """See the module docstring."""

    def __init__(self, infra: Infra) -> None:
        self.infra = infra
        self.status = ForecastStatus()
        self.latest: LoadForecast | None = None
        self.site_owner: dict[int, int] = {}
        self._forecaster: LoadForecaster | None = None
        self._fitted_sites: tuple[int, ...] = ()
        self._last_data_end: pd.Timestamp | None = None
        self.history = SiteLoadHistory(infra.settings.forecasting.interval_minutes)

    def set_state(self, state: str, message: str, **kw) -> None:  # type: ignore[no-untyped-def]
        self.status.state = state
        self.status.message = message
        for k, v in kw.items():
            setattr(self.status, k, v)
        m = self.infra.metrics
        for st in ("ok", "insufficient_history", "error", "not_run"):
            m.forecast_state.labels(st).set(1.0 if st == state else 0.0)
        m.forecast_sites.labels("total").set(self.status.sites_total)
        m.forecast_sites.labels("forecast").set(self.status.sites_forecast)

    async def step(self) -> None:
        """Refresh the forecast if a new interval has closed (and re-fit when due)."""
        s = self.infra
        cfg = s.settings.forecasting
        now = s.clock()
        step = timedelta(minutes=cfg.interval_minutes)
        sites = await s.db.run(_sites)
        self.site_owner = {site: owner for site, (owner, _) in sites.items()}
        if not sites:
            self.set_state("insufficient_history", "no devices enrolled", sites_total=0,
                      sites_forecast=0)
            return
        end = pd.Timestamp(now).floor(step).to_pydatetime()
        start = end - timedelta(days=min(cfg.train_days, MAX_READ_DAYS))
        t0 = time.perf_counter()
        raw = await s.db.call(functools.partial(self.history.update, s.db.engine, sites, start,
                                                end))
        refit = (self._forecaster is None or self.status.fitted_at is None
                 or now - self.status.fitted_at >= timedelta(days=cfg.retrain_every_days))
        loop = asyncio.get_running_loop()
        run = await loop.run_in_executor(None, functools.partial(
            forecast_sites, cfg, raw, None if refit else self._forecaster,
            fitted_sites=self._fitted_sites,
            unchanged_since=self._last_data_end if self.latest is not None else None))
        hist = run.history_days
        if run.state == "unchanged":
            return  # nothing new since the last refresh
        if run.state == "insufficient_history":
            if self.status.state != "insufficient_history":
                log.warning(run.message)
            self.latest = None
            self.set_state("insufficient_history", run.message, sites_total=len(sites),
                           sites_forecast=0, history_days=hist)
            s.metrics.forecast_refreshes.labels("insufficient_history").inc()
            return
        if run.forecast is None:
            self.latest = None
            self.set_state("error", run.message, sites_total=len(sites), sites_forecast=0,
                      history_days=hist)
            s.metrics.forecast_refreshes.labels("error").inc()
            log.warning("forecast not refreshed: %s", run.message)
            return
        fc = run.forecast
        refit = run.forecaster is not self._forecaster
        dt = time.perf_counter() - t0
        self._forecaster = run.forecaster
        if refit:
            self._fitted_sites = run.sites
            self.status.fitted_at = now
        self._last_data_end = run.data_end
        self.latest = fc
        self.set_state("ok", run.message, sites_total=len(sites), sites_forecast=len(run.sites),
                       history_days=hist, refreshed_at=now, seconds=dt)
        s.metrics.forecast_refreshes.labels("refit" if refit else "refresh").inc()
        s.metrics.forecast_seconds.observe(dt)
        s.metrics.forecast_origin.set(fc.origin.timestamp())

    def owner_forecast(self) -> OwnerForecast | None:
        """Per-owner quantiles (:func:`forecasting.owners.owner_forecast`); None while there is
        no forecast."""
        return owner_forecast(self.latest, self.site_owner)
