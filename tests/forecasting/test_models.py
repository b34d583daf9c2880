"""Models and the forecaster on the real Victorian data (small LightGBM models for speed)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from forecasting.calendars import ChineseCalendar, ExplicitCalendar, calendar_features
from forecasting.forecast import FLEET, LoadForecaster
from forecasting.metrics import coverage, pinball_loss, point_metrics
from forecasting.models import GbmQuantileModel, seasonal_naive, training_origins
from forecasting.panel import build_features, build_panel
from vpp.config import ForecastSettings
from vpp.errors import ValidationError

SMALL = {"n_estimators": 40, "num_leaves": 15, "train_days": 60, "max_train_rows": 30_000}


@pytest.fixture(scope="module")
def spring(elec15: pd.DataFrame) -> pd.DataFrame:
    """March to May 2014 (no heat waves) of the real data."""
    return elec15.loc["2014-03-01":"2014-05-31"]


def test_chinese_calendar_features() -> None:
    idx = pd.date_range("2024-09-29", "2024-10-02", freq="15min", tz="Asia/Shanghai",
                        inclusive="left")
    f = calendar_features(idx, ChineseCalendar(), 15)
    day = f.groupby(idx.date).first()
    assert day.loc[date(2024, 9, 29), "workday"] == 1  # Sunday, adjusted working day
    assert day.loc[date(2024, 9, 29), "adjusted_workday"] == 1
    assert day.loc[date(2024, 10, 1), "holiday"] == 1
    assert day.loc[date(2024, 9, 30), "next_workday"] == 0
    assert f["slot"].iloc[-1] == 95


def test_chinese_calendar_falls_back_outside_its_years() -> None:
    cal = ChineseCalendar()
    assert cal.is_workday([date(2099, 1, 5), date(2099, 1, 4)]).tolist() == [True, False]
    assert cal.fallback_years == {2099}
    with pytest.raises(ValidationError, match="no data for 2099"):
        ChineseCalendar(strict=True).is_workday([date(2099, 1, 5)])


def test_seasonal_naive_is_last_week(spring: pd.DataFrame) -> None:
    cal = ExplicitCalendar.from_series(spring["workday"])
    panel = build_panel(spring[["load_kw"]], cal, horizon_steps=96, interval_minutes=15)
    o = 40 * 96
    fc = seasonal_naive(panel, np.array([o]), 96, [0.1, 0.5, 0.9])
    np.testing.assert_allclose(fc[1, 0, 0], spring["load_kw"].to_numpy()[o - 672: o - 672 + 96])
    assert (fc[0] <= fc[1]).all() and (fc[1] <= fc[2]).all()


def test_features_use_only_the_past(spring: pd.DataFrame) -> None:
    """Changing everything from the origin on changes no feature, only the target."""
    cal = ExplicitCalendar.from_series(spring["workday"])
    load = spring[["load_kw"]]
    o = 50 * 96 + 30
    p1 = build_panel(load, cal, temperature_c=spring["temperature_c"], horizon_steps=192, interval_minutes=15)
    p2 = build_panel(load, cal, temperature_c=spring["temperature_c"], horizon_steps=192, interval_minutes=15)
    p2.y_kw[:, o:] *= 3.0
    x1, y1, _ = build_features(p1, np.array([o]), 192)
    x2, y2, _ = build_features(p2, np.array([o]), 192)
    np.testing.assert_array_equal(x1, x2)
    assert not np.allclose(y1, y2)


def test_lightgbm_forecast_48h_with_ordered_quantiles(spring: pd.DataFrame) -> None:
    cal = ExplicitCalendar.from_series(spring["workday"])
    train = spring.loc[:"2014-05-17"]
    s = ForecastSettings(horizon_hours=48, **SMALL)
    fc = LoadForecaster(s, cal).fit(train[["load_kw"]], spring["temperature_c"])
    out = fc.forecast(train[["load_kw"]], spring["temperature_c"])
    assert out.origin == pd.Timestamp("2014-05-18 00:00", tz=spring.index.tz)
    p10, p50, p90 = (out.quantile(q)["load_kw"] for q in (0.1, 0.5, 0.9))
    assert len(p50) == 192 and (p10 <= p50).all() and (p50 <= p90).all()
    actual = spring["load_kw"].reindex(p50.index)
    gbm_err = point_metrics(actual.to_numpy(), p50.to_numpy())["rel_rmse"]
    assert gbm_err is not None and gbm_err < 0.10
    long = out.to_long()
    assert list(long.columns) == ["p10", "p50", "p90"] and len(long) == 192
    with pytest.raises(ValidationError, match="quantile 0.3"):
        out.quantile(0.3)


def test_fleet_forecast_and_batches(spring: pd.DataFrame) -> None:
    """Several sites (the real series, scaled) in batches of 2; the fleet is one more series."""
    cal = ExplicitCalendar.from_series(spring["workday"])
    base = spring["load_kw"] / 1000.0
    sites = pd.DataFrame({f"s{i}": base * (1 + i) for i in range(5)})
    s = ForecastSettings(horizon_hours=24, model="lightgbm", **SMALL)
    fc = LoadForecaster(s, cal)
    fc.fit(sites.loc[:"2014-05-10"])
    assert fc.model is not None
    fc.model.site_batch = 2
    per_site = fc.forecast(sites.loc[:"2014-05-10"]).quantile(0.5)
    fleet = fc.forecast_fleet(sites.loc[:"2014-05-10"]).quantile(0.5)
    assert list(per_site.columns) == [f"s{i}" for i in range(5)]
    assert list(fleet.columns) == [FLEET]
    # scale-free model: site i's forecast is (1 + i) times site 0's; the fleet about 15 times
    np.testing.assert_allclose(per_site["s4"], 5 * per_site["s0"], rtol=1e-4)
    np.testing.assert_allclose(fleet[FLEET], per_site.sum(axis=1), rtol=1e-4)


def test_forecaster_needs_fit_and_history(spring: pd.DataFrame) -> None:
    cal = ExplicitCalendar.from_series(spring["workday"])
    with pytest.raises(ValidationError, match="fitted"):
        LoadForecaster(ForecastSettings(), cal).forecast(spring[["load_kw"]])
    with pytest.raises(ValidationError, match="not enough history"):
        LoadForecaster(ForecastSettings(**SMALL), cal).fit(spring[["load_kw"]].iloc[: 10 * 96])


def test_training_never_sees_targets_after_the_cutoff(spring: pd.DataFrame) -> None:
    cal = ExplicitCalendar.from_series(spring["workday"])
    panel = build_panel(spring[["load_kw"]], cal, horizon_steps=96, interval_minutes=15)
    cut = 60 * 96
    origins = training_origins(panel, cut, 24, 30)
    assert origins.max() < cut and origins.min() >= cut - 30 * 96
    m1 = GbmQuantileModel([0.5], n_estimators=10).fit(panel, origins, 96, target_end=cut)
    panel.y_kw[:, cut:] = 0.0
    m2 = GbmQuantileModel([0.5], n_estimators=10).fit(panel, origins, 96, target_end=cut)
    o = np.array([cut])
    np.testing.assert_array_equal(m1.predict(panel, o, 96), m2.predict(panel, o, 96))


def test_metrics_by_hand() -> None:
    a = np.array([10.0, 20.0, 30.0, np.nan])
    p = np.array([12.0, 18.0, 30.0, 5.0])
    m = point_metrics(a, p)
    assert m["n"] == 3 and m["mae_kw"] == pytest.approx(4 / 3)
    assert m["rmse_kw"] == pytest.approx(np.sqrt(8 / 3))
    assert m["rel_rmse"] == pytest.approx(np.sqrt(8 / 3) / 20)
    assert m["mape"] == pytest.approx((0.2 + 0.1) / 3)
    assert point_metrics(np.array([0.0, 10.0]), np.array([1.0, 10.0]))["mape"] is None
    # pinball: q=0.9, a-p = -2, +2, 0 -> 0.2, 1.8, 0 -> mean 2/3
    assert pinball_loss(a, {0.9: p}) == pytest.approx(2 / 3)
    assert coverage(a, p - 1, p + 1) == pytest.approx(1 / 3)


@pytest.mark.parametrize("method", ["residual", "quantile"])
def test_quantile_methods(spring: pd.DataFrame, method: str) -> None:
    """Both ways of getting P10/P90 give ordered bands around the point forecast; the residual
    method's band comes from errors measured on origins its first model did not train on."""
    cal = ExplicitCalendar.from_series(spring["workday"])
    s = ForecastSettings(horizon_hours=24, quantile_method=method, calibration_days=14, **SMALL)
    fc = LoadForecaster(s, cal).fit(spring[["load_kw"]].loc[:"2014-05-20"])
    assert fc.model is not None
    if method == "residual":
        assert set(fc.model.boosters) == {0.5}
        rq = fc.model.residual_q
        assert rq is not None and rq.shape == (3, 24)
        assert (rq[0] < rq[2]).all() and (rq[0] < 0).all() and (rq[1] == 0).all()
    else:
        assert set(fc.model.boosters) == {0.1, 0.5, 0.9}
    out = fc.forecast(spring[["load_kw"]].loc[:"2014-05-20"])
    p10, p50, p90 = (out.quantile(q)["load_kw"] for q in (0.1, 0.5, 0.9))
    assert (p10 <= p50).all() and (p50 <= p90).all() and (p90 - p10).mean() > 0
