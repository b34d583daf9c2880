"""The LightGBM fit's training rows: drawn before their features are built, features built in
bounded batches (a season's fit over 1,173 owners' months of history built them all at once,
~17 GB, and the season's process was killed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting import models
from forecasting.calendars import make_calendar
from forecasting.models import GbmQuantileModel, training_origins
from forecasting.panel import Panel, build_features, build_panel, known_targets

H = 192  # 48 h of 15-minute leads
DATA_FROM = 96 * 20  # the first 20 days are unmetered for every site


@pytest.fixture(scope="module")
def panel() -> Panel:
    rng = np.random.default_rng(3)
    idx = pd.date_range("2025-01-01", periods=96 * 60, freq="15min", tz="Asia/Shanghai")
    y = 20 + 5 * np.sin(np.arange(len(idx)) * 2 * np.pi / 96)[:, None] + rng.normal(0, 1, (
        len(idx), 7))
    y[:DATA_FROM] = np.nan
    y[96 * 30: 96 * 31, 4] = np.nan  # a gap
    y[:, 6] = 0.0  # no scale: no row
    df = pd.DataFrame(y, index=idx, columns=[f"s{i}" for i in range(7)])
    return build_panel(df, make_calendar("china"), horizon_steps=H, interval_minutes=15)


def all_at_once(panel: Panel, origins: np.ndarray, target_end: int, max_rows: int, seed: int,
                site_batch: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Every row built in one piece per batch of sites, the known ones kept, ``max_rows``
    drawn with ``seed`` (and how many were known)."""
    xs, ys = [], []
    for start in range(0, len(panel.sites), site_batch):
        sl = slice(start, start + site_batch)
        x, y, _ = build_features(panel, origins, H, sl)
        t = origins[:, None] + np.arange(H)[None, :]
        known = np.broadcast_to((t < target_end)[:, None, :],
                                (len(origins), len(panel.sites[sl]), H))
        keep = np.isfinite(y) & known.reshape(-1)
        xs.append(x[keep])
        ys.append(y[keep])
    x, y = np.concatenate(xs), np.concatenate(ys)
    n = len(y)
    if n > max_rows:
        pick = np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))
        x, y = x[pick], y[pick]
    return x, y, n


@pytest.mark.parametrize("max_rows", [10_000_000, 20_000])
def test_batched_rows_are_the_whole_sets_draw(panel: Panel, max_rows: int) -> None:
    origins = training_origins(panel, panel.n_data, 24, 365)
    end = panel.n_data - 50
    model = GbmQuantileModel([0.5], max_train_rows=max_rows, site_batch=3, row_chunk=5_000)
    x, y = model._rows(panel, origins, H, end)
    x0, y0, known = all_at_once(panel, origins, end, max_rows, model.seed, 3)
    assert known > 20_000 and len(y) == min(known, max_rows)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


def test_features_are_built_in_bounded_batches_of_known_rows(
        panel: Panel, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[tuple[int, int]] = []  # (rows, last origin) per build_features call

    def spy(p: Panel, origins: np.ndarray, horizon_steps: int, sites: slice
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        built.append((len(origins) * len(p.sites[sites]) * horizon_steps, int(origins[-1])))
        return build_features(p, origins, horizon_steps, sites)

    monkeypatch.setattr(models, "build_features", spy)
    origins = training_origins(panel, panel.n_data, 24, 365)
    model = GbmQuantileModel([0.5], max_train_rows=20_000, site_batch=4, row_chunk=8_000)
    x, _ = model._rows(panel, origins, H, panel.n_data)
    assert len(x) == 20_000
    assert max(rows for rows, _ in built) <= 8_000
    # a batch of origins before any site was metered has no known row: never built
    assert origins[0] < DATA_FROM - 24 * 20 and min(o for _, o in built) >= DATA_FROM


def test_known_targets_match_the_built_rows(panel: Panel) -> None:
    origins = training_origins(panel, panel.n_data, 24, 365)
    _, y, _ = build_features(panel, origins, H, slice(2, 6))
    np.testing.assert_array_equal(known_targets(panel, origins, H, slice(2, 6)), np.isfinite(y))
