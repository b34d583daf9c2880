"""Rolling-origin backtest of the forecast models and the baseline methods.

Every day ``D`` of the test period is a forecast origin at local midnight. The models forecast
``horizon`` steps from there using only data before ``D`` (LightGBM is retrained every
``retrain_every_days`` on the history before the block of origins it serves, and never sees a
target after its cut-off). The baselines compute the day ``[D, D+1)`` as if it were an event,
with any day-of adjustment taken from the hours before midnight. All methods are scored on the
same day-ahead intervals (those where every method has a value); the models are also scored on
their full horizon when it is longer than a day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecasting.baselines import BaselineSpec, compute_baseline
from forecasting.calendars import DayCalendar
from forecasting.metrics import coverage, pinball_loss, point_metrics
from forecasting.models import GbmQuantileModel, seasonal_naive, training_origins
from forecasting.panel import build_panel
from vpp.config import ForecastSettings
from vpp.errors import ValidationError

DEFAULT_BASELINES: dict[str, BaselineSpec] = {
    "similar_days": BaselineSpec(method="similar_days"),
    "high_4_of_5": BaselineSpec(method="x_of_y", x=4, y=5),
    "10_of_10_adj": BaselineSpec(method="x_of_y", x=10, y=10, day_of_adjustment=True),
}

Progress = Callable[[str, int, int], None]


@dataclass
class BacktestOptions:
    """What to test; model hyper-parameters come from :class:`ForecastSettings`."""

    horizon_steps: int = 96
    min_history_days: int = 42
    max_origins: int | None = None
    baselines: dict[str, BaselineSpec] = field(default_factory=lambda: dict(DEFAULT_BASELINES))
    models: tuple[str, ...] = ("seasonal_naive", "lightgbm")


@dataclass
class BacktestReport:
    """Metrics rows (one per site, method and horizon) and the day-ahead predictions per site."""

    metrics: list[dict[str, object]]
    predictions: dict[str, pd.DataFrame]
    origins: list[pd.Timestamp]
    notes: list[str] = field(default_factory=list)

    def metric(self, site: str, method: str, key: str = "rel_rmse",
               horizon: str = "day_ahead") -> float | None:
        for row in self.metrics:
            if row["site"] == site and row["method"] == method and row["horizon"] == horizon:
                v = row.get(key)
                return None if v is None else float(v)  # type: ignore[arg-type]
        return None


def run_backtest(
    load_kw: pd.DataFrame,
    calendar: DayCalendar,
    settings: ForecastSettings,
    options: BacktestOptions,
    *,
    temperature_c: pd.Series | None = None,
    progress: Progress | None = None,
) -> BacktestReport:
    """Backtest every column of ``load_kw`` (kW, aware 15-min index)."""
    interval = settings.interval_minutes
    steps = 1440 // interval
    h = options.horizon_steps
    panel = build_panel(load_kw, calendar, temperature_c=temperature_c, horizon_steps=h,
                        interval_minutes=interval)
    first = options.min_history_days * steps
    origins = np.arange(first, panel.n_data - steps + 1, steps, dtype=np.int64)
    if options.max_origins is not None:
        origins = origins[-options.max_origins:]
    if len(origins) == 0:
        have = panel.n_data / steps
        raise ValidationError(
            f"not enough data for a backtest: {have:.1f} days, need more than "
            f"{options.min_history_days + 1} (the first {options.min_history_days} are history)"
        )
    quantiles = list(settings.quantiles)
    notes: list[str] = []
    forecasts: dict[str, np.ndarray] = {}  # name -> (k, N, H)
    qfc: dict[float, np.ndarray] = {}
    total = len(origins) * (1 + len(options.baselines) * len(panel.sites))
    done = 0

    def tick(what: str, n: int = 1) -> None:
        nonlocal done
        done += n
        if progress:
            progress(what, done, total)

    if "seasonal_naive" in options.models:
        forecasts["seasonal_naive"] = seasonal_naive(panel, origins, h, [0.5])[0]
    if "lightgbm" in options.models:
        block = settings.retrain_every_days
        out = np.empty((len(quantiles), len(origins), len(panel.sites), h))
        for b in range(0, len(origins), block):
            blk = origins[b: b + block]
            model = GbmQuantileModel(
                quantiles, n_estimators=settings.n_estimators,
                learning_rate=settings.learning_rate, num_leaves=settings.num_leaves,
                min_data_in_leaf=settings.min_data_in_leaf,
                max_train_rows=settings.max_train_rows, seed=settings.seed, num_threads=settings.num_threads,
                quantile_method=settings.quantile_method,
                calibration_days=settings.calibration_days,
            )
            tr = training_origins(panel, int(blk[0]), settings.train_origin_stride_hours * 60
                                  // interval, settings.train_days, min_history_days=14)
            model.fit(panel, tr, h, target_end=int(blk[0]))
            out[:, b: b + block] = model.predict(panel, blk, h)
            tick("lightgbm", len(blk))
        for j, q in enumerate(quantiles):
            qfc[q] = out[j]
        forecasts["lightgbm"] = out[quantiles.index(0.5)] if 0.5 in quantiles else out.mean(0)
    else:
        tick("models", len(origins))
    t_idx = origins[:, None] + np.arange(h)[None, :]
    actual = panel.y_kw[:, t_idx].transpose(1, 0, 2)  # (k, N, H)
    base: dict[str, np.ndarray] = {}
    for name, spec in options.baselines.items():
        arr = np.full((len(origins), len(panel.sites), steps), np.nan)
        for n, site in enumerate(panel.sites):
            series = load_kw[site]
            failures = 0
            for i, o in enumerate(origins):
                start = panel.index[o]
                try:
                    r = compute_baseline(series, start, start + pd.Timedelta(days=1), spec,
                                         interval_minutes=interval, calendar=calendar,
                                         temperature_c=temperature_c)
                    arr[i, n] = r.baseline_kw.to_numpy()
                except ValidationError:
                    failures += 1
                tick(name)
            if failures:
                notes.append(f"{site}: {name} had too few eligible days on {failures} origin(s)")
        base[name] = arr
    metrics: list[dict[str, object]] = []
    da = min(h, steps)
    predictions: dict[str, pd.DataFrame] = {}
    for n, site in enumerate(panel.sites):
        series_da = {m: f[:, n, :da] for m, f in forecasts.items()}
        series_da.update({m: b[:, n, :da] for m, b in base.items()})
        act = actual[:, n, :da]
        common = np.isfinite(act)
        for v in series_da.values():
            common &= np.isfinite(v)
        for m, v in series_da.items():
            row: dict[str, object] = {"site": site, "method": m, "horizon": "day_ahead"}
            row.update(point_metrics(np.where(common, act, np.nan), v))
            if m == "lightgbm" and qfc:
                qs = {q: np.where(common, a[:, n, :da], np.nan) for q, a in qfc.items()}
                row["pinball_kw"] = pinball_loss(np.where(common, act, np.nan), qs)
                row["coverage_p10_p90"] = coverage(np.where(common, act, np.nan),
                                                   qs[min(qs)], qs[max(qs)])
            metrics.append(row)
        if h > steps:
            for m, f in forecasts.items():
                row = {"site": site, "method": m, "horizon": f"{h * interval // 60}h"}
                row.update(point_metrics(actual[:, n], f[:, n]))
                if m == "lightgbm" and qfc:
                    row["pinball_kw"] = pinball_loss(actual[:, n], {q: a[:, n] for q, a in qfc.items()})
                metrics.append(row)
        idx = panel.index[t_idx[:, :da].reshape(-1)]
        frame = {"actual": act.reshape(-1)}
        frame.update({m: v.reshape(-1) for m, v in series_da.items()})
        for q, a in qfc.items():
            frame[f"lightgbm_p{round(q * 100)}"] = a[:, n, :da].reshape(-1)
        predictions[site] = pd.DataFrame(frame, index=idx)
    return BacktestReport(metrics=metrics, predictions=predictions,
                          origins=[panel.index[o] for o in origins], notes=notes)
