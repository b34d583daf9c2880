"""Forecast error metrics over aligned arrays (kW); intervals with a missing value are skipped.

- MAE, RMSE (kW); relative RMSE = RMSE / mean actual load (a fraction; x100 for percent);
- MAPE only where meaningful: every actual value at least 5% of the mean absolute load
  (otherwise ``None``: near-zero loads make percentage errors explode);
- pinball (quantile) loss averaged over the quantiles given, in kW.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def point_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | int | None]:
    """MAE, RMSE, relative RMSE and MAPE of ``predicted`` against ``actual``."""
    a = np.asarray(actual, dtype=float).ravel()
    p = np.asarray(predicted, dtype=float).ravel()
    ok = np.isfinite(a) & np.isfinite(p)
    a, p = a[ok], p[ok]
    if len(a) == 0:
        return {"n": 0, "mae_kw": None, "rmse_kw": None, "rel_rmse": None, "mape": None}
    err = p - a
    rmse = float(np.sqrt(np.mean(err**2)))
    mean = float(np.mean(a))
    mean_abs = float(np.mean(np.abs(a)))
    meaningful = mean_abs > 0 and bool(np.all(np.abs(a) >= 0.05 * mean_abs))
    return {
        "n": int(len(a)),
        "mae_kw": float(np.mean(np.abs(err))),
        "rmse_kw": rmse,
        "rel_rmse": rmse / mean if mean > 0 else None,
        "mape": float(np.mean(np.abs(err) / np.abs(a))) if meaningful else None,
    }


def pinball_loss(actual: np.ndarray, quantile_predictions: Mapping[float, np.ndarray]) -> float | None:
    """Mean pinball loss (kW) over the quantiles: q*(a-p) if a >= p else (1-q)*(p-a)."""
    a = np.asarray(actual, dtype=float).ravel()
    losses = []
    for q, pred in quantile_predictions.items():
        p = np.asarray(pred, dtype=float).ravel()
        ok = np.isfinite(a) & np.isfinite(p)
        if not ok.any():
            continue
        d = a[ok] - p[ok]
        losses.append(float(np.mean(np.maximum(q * d, (q - 1) * d))))
    return float(np.mean(losses)) if losses else None


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float | None:
    """Share of intervals whose actual value lies within [lower, upper]."""
    a, lo, hi = (np.asarray(v, dtype=float).ravel() for v in (actual, lower, upper))
    ok = np.isfinite(a) & np.isfinite(lo) & np.isfinite(hi)
    if not ok.any():
        return None
    return float(np.mean((a[ok] >= lo[ok]) & (a[ok] <= hi[ok])))
