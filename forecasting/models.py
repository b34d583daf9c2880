"""Forecast models over a :class:`forecasting.panel.Panel`: seasonal-naive and LightGBM.

Both return quantile forecasts as one array ``(Q, origins, sites, horizon)`` in kW.

- **Seasonal naive** (the reference): the same interval one week earlier. Its P10/P90 are
  *residual quantiles*: the empirical quantiles of that site's week-on-week differences over the
  four weeks before the origin, added to the point forecast.
- **LightGBM**: one global model trained on all sites at once on scale-free features (see
  :mod:`forecasting.panel`); quantiles from out-of-sample residuals (default) or one quantile
  booster each (see :class:`GbmQuantileModel`). Quantiles are sorted per row so they never
  cross. Prediction runs in batches of sites, one LightGBM call per batch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from forecasting.panel import Panel, build_features, feature_names, known_targets
from vpp.errors import ValidationError


def seasonal_naive(
    panel: Panel,
    origins: np.ndarray,
    horizon_steps: int,
    quantiles: list[float],
    residual_weeks: int = 4,
) -> np.ndarray:
    """Same interval last week; quantiles from the last ``residual_weeks`` of weekly residuals."""
    week = 7 * panel.steps_per_day
    if horizon_steps > week:
        raise ValidationError("seasonal naive cannot forecast more than one week ahead")
    y = panel.y_kw
    origins = np.asarray(origins, dtype=np.int64)
    t = origins[:, None] + np.arange(horizon_steps)[None, :]
    lag = t - week
    p50 = np.where(lag >= 0, y[:, np.clip(lag, 0, None)], np.nan)  # (N, k, H)
    out = np.empty((len(quantiles), len(origins), y.shape[0], horizon_steps))
    spread = [q for q in quantiles if q != 0.5]
    for i, o in enumerate(origins):
        out[:, i] = p50[None, :, i, :]
        if not spread:
            continue
        # residuals y[u] - y[u - week] for u in the residual window before the origin
        lo = max(o - residual_weeks * week, week)
        window = (y[:, lo:o] - y[:, lo - week: o - week]) if o > lo else y[:, :0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            qs = (np.nanquantile(window, spread, axis=1) if window.shape[1]
                  else np.full((len(spread), y.shape[0]), np.nan))  # (Q', N)
        for j, q in enumerate(quantiles):
            if q != 0.5:
                out[j, i] += np.nan_to_num(qs[spread.index(q)])[:, None]
    return out


@dataclass
class GbmQuantileModel:
    """Global LightGBM model on scale-free load features, with quantiles.

    ``quantile_method="residual"`` (default): the point forecast (P50) is an L2 model; P10/P90
    add residual quantiles measured *out of sample*: a first model is trained without the last
    ``calibration_days`` of origins and its scaled errors on those origins give, per hour of
    lead, the quantiles added to the final model's forecast (split-conformal style). One booster
    at prediction time. ``quantile_method="quantile"``: one booster per quantile with LightGBM's
    quantile objective (in-sample fitted; its bands came out too narrow in our backtest).
    """

    quantiles: list[float]
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 200
    max_train_rows: int = 300_000
    num_threads: int = 1
    seed: int = 0
    site_batch: int = 2000
    row_chunk: int = 1_000_000  # (origin, site, lead) rows of features built at once
    quantile_method: str = "residual"
    calibration_days: int = 28
    boosters: dict[float, object] = field(default_factory=dict, repr=False)
    residual_q: np.ndarray | None = field(default=None, repr=False)  # (Q, lead hours), scaled
    with_temperature: bool = False

    def _params(self, q: float) -> dict[str, object]:
        objective = {"objective": "quantile", "alpha": q}
        if q == 0.5 and self.quantile_method == "residual":
            objective = {"objective": "regression"}
        return {
            **objective, "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves, "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1,
            "seed": self.seed, "num_threads": self.num_threads, "verbose": -1,
        }

    def _batches(self, n_sites: int, n_origins: int, horizon_steps: int
                 ) -> list[tuple[slice, slice]]:
        """(sites, origins) slices covering every row in :func:`build_features` order (site
        batch, then origin-major), each at most ``row_chunk`` rows (at least one origin)."""
        out = []
        for start in range(0, n_sites, self.site_batch):
            sl = slice(start, min(start + self.site_batch, n_sites))
            step = max(1, self.row_chunk // ((sl.stop - sl.start) * horizon_steps))
            out += [(sl, slice(o, min(o + step, n_origins))) for o in range(0, n_origins, step)]
        return out

    def _rows(self, panel: Panel, origins: np.ndarray, horizon_steps: int, target_end: int
              ) -> tuple[np.ndarray, np.ndarray]:
        """Training rows: the (origin, site, lead) rows whose target is known and before
        ``target_end``, at most ``max_train_rows`` of them drawn at random (``seed``). The rows
        are counted first (:func:`known_targets`) and the features built only for the drawn
        rows' batches (:meth:`_batches`): all rows of a fleet's months of history at once
        were tens of GB (1,173 sites x 426 origins x 192 leads x 20 features: ~16 GB)."""
        parts = self._batches(len(panel.sites), len(origins), horizon_steps)
        t = origins[:, None] + np.arange(horizon_steps)[None, :]
        counts: list[int] = []
        for start in range(0, len(panel.sites), self.site_batch):  # site batches, in order
            sl = slice(start, start + self.site_batch)
            m = len(panel.sites[sl])
            per_origin = (known_targets(panel, origins, horizon_steps, sl).reshape(
                len(origins), m, horizon_steps) & (t < target_end)[:, None, :]).sum(axis=(1, 2))
            counts += [int(per_origin[o].sum()) for s_, o in parts if s_.start == start]
        total = sum(counts)
        pick = None
        if total > self.max_train_rows:
            rng = np.random.default_rng(self.seed)
            pick = np.sort(rng.choice(total, self.max_train_rows, replace=False))
        xs, ys = [], []
        first = 0
        for (sl, o), count in zip(parts, counts, strict=True):
            lo, first = first, first + count
            sel = None if pick is None else pick[(pick >= lo) & (pick < first)] - lo
            if count == 0 or (sel is not None and not len(sel)):
                continue
            x, y, _ = build_features(panel, origins[o], horizon_steps, sl)
            known = np.broadcast_to((t[o] < target_end)[:, None, :],
                                    (o.stop - o.start, len(panel.sites[sl]), horizon_steps))
            keep = np.isfinite(y) & known.reshape(-1)
            if int(keep.sum()) != count:  # known_targets and build_features disagree
                raise AssertionError("training rows counted and built differ")
            x, y = x[keep], y[keep]
            xs.append(x if sel is None else x[sel])
            ys.append(y if sel is None else y[sel])
        if not xs:
            return np.empty((0, len(feature_names(panel.temp_c is not None)))), np.empty(0)
        return np.concatenate(xs), np.concatenate(ys)

    def _train(self, x: np.ndarray, y: np.ndarray, q: float) -> object:
        import lightgbm as lgb

        if len(y) > self.max_train_rows:
            rng = np.random.default_rng(self.seed)
            pick = np.sort(rng.choice(len(y), self.max_train_rows, replace=False))
            x, y = x[pick], y[pick]
        data = lgb.Dataset(x, y, feature_name=feature_names(self.with_temperature),
                           free_raw_data=True, params={"verbose": -1})
        return lgb.train(self._params(q), data, num_boost_round=self.n_estimators)

    def fit(
        self, panel: Panel, origins: np.ndarray, horizon_steps: int, target_end: int | None = None
    ) -> GbmQuantileModel:
        """Train on all (origin, site, lead) rows whose target is known and before
        ``target_end`` (default: the end of the data)."""
        target_end = panel.n_data if target_end is None else target_end
        origins = np.asarray(origins, dtype=np.int64)
        self.with_temperature = panel.temp_c is not None
        x, y = self._rows(panel, origins, horizon_steps, target_end)
        if len(y) < 10 * self.min_data_in_leaf:
            raise ValidationError(
                f"not enough history to train the LightGBM model ({len(y)} rows with a known "
                "target; need at least two weeks of data before the first forecast)"
            )
        self.boosters = {}
        if self.quantile_method == "quantile":
            for q in self.quantiles:
                self.boosters[q] = self._train(x, y, q)
            return self
        if any(q != 0.5 for q in self.quantiles):
            self.residual_q = self._calibrate(panel, origins, horizon_steps, target_end)
        else:
            self.residual_q = np.zeros((len(self.quantiles), 1))
        self.boosters[0.5] = self._train(x, y, 0.5)
        return self

    def _calibrate(self, panel: Panel, origins: np.ndarray, horizon_steps: int, target_end: int
                   ) -> np.ndarray:
        """Out-of-sample scaled residual quantiles per hour of lead, shape (Q, hours)."""
        spd = panel.steps_per_day
        days = min(self.calibration_days, max((target_end - int(origins.min())) // spd // 4, 1))
        cut = target_end - days * spd
        early, late = origins[origins < cut], origins[origins >= cut]
        steps_per_hour = 60 // panel.interval_minutes
        n_hours = -(-horizon_steps // steps_per_hour)
        x, y = self._rows(panel, early, horizon_steps, cut) if len(early) else (None, None)
        if x is None or y is None or len(y) < 10 * self.min_data_in_leaf or len(late) == 0:
            raise ValidationError(
                "not enough history to calibrate the forecast quantiles (need about "
                f"{days + 14} days before the first forecast)"
            )
        booster = self._train(x, y, 0.5)
        resid = np.full((len(late), len(panel.sites), horizon_steps), np.nan)
        for sl, o in self._batches(len(panel.sites), len(late), horizon_steps):
            xc, yc, _ = build_features(panel, late[o], horizon_steps, sl)
            pred = booster.predict(xc)  # type: ignore[attr-defined]
            resid[o, sl, :] = (yc - pred).reshape(o.stop - o.start, sl.stop - sl.start,
                                                  horizon_steps)
        t = late[:, None] + np.arange(horizon_steps)[None, :]
        resid = np.where((t < target_end)[:, None, :], resid, np.nan)
        out = np.zeros((len(self.quantiles), n_hours))
        for hour in range(n_hours):
            block = resid[:, :, hour * steps_per_hour: (hour + 1) * steps_per_hour].ravel()
            block = block[np.isfinite(block)]
            if len(block) == 0 and hour > 0:
                out[:, hour] = out[:, hour - 1]
            elif len(block):
                out[:, hour] = np.quantile(block, self.quantiles)
        out[[i for i, q in enumerate(self.quantiles) if q == 0.5], :] = 0.0
        return out

    def predict(self, panel: Panel, origins: np.ndarray, horizon_steps: int) -> np.ndarray:
        """Quantile forecasts ``(Q, k, N, H)`` in kW (NaN where a site has no recent history)."""
        if not self.boosters:
            raise ValidationError("the LightGBM model has not been trained")
        if (panel.temp_c is not None) != self.with_temperature:
            raise ValidationError("temperature must be supplied both for training and forecasting")
        n, k = len(panel.sites), len(origins)
        out = np.empty((len(self.quantiles), k, n, horizon_steps))
        steps_per_hour = 60 // panel.interval_minutes
        for start in range(0, n, self.site_batch):
            sl = slice(start, min(start + self.site_batch, n))
            x, _, scale = build_features(panel, origins, horizon_steps, sl)
            m = sl.stop - sl.start
            if self.quantile_method == "quantile":
                for j, q in enumerate(self.quantiles):
                    pred = self.boosters[q].predict(x) * scale  # type: ignore[attr-defined]
                    out[j, :, sl, :] = pred.reshape(k, m, horizon_steps)
                continue
            assert self.residual_q is not None
            point = self.boosters[0.5].predict(x).reshape(k, m, horizon_steps)  # type: ignore[attr-defined]
            sc = scale.reshape(k, m, horizon_steps)
            hours = np.minimum(np.arange(horizon_steps) // steps_per_hour,
                               self.residual_q.shape[1] - 1)
            for j in range(len(self.quantiles)):
                out[j, :, sl, :] = (point + self.residual_q[j, hours][None, None, :]) * sc
        out.sort(axis=0)  # no crossing quantiles
        return out


def training_origins(
    panel: Panel, end_pos: int, stride_steps: int, max_days: int, min_history_days: int = 14
) -> np.ndarray:
    """Forecast origins for training: every ``stride_steps`` from ``min_history_days`` after the
    panel start up to ``end_pos`` (exclusive; targets after ``end_pos`` are not used), at most
    ``max_days`` back. Origins are aligned to the end so that the latest ones are always kept."""
    first = min_history_days * panel.steps_per_day
    lo = max(first, end_pos - max_days * panel.steps_per_day)
    if end_pos <= lo:
        return np.empty(0, dtype=np.int64)
    return np.arange(end_pos - stride_steps, lo - 1, -stride_steps, dtype=np.int64)[::-1]
