"""Each device's part of an owner's settled response (pure): sums, gaps, what is left over."""

from __future__ import annotations

import numpy as np
import pytest

from bidding.device_contribution import days_mean_baseline, device_contributions, tolerance_kwh
from vpp.errors import ValidationError


def test_devices_add_up_and_a_gap_is_no_response() -> None:
    base = np.array([[10.0, 10.0, 10.0], [20.0, 20.0, 20.0]])
    meter = np.array([[4.0, 6.0, 10.0], [15.0, np.nan, 20.0]])
    out = device_contributions([1, 2], base, meter, np.array([True, True, False]), sign=1.0,
                               interval_minutes=15, settled_response_kwh=3.75, excluded={2})
    a, b = out.devices
    assert a.response_kwh == pytest.approx(2.5) and b.response_kwh == pytest.approx(1.25)
    assert b.unmetered_intervals == 1 and b.excluded and not a.excluded
    assert a.share_pct == pytest.approx(66.7) and out.not_attributed_kwh == 0.0
    assert out.tolerance_kwh == tolerance_kwh(2) == pytest.approx(0.002)


def test_what_the_connection_meter_rule_moves_is_not_attributed() -> None:
    # the owner's export was floored at the connection: settled 5 kWh, devices 7.5 kWh
    out = device_contributions([1], np.array([[10.0, 10.0]]), np.array([[-5.0, 10.0]]),
                               np.array([True, True]), sign=1.0, interval_minutes=30,
                               settled_response_kwh=5.0, excluded=set())
    assert out.devices_response_kwh == pytest.approx(7.5)
    assert out.not_attributed_kwh == pytest.approx(-2.5)


def test_day_means_and_the_adjustment_split_add_up_to_the_owners() -> None:
    days = [np.array([[2.0, 4.0], [6.0, 8.0]]), np.array([[4.0, 6.0], [10.0, np.nan]])]
    base = days_mean_baseline(days, adjustment_kw=-2.0)
    assert base[:, 0].sum() == pytest.approx((8.0 + 14.0) / 2 - 2.0)
    assert base[:, 1].sum() == pytest.approx((4.0 + 6.0) / 2 + 8.0 - 2.0)
    # the adjustment goes to each device in proportion to its mean level: 4 and 8 kW
    assert base[0, 0] == pytest.approx(3.0 - 2.0 * 4 / 12)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValidationError, match="must both be"):
        device_contributions([1, 2], np.zeros((1, 2)), np.zeros((1, 2)), np.ones(2, bool),
                             sign=1.0, interval_minutes=15, settled_response_kwh=0.0,
                             excluded=set())
    with pytest.raises(ValidationError, match="no baseline days"):
        days_mean_baseline([], None)
