"""Property: whatever the fleet and the call, setpoints stay within each device's limits."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpp.scheduler import DispatchModel, EventCall, HorizonData
from vpp.scheduler.synthetic import mixed_fleet, tou_price


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(1, 8),
    seed=st.integers(0, 10_000),
    start=st.integers(0, 20),
    length=st.integers(1, 4),
    frac=st.floats(0.0, 3.0),
    noise=st.floats(0.5, 1.5),
)
def test_setpoints_within_limits(count, seed, start, length, frac, noise):
    n = 24
    devs, base = mixed_fleet(count, n=n, seed=seed, interval_minutes=15)
    base = base * noise  # baselines may even leave the declared limits: setpoints must not
    cap = sum(d.rated_power_kw for d in devs)
    call = EventCall(start, start + length, frac * 0.2 * cap)
    plan = DispatchModel(devs, n, interval_minutes=15).solve(devs, HorizonData(base, tou_price(n, interval_minutes=15), call, interval_minutes=15))
    lo = np.array([d.min_setpoint_kw for d in devs])[:, None]
    hi = np.array([d.max_setpoint_kw for d in devs])[:, None]
    assert (plan.setpoint_kw >= lo).all() and (plan.setpoint_kw <= hi).all()
    assert np.isfinite(plan.setpoint_kw).all()
    assert (plan.shortfall_kw >= 0).all()
