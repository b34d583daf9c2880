"""The rolling-origin backtest on the real data: every method scored on the same intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.backtest import BacktestOptions, run_backtest
from forecasting.calendars import ExplicitCalendar
from vpp.config import ForecastSettings


def _number(value: object) -> float:
    """A metric that must have been computed (the metrics are None without common intervals)."""
    assert isinstance(value, float), value
    return value


def test_backtest_ranks_lightgbm_first_on_real_data(elec15: pd.DataFrame) -> None:
    data = elec15.loc["2014-04-01":"2014-06-30"]
    cal = ExplicitCalendar.from_series(data["workday"])
    settings = ForecastSettings(n_estimators=60, num_leaves=15, train_days=60,
                                retrain_every_days=14, max_train_rows=30_000)
    calls: list[int] = []
    report = run_backtest(data[["load_kw"]], cal, settings,
                          BacktestOptions(horizon_steps=192, max_origins=28),
                          temperature_c=data["temperature_c"],
                          progress=lambda what, done, total: calls.append(done))
    assert len(report.origins) == 28 and calls[-1] == calls[-1] and calls == sorted(calls)
    day_ahead = {r["method"]: r for r in report.metrics if r["horizon"] == "day_ahead"}
    assert set(day_ahead) == {"seasonal_naive", "lightgbm", "similar_days", "high_4_of_5",
                              "10_of_10_adj"}
    assert len({r["n"] for r in day_ahead.values()}) == 1  # same intervals for all
    rel = {m: _number(r["rel_rmse"]) for m, r in day_ahead.items()}
    assert rel["lightgbm"] < rel["seasonal_naive"]
    assert rel["lightgbm"] < rel["10_of_10_adj"]
    assert 0.5 < _number(day_ahead["lightgbm"]["coverage_p10_p90"]) <= 1.0
    assert any(r["horizon"] == "48h" for r in report.metrics)
    pred = report.predictions["load_kw"]
    assert len(pred) == 28 * 96
    np.testing.assert_allclose(pred["actual"], data["load_kw"].reindex(pred.index))
