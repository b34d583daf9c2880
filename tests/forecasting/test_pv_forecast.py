"""The PV forecast (forecasting.pv): clear-sky irradiance to AC power for a site on pvlib,
with quantiles from the clear-sky index's distribution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from forecasting.pv import ac_output_kw, nowcast_load_kw, output_quantiles_kw
from vpp.device_kinds import PvInverterParams
from vpp.errors import ValidationError

SITE = PvInverterParams(dc_capacity_kwp=110.0)
DAY = pd.date_range("2025-07-15", periods=96, freq="15min", tz="Asia/Shanghai")


def test_quantiles_are_ordered_below_the_clear_sky_and_zero_at_night() -> None:
    q = output_quantiles_kw(SITE, 100.0, DAY)
    assert list(q.columns) == ["p10", "p50", "p90", "clear_sky"]
    assert (q["p10"] <= q["p50"]).all() and (q["p50"] <= q["p90"]).all()
    assert (q["p90"] <= q["clear_sky"]).all() and (q["clear_sky"] <= 100.0).all()
    night = (DAY.hour < 5) | (DAY.hour >= 20)
    assert (q.loc[night] == 0.0).all().all()
    noon = q.loc[DAY.hour == 12]
    assert (noon["p10"] > 0).all() and (noon["p10"] < noon["p90"]).all()  # a real band
    assert q["clear_sky"].idxmax().hour in (11, 12, 13)


def test_the_inverter_clips_a_big_array_at_its_rating() -> None:
    big = PvInverterParams(dc_capacity_kwp=300.0)
    out = ac_output_kw(big, 100.0, DAY)
    assert out.max() == pytest.approx(100.0) and (out <= 100.0).all()


def test_a_north_facing_steep_roof_gives_less_than_a_south_facing_one() -> None:
    north = PvInverterParams(dc_capacity_kwp=110.0, tilt_deg=60.0, azimuth_deg=0.0)
    assert ac_output_kw(north, 100.0, DAY).sum() < ac_output_kw(SITE, 100.0, DAY).sum()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"times": pd.date_range("2025-07-15", periods=4, freq="h")}, "timezone-aware"),
    ({"quantiles": (0.0, 0.5)}, "within \\(0, 1\\)"),
    ({"index_a": 0.0}, "index_a"),
])
def test_bad_input_is_refused_clearly(kwargs: dict, message: str) -> None:
    args = {"site": SITE, "rated_power_kw": 100.0, "times": DAY} | kwargs
    with pytest.raises(ValidationError, match=message):
        output_quantiles_kw(**args)


@settings(max_examples=15, deadline=None)
@given(k=st.floats(0.0, 1.2), hour=st.integers(0, 23))
def test_output_rises_with_the_clear_sky_index_and_never_passes_the_rating(
        k: float, hour: int) -> None:
    times = DAY[DAY.hour == hour]
    lo = ac_output_kw(SITE, 100.0, times, k * 0.9)
    hi = ac_output_kw(SITE, 100.0, times, k)
    assert (lo.to_numpy() <= hi.to_numpy() + 1e-9).all()
    assert np.all((hi >= 0) & (hi <= 100.0))


def test_the_nowcast_holds_the_readings_clear_sky_index_over_the_window() -> None:
    window = pd.date_range("2025-07-15 10:00", periods=8, freq="15min", tz="Asia/Shanghai")
    at = pd.Timestamp("2025-07-15 09:52:30", tz="Asia/Shanghai")
    clear_at = float(ac_output_kw(SITE, 100.0, pd.DatetimeIndex([at])).iloc[0])
    clear = ac_output_kw(SITE, 100.0, window + pd.Timedelta(minutes=7.5)).to_numpy()
    half = nowcast_load_kw(SITE, 100.0, window, -0.5 * clear_at, at, 15)
    assert (half <= 0).all()  # the project's sign: generation is negative load
    assert -half == pytest.approx(0.5 * clear, rel=1e-6)  # half the clear sky all along
    assert -half[-1] > -half[0]  # rising towards noon, not held flat
    dark = nowcast_load_kw(SITE, 100.0, window, 0.0, pd.Timestamp("2025-07-15 03:00",
                                                                  tz="Asia/Shanghai"), 15)
    k = float(stats.beta.ppf(0.5, 2.0, 1.5))
    median = ac_output_kw(SITE, 100.0, window + pd.Timedelta(minutes=7.5), k).to_numpy()
    assert -dark == pytest.approx(median, rel=1e-3)  # the Beta(2, 1.5) median's index
