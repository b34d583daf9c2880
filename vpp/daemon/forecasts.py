"""Load forecasts in the daemon: per site, from stored telemetry, refreshed by the ``baselines``
loop (:meth:`ForecastRefresher.step`).

Each step reads the last ``settings.forecasting.train_days`` (at most :data:`MAX_READ_DAYS`) of
telemetry, averages each device per market interval and sums devices per site (a site interval
is missing when one of its devices is); gaps up to ``forecasting.max_gap_minutes`` are
interpolated. Sites with less than :data:`MIN_HISTORY_DAYS` days of data for the configured
model are not forecast, and the status says so (``insufficient_history``): no numbers are made
up. The model (:class:`forecasting.forecast.LoadForecaster`) is fitted, then re-fitted every
``forecasting.retrain_every_days`` or when the set of sites changes, and asked for a forecast
whenever a new interval has closed. Reading, fitting and forecasting run in executors, never
on the event loop.

The latest forecast is kept in memory (:attr:`ForecastRefresher.latest`, sites as columns) and
per owner for bidding (:meth:`ForecastRefresher.owner_forecast`); no forecast table exists, so
nothing is written to the database here (the bid records which quantiles it used).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlmodel import Session, col, select

from bidding.workflow import OwnerForecast, owner_load, read_meter_frame
from forecasting.forecast import LoadForecast, LoadForecaster
from vpp.errors import ValidationError
from vpp.models import Device

log = logging.getLogger("vpp.daemon.forecasts")

MIN_HISTORY_DAYS = {"seasonal_naive": 7, "lightgbm": 14}
MAX_READ_DAYS = 120


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


def site_load(engine, sites: dict[int, tuple[int, list[int]]], start: datetime,  # type: ignore[no-untyped-def]
              end: datetime, interval_minutes: int, max_gap_minutes: int) -> pd.DataFrame:
    """kW per (interval, site) in ``[start, end)``; short gaps interpolated, long ones NaN."""
    ids = [d for _, devs in sites.values() for d in devs]
    meter = read_meter_frame(engine, ids, start, end, interval_minutes)
    load = owner_load(meter, {site: devs for site, (_, devs) in sites.items()})
    limit = max_gap_minutes // interval_minutes
    if limit > 0:
        load = load.interpolate(limit=limit, limit_area="inside")
    return load


class ForecastRefresher:
    """See the module docstring."""

    def __init__(self, services) -> None:  # type: ignore[no-untyped-def]
        self.services = services
        self.status = ForecastStatus()
        self.latest: LoadForecast | None = None
        self.site_owner: dict[int, int] = {}
        self._forecaster: LoadForecaster | None = None
        self._fitted_sites: tuple[int, ...] = ()
        self._last_data_end: pd.Timestamp | None = None

    def set_state(self, state: str, message: str, **kw) -> None:  # type: ignore[no-untyped-def]
        self.status.state = state
        self.status.message = message
        for k, v in kw.items():
            setattr(self.status, k, v)
        m = self.services.metrics
        for st in ("ok", "insufficient_history", "error", "not_run"):
            m.forecast_state.labels(st).set(1.0 if st == state else 0.0)
        m.forecast_sites.labels("total").set(self.status.sites_total)
        m.forecast_sites.labels("forecast").set(self.status.sites_forecast)

    async def step(self) -> None:
        """Refresh the forecast if a new interval has closed (and re-fit when due)."""
        s = self.services
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
        load = await s.db.call(functools.partial(
            site_load, s.db.engine, sites, start, end, cfg.interval_minutes, cfg.max_gap_minutes))
        need = MIN_HISTORY_DAYS.get(cfg.model, 14)
        per_day = 1440 // cfg.interval_minutes
        days = load.notna().sum(axis=0) / per_day
        ok = [c for c in load.columns if days[c] >= need]
        hist = float(days.max()) if len(days) else 0.0
        if not ok:
            msg = (f"not enough history to forecast: {hist:.1f} days of complete telemetry at "
                   f"best, need {need} for {cfg.model}")
            if self.status.state != "insufficient_history":
                log.warning(msg)
            self.latest = None
            self.set_state("insufficient_history", msg, sites_total=len(sites), sites_forecast=0,
                      history_days=hist)
            s.metrics.forecast_refreshes.labels("insufficient_history").inc()
            return
        frame = load[ok]
        last = frame.dropna(how="all").index
        frame = frame.loc[: last[-1]]
        if self._last_data_end is not None and last[-1] == self._last_data_end \
                and tuple(ok) == self._fitted_sites and self.latest is not None:
            return  # nothing new since the last refresh
        refit = (self._forecaster is None or tuple(ok) != self._fitted_sites
                 or self.status.fitted_at is None
                 or now - self.status.fitted_at >= timedelta(days=cfg.retrain_every_days))
        loop = asyncio.get_running_loop()
        try:
            fc, forecaster = await loop.run_in_executor(
                None, functools.partial(_fit_and_forecast, cfg, frame,
                                        None if refit else self._forecaster))
        except ValidationError as exc:
            self.latest = None
            self.set_state("error", exc.message, sites_total=len(sites), sites_forecast=0,
                      history_days=hist)
            s.metrics.forecast_refreshes.labels("error").inc()
            log.warning("forecast not refreshed: %s", exc.message)
            return
        dt = time.perf_counter() - t0
        self._forecaster = forecaster
        if refit:
            self._fitted_sites = tuple(ok)
            self.status.fitted_at = now
        self._last_data_end = last[-1]
        self.latest = fc
        skipped = len(sites) - len(ok)
        msg = f"{len(ok)} site(s) forecast" + (
            f"; {skipped} with under {need} days of history left out" if skipped else "")
        self.set_state("ok", msg, sites_total=len(sites), sites_forecast=len(ok), history_days=hist,
                  refreshed_at=now, seconds=dt)
        s.metrics.forecast_refreshes.labels("refit" if refit else "refresh").inc()
        s.metrics.forecast_seconds.observe(dt)
        s.metrics.forecast_origin.set(fc.origin.timestamp())

    def owner_forecast(self) -> OwnerForecast | None:
        """Per-owner quantiles (sum of the owner's sites) for owners whose sites are all
        forecast; None while there is no forecast."""
        fc = self.latest
        if fc is None:
            return None
        have = {int(c) for c in fc.values_kw[fc.quantiles[0]].columns}
        owners: dict[int, list[int]] = {}
        for site, owner in self.site_owner.items():
            owners.setdefault(owner, []).append(site)
        values: dict[int, np.ndarray] = {}
        for owner, sites in owners.items():
            if not set(sites) <= have:
                continue
            cols = [str(x) for x in sites]
            values[owner] = np.vstack([fc.values_kw[q][cols].sum(axis=1).to_numpy()
                                       for q in fc.quantiles])
        index = fc.values_kw[fc.quantiles[0]].index
        return OwnerForecast(levels=list(fc.quantiles), index=index, values_kw=values)


def _fit_and_forecast(cfg, frame: pd.DataFrame, forecaster: LoadForecaster | None  # type: ignore[no-untyped-def]
                      ) -> tuple[LoadForecast, LoadForecaster]:
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    if forecaster is None:
        forecaster = LoadForecaster(cfg).fit(frame, include_fleet=False)
    return forecaster.forecast(frame), forecaster
