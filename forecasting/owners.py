"""The daemon's forecast from a site-load frame to per-owner quantiles, without any I/O.

:class:`vpp.daemon.forecasts.ForecastRefresher` reads site loads from the database and calls
:func:`forecast_sites` then :func:`owner_forecast`; the season simulator
(:func:`sim.aggregator.bid_call`) calls the same two on its in-memory meters. So both bid from
one forecaster entry point: the same model, the same minimum history, the same gap filling.

Units: kW per market interval (the interval's mean power); timestamps tz-aware.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.forecast import ForecastSettings, LoadForecast, LoadForecaster
from vpp.errors import ValidationError

#: Whole days of complete history a site needs before the model forecasts it.
MIN_HISTORY_DAYS = {"seasonal_naive": 7, "lightgbm": 14}
#: Most days of history a forecast is trained on (``[forecasting] train_days`` beyond it).
MAX_READ_DAYS = 120


@dataclass
class OwnerForecast:
    """Forecast load quantiles per owner: ``values_kw[owner]`` is (levels, times) kW on ``index``.

    An owner's quantiles are the sum of its sites' quantiles: comonotonic, so a wider band than
    the true one for the sum, which errs on the cautious side for the offer.
    """

    levels: Sequence[float]
    index: pd.DatetimeIndex
    values_kw: dict[int, np.ndarray]

    def window(self, owner_id: int, window: pd.DatetimeIndex) -> np.ndarray | None:
        """(levels, len(window)) for the owner, or None if the forecast does not cover it."""
        v = self.values_kw.get(owner_id)
        if v is None or len(window) == 0:
            return None
        pos = self.index.get_indexer(window)
        if (pos < 0).any():
            return None
        out = np.asarray(v, dtype=float)[:, pos]
        return out if np.isfinite(out).all() else None

    def median(self, q: np.ndarray) -> np.ndarray:
        """kW per interval at level 0.5 (interpolated between the levels) of ``q``."""
        lv = np.asarray(self.levels, dtype=float)
        return np.array([np.interp(0.5, lv, q[:, t]) for t in range(q.shape[1])])


@dataclass
class SiteForecastRun:
    """One forecast attempt: ``forecast`` (None with ``message`` saying why), the fitted
    ``forecaster`` to reuse, the sites forecast and the best site's history in days."""

    forecast: LoadForecast | None
    forecaster: LoadForecaster | None
    sites: tuple[int, ...]
    history_days: float
    message: str
    state: str  # "ok" | "insufficient_history" | "error" | "unchanged"
    data_end: pd.Timestamp | None = None


def min_history_days(cfg: ForecastSettings) -> int:
    """Whole days of history a site needs for ``cfg``: :data:`MIN_HISTORY_DAYS`, plus, for
    LightGBM with residual quantiles, the ``calibration_days`` its quantiles are calibrated on
    (:meth:`forecasting.models.GbmQuantileModel.fit` holds them out of training; with fewer,
    every fit failed after its training rows were built, at every refresh)."""
    need = MIN_HISTORY_DAYS.get(cfg.model, 14)
    if cfg.model == "lightgbm" and cfg.quantile_method == "residual" \
            and any(q != 0.5 for q in cfg.quantiles):
        need += cfg.calibration_days
    return need


def interpolate_gaps(load: pd.DataFrame, interval_minutes: int,
                     max_gap_minutes: int) -> pd.DataFrame:
    """Gaps of up to ``max_gap_minutes`` inside a series filled linearly; longer ones stay NaN."""
    limit = max_gap_minutes // interval_minutes
    if limit > 0:
        load = load.interpolate(limit=limit, limit_area="inside")
    return load


def forecast_sites(cfg: ForecastSettings, raw: pd.DataFrame,
                   forecaster: LoadForecaster | None = None, *,
                   fitted_sites: tuple[int, ...] = (),
                   unchanged_since: pd.Timestamp | None = None) -> SiteForecastRun:
    """Forecast the sites (columns of ``raw``, kW per interval, NaN where not metered) that have
    :data:`MIN_HISTORY_DAYS` complete days for ``cfg.model`` after gaps up to
    ``cfg.max_gap_minutes`` are filled. ``forecaster``: a model fitted on ``fitted_sites`` to
    reuse (None, or other sites: fit one). ``unchanged_since``: the last data interval of the
    previous forecast; when the data still ends there for the same sites, nothing is computed
    (state ``unchanged``). Never raises for want of data: the run says why there is none."""
    load = interpolate_gaps(raw, cfg.interval_minutes, cfg.max_gap_minutes)
    need = min_history_days(cfg)
    days = load.notna().sum(axis=0) / (1440 // cfg.interval_minutes)
    ok = tuple(c for c in load.columns if days[c] >= need)
    hist = float(days.max()) if len(days) else 0.0
    if not ok:
        return SiteForecastRun(None, forecaster, (), hist, (
            f"not enough history to forecast: {hist:.1f} days of complete telemetry at best, "
            f"need {need} for {cfg.model}"), "insufficient_history")
    frame = load[list(ok)]
    last = frame.dropna(how="all").index
    if unchanged_since is not None and last[-1] == unchanged_since and ok == fitted_sites:
        return SiteForecastRun(None, forecaster, ok, hist, "", "unchanged", last[-1])
    if ok != fitted_sites:
        forecaster = None
    frame = frame.loc[: last[-1]].copy()
    frame.columns = [str(c) for c in frame.columns]
    try:
        if forecaster is None:
            forecaster = LoadForecaster(cfg).fit(frame, include_fleet=False)
        fc = forecaster.forecast(frame)
    except ValidationError as exc:
        return SiteForecastRun(None, None, ok, hist, exc.message, "error")
    skipped = len(load.columns) - len(ok)
    msg = f"{len(ok)} site(s) forecast" + (
        f"; {skipped} with under {need} days of history left out" if skipped else "")
    return SiteForecastRun(fc, forecaster, ok, hist, msg, "ok", last[-1])


def owner_forecast(fc: LoadForecast | None, site_owner: Mapping[int, int]) -> OwnerForecast | None:
    """Per-owner quantiles (sum of the owner's sites) for owners whose sites are all
    forecast; None while there is no forecast."""
    if fc is None:
        return None
    have = {int(c) for c in fc.values_kw[fc.quantiles[0]].columns}
    owners: dict[int, list[int]] = {}
    for site, owner in site_owner.items():
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
