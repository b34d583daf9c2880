"""Exact aggregation: the virtual fleet's plan, disaggregated, is the per-device optimum."""

from __future__ import annotations

import numpy as np
import pytest

from vpp.scheduler import DispatchModel, EventCall, HorizonData
from vpp.scheduler.aggregate import aggregate, disaggregate
from vpp.scheduler.synthetic import catalog_fleet, tou_price


def test_aggregated_plan_equals_per_device_plan():
    n = 32
    devs, base = catalog_fleet(60, n=n, seed=3)
    agg = aggregate(devs, base)
    assert len(agg.devices) < len(devs)  # the catalogue repeats
    target = 0.1 * base[:, 16:24].sum(axis=0).mean()
    call = EventCall(16, 24, target)
    price = tou_price(n, start_hour=12)
    full = DispatchModel(devs, n).solve(devs, HorizonData(base, price, call))
    vplan = DispatchModel(agg.devices, n).solve(agg.devices,
                                                HorizonData(agg.baseline_kw, price, call))
    plan = disaggregate(vplan, agg, devs, base)
    assert plan.feasible and full.feasible
    assert vplan.objective_yuan == pytest.approx(full.objective_yuan, rel=1e-3)
    assert np.allclose(plan.reduction_kw, full.reduction_kw,
                       atol=2e-3 * base.sum(axis=0).max())
    lo = np.array([d.min_setpoint_kw for d in devs])[:, None]
    hi = np.array([d.max_setpoint_kw for d in devs])[:, None]
    assert (plan.setpoint_kw >= lo).all() and (plan.setpoint_kw <= hi).all()
    # members of one group share one per-unit plan; EV members get their own energy
    for d, i in zip(devs, range(len(devs)), strict=True):
        if d.sessions:
            got = plan.ev_delivered_kwh[d.device_id]
            assert got.sum() == pytest.approx(sum(s.energy_kwh for s in d.sessions), rel=2e-3,
                                              abs=0.05)
