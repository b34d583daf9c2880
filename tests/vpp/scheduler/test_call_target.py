"""vpp.scheduler.call_target: what a plan asks for a bid, the one rule of the daemon's planner and
the season simulator (which aimed 10% above the award, with no ceiling, until 2026-12-07)."""

from __future__ import annotations

import numpy as np
import pytest

from vpp.scheduler.call_target import call_headroom, plan_call


def test_the_margin_is_capped_by_the_band_ceiling() -> None:
    assert call_headroom(5.0, 120.0) == pytest.approx(1.05)
    assert call_headroom(30.0, 120.0) == pytest.approx(1.2)  # never past what the band pays
    assert call_headroom(5.0, 100.0) == pytest.approx(1.0)
    assert call_headroom(5.0, 80.0) == pytest.approx(1.0)  # the declared kW is always asked


def test_plan_call_asks_the_declared_kw_within_the_ceiling_and_caps_the_rebound() -> None:
    call = plan_call(1_000.0, 2, 6, target_margin_pct=5.0, band_upper_pct=120.0,
                     rebound_max_pct=10.0)
    assert (call.start, call.end, call.rebound_max_pct) == (2, 6, 10.0)
    nan = np.nan
    np.testing.assert_allclose(call.target_kw(8), [nan, nan, 1000, 1000, 1000, 1000, nan, nan])
    np.testing.assert_allclose(call.ceiling_over(8)[2:6], 1_050.0)
