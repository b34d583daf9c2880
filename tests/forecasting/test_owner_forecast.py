"""forecasting.owners: the forecaster entry point the daemon's refresher and the season simulator
share (site frame in, owners' quantiles out)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.owners import forecast_sites, min_history_days, owner_forecast
from vpp.config import ForecastSettings

STEP = pd.Timedelta(minutes=15)


def _frame(days: int, sites: tuple[int, ...] = (1, 2, 3)) -> pd.DataFrame:
    """``days`` of 15-minute site loads (kW) with a daily shape and noise, ending now-ish."""
    end = pd.Timestamp("2025-07-20 00:00", tz="Asia/Shanghai")
    index = pd.date_range(end - pd.Timedelta(days=days), end, freq=STEP, inclusive="left")
    rng = np.random.default_rng(5)
    hours = index.hour.to_numpy()
    shape = 100 + 50 * np.sin(np.pi * np.clip(hours - 7, 0, 14) / 14)
    return pd.DataFrame({s: shape * (1 + 0.1 * s) * rng.uniform(0.9, 1.1, len(index))
                         for s in sites}, index=index)


def test_lightgbm_waits_for_the_days_its_quantiles_are_calibrated_on() -> None:
    """14 days for the model and 28 held out to calibrate its quantiles: with 20 days every fit
    failed ("not enough history to calibrate") after building its training rows, at every
    refresh of the daemon and every call of the season; now it is not attempted."""
    cfg = ForecastSettings()
    assert min_history_days(cfg) == 14 + cfg.calibration_days
    run = forecast_sites(cfg, _frame(20))
    assert run.state == "insufficient_history" and run.forecaster is None
    assert "need 42 for lightgbm" in run.message
    assert min_history_days(cfg.model_copy(update={"quantile_method": "quantile"})) == 14


def test_owners_quantiles_are_their_sites_summed() -> None:
    cfg = ForecastSettings(model="seasonal_naive", horizon_hours=24)
    run = forecast_sites(cfg, _frame(8))
    assert run.state == "ok" and run.sites == (1, 2, 3)
    of = owner_forecast(run.forecast, {1: 10, 2: 10, 3: 20})
    assert of is not None and set(of.values_kw) == {10, 20}
    fc = run.forecast
    assert fc is not None
    median = fc.values_kw[0.5][["1", "2"]].sum(axis=1).to_numpy()  # level 0.5 is row 1
    np.testing.assert_allclose(of.values_kw[10][1], median)
    # nothing new since: nothing computed
    again = forecast_sites(cfg, _frame(8), run.forecaster, fitted_sites=run.sites,
                           unchanged_since=run.data_end)
    assert again.state == "unchanged" and again.forecast is None
