"""The plan baseline's fallback (forecasting.device_baselines.device_plan_baselines) may vary
over the window: a PV inverter's follows the sun (forecasting.pv.nowcast_load_kw); a flat one
is held as before."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.device_baselines import OwnerDays, device_plan_baselines

WINDOW = pd.date_range("2025-07-15 10:00", periods=4, freq="15min", tz="Asia/Shanghai")


def _unused(rows: np.ndarray, index: pd.DatetimeIndex) -> np.ndarray:
    raise AssertionError("no owner has baseline days here")


def test_a_fallback_per_interval_is_used_as_given_and_a_flat_one_held() -> None:
    flat = np.array([12.0, np.nan, -3.0])
    shaped = np.array([[12.0] * 4, [np.nan] * 4, [-3.0, -3.5, -4.0, -4.5]])
    names = ["recent_mean", "last_reading", "pv_clear_sky_index"]
    for fb in (flat, shaped):
        out = device_plan_baselines([1, 2, 3], OwnerDays({}, {}), _unused, WINDOW,
                                    "similar_days", fb, names)
        assert out.methods == ["recent_mean", "none", "pv_clear_sky_index"]
        assert (out.kw[0] == 12.0).all() and np.isnan(out.kw[1]).all()
    assert out.kw[2].tolist() == [-3.0, -3.5, -4.0, -4.5]
