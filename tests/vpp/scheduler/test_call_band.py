"""The call's band: the plan aims at the target, not past the ceiling, and comes back ramped.

A fleet of buildings (shed cheap next to the peak price) and batteries: without a ceiling the
QP sheds far past the call to cut the energy bill (the 100-building first run planned 25% more
than declared); with the ceiling it holds the band. After the call, with ``rebound_max_pct``,
the fleet's power stays between its baseline and baseline x (1 + pct/100).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.vpp.scheduler.conftest import N, baseline_for, battery, building, price
from vpp.errors import ValidationError
from vpp.scheduler import DispatchModel, EventCall, HorizonData
from vpp.scheduler.partition import chunk, solve_partitioned
from vpp.scheduler.redispatch import replan_inputs


def fleet():
    devs = [building(i, rated=600, shed=220, minutes=120, rebound=0.5) for i in range(10)]
    devs += [battery(20 + i, soc=80) for i in range(5)]
    return devs, baseline_for(devs)


def test_without_a_ceiling_the_plan_over_sheds():
    """The problem the ceiling fixes: the peak price alone makes the QP shed far past the
    call (this is what the daemon planned before it passed a ceiling)."""
    devs, base = fleet()
    plan = DispatchModel(devs, N, interval_minutes=15).solve(devs, HorizonData(base, price(), EventCall(16, 20, 800.0), interval_minutes=15))
    assert plan.reduction_kw[16:20].min() > 1.5 * 800.0


def test_the_plan_holds_the_band_and_the_rebound_limit():
    devs, base = fleet()
    call = EventCall(16, 20, 800.0, ceiling_kw=840.0, rebound_max_pct=5.0)
    plan = DispatchModel(devs, N, interval_minutes=15).solve(devs, HorizonData(base, price(), call, interval_minutes=15))
    assert plan.feasible and not plan.warnings
    red = plan.reduction_kw
    assert (red[16:20] >= 800.0 * (1 - 1e-3)).all()
    assert (red[16:20] <= 840.0 * (1 + 1e-3)).all()
    fleet_base = base.sum(axis=0)
    power = plan.setpoint_kw.sum(axis=0)
    tol = 1e-3 * fleet_base.max()
    # back after the call: not below the baseline (no unpaid shedding), not above 105 %
    assert (power[20:] <= 1.05 * fleet_base[20:] + tol).all()
    assert (power[20:] >= fleet_base[20:] - tol).all()
    # the buildings' rebound energy was recovered within the horizon all the same
    assert plan.owed_kwh[:10, -1].max() == pytest.approx(0.0, abs=1e-2)


def test_without_the_limit_the_fleet_jumps_above_its_baseline():
    devs, base = fleet()
    call = EventCall(16, 20, 800.0, ceiling_kw=840.0)
    plan = DispatchModel(devs, N, interval_minutes=15).solve(devs, HorizonData(base, price(), call, interval_minutes=15))
    power = plan.setpoint_kw.sum(axis=0)
    assert (power[20:] / base.sum(axis=0)[20:]).max() > 1.2


def test_an_unreachable_rebound_limit_is_soft_and_reported():
    """Buildings only (nothing to offset their rebound): a 0 % limit cannot hold; the plan
    still exists, meets the call and says by how much the rebound exceeds the limit."""
    devs = [building(i, rated=600, shed=220, minutes=120, rebound=0.5) for i in range(4)]
    base = baseline_for(devs)
    call = EventCall(16, 20, 300.0, ceiling_kw=315.0, rebound_max_pct=0.0)
    plan = DispatchModel(devs, N, interval_minutes=15).solve(devs, HorizonData(base, price(), call, interval_minutes=15))
    assert plan.feasible
    assert any("rebound after the call exceeds its limit" in w for w in plan.warnings)
    # the shed energy still comes back (the buildings' rebound is physics, not a choice),
    # spread over the tail rather than all in the interval where energy is cheapest: 150 kWh
    # (300 kW x 1 h x 0.5) over the 3 h after the call is 50 kW in each interval
    assert plan.owed_kwh[:, -1].max() == pytest.approx(0.0, abs=1e-2)
    excess = plan.setpoint_kw.sum(axis=0)[20:] - base.sum(axis=0)[20:]
    assert excess.max() < 55.0


def test_a_replan_keeps_the_ceiling_and_the_limit():
    devs, base = fleet()
    call = EventCall(16, 20, np.array([800.0, 800, 700, 700]), ceiling_kw=np.array(
        [840.0, 840, 735, 735]), rebound_max_pct=5.0)
    _, data = replan_inputs(devs, HorizonData(base, price(), call, interval_minutes=15), 18)
    assert data.call is not None and data.call.start == 18
    assert data.call.rebound_max_pct == 5.0
    assert list(data.call.ceiling_over(N)[18:20]) == [735.0, 735.0]


@pytest.mark.parametrize("bad,msg", [
    (EventCall(16, 20, 800.0, ceiling_kw=700.0), "ceiling_kw must be finite and >= reduction"),
    (EventCall(16, 20, 800.0, rebound_max_pct=-1.0), "rebound_max_pct must be finite"),
])
def test_bad_band_is_refused(bad, msg):
    devs, base = fleet()
    with pytest.raises(ValidationError, match=msg):
        DispatchModel(devs, N, interval_minutes=15).solve(devs, HorizonData(base, price(), bad, interval_minutes=15))


def test_partitioned_solve_holds_the_band_too():
    from distributed import Client

    from vpp.scheduler.partition import local_cluster

    devs, base = fleet()
    call = EventCall(16, 20, 800.0, ceiling_kw=840.0, rebound_max_pct=5.0)
    data = HorizonData(base, price(), call, interval_minutes=15)
    with local_cluster(workers=1) as cluster, Client(cluster) as client:
        part = solve_partitioned(client, devs, data, chunk(devs, 8), max_iter=600)
    red = part.reduction_kw
    assert (red[16:20] >= 800.0 * 0.99).all() and (red[16:20] <= 840.0 * 1.01).all()
    assert (-red[20:] <= 0.05 * base.sum(axis=0)[20:] + 0.01 * 800.0).all()
