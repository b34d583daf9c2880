"""Valley filling: the same QP plans a call that asks the fleet to RAISE its load.

The response is the fleet's rise above its baseline (the reduction with the sign reversed);
the call's floor, its band ceiling and the rebound cap over the tail hold on it as they hold
on the reduction of a peak-shaving call. Batteries charge, EV chargers pull their sessions'
energy into the window; buildings and industrial loads never shed for such a call and rise only
to make up energy they owe (their kinds declare nothing else).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vpp.scheduler.conftest import N, baseline_for, battery, building, ev, industrial, price
from vpp.config import SchedulerSettings
from vpp.errors import ValidationError
from vpp.scheduler import DispatchModel, EventCall, EvSession, HorizonData
from vpp.scheduler.call_rows import CallBounds, call_bounds, prox_total, violation_kw
from vpp.scheduler.call_solver import CallRequest, CallSolver
from vpp.scheduler.envelope import flexibility_envelope
from vpp.scheduler.fleet_rows import fleet_row_vectors
from vpp.scheduler.inputs import Weights
from vpp.scheduler.partition import PartitionedScheduler, chunk, solve_partitioned

VALLEY = -1.0


def _fleet():
    devs = [battery(i, soc=30) for i in range(4)] + [building(10), industrial(11)]
    return devs, baseline_for(devs)


def _valley(target: float, ceiling: float | None = None, pct: float | None = 5.0) -> EventCall:
    return EventCall(4, 12, target, ceiling_kw=ceiling, rebound_max_pct=pct,
                     direction_sign=VALLEY)


def test_the_fleet_rises_by_the_declared_kw_within_the_ceiling():
    devs, base = _fleet()
    plan = DispatchModel(devs, N, interval_minutes=15).solve(
        devs, HorizonData(base, price(), _valley(120.0, 126.0), interval_minutes=15))
    assert plan.feasible and plan.direction_sign == VALLEY
    rise = plan.setpoint_kw.sum(axis=0) - base.sum(axis=0)
    assert np.allclose(plan.response_kw, rise)
    assert (rise[4:12] >= 120.0 * (1 - 1e-3)).all() and (rise[4:12] <= 126.0 * (1 + 1e-3)).all()
    assert (plan.shortfall_kw == 0).all()
    # the batteries charge in the window
    assert (plan.setpoint_kw[:4, 4:12].sum(axis=0) >= 120.0 * (1 - 1e-3)).all()
    assert (np.diff(plan.soc_pct[:4, 3:12], axis=1) >= -1e-6).all()


def test_loads_do_not_shed_and_do_not_rise_without_a_debt():
    devs, base = _fleet()
    plan = DispatchModel(devs, N, interval_minutes=15).solve(
        devs, HorizonData(base, price(), _valley(120.0, 126.0), interval_minutes=15))
    assert plan.shed_kw[4:].max() == pytest.approx(0.0, abs=1e-3)
    assert np.abs(plan.setpoint_kw[4:] - base[4:]).max() == pytest.approx(0.0, abs=0.05)


def test_a_load_that_owes_energy_makes_it_up_in_the_valley():
    from dataclasses import replace

    devs, base = _fleet()
    devs[5] = replace(devs[5], debt_kwh=60.0)  # an earlier curtailment's make-up, owed
    call = EventCall(2, 10, 150.0, ceiling_kw=160.0, direction_sign=VALLEY)
    plan = DispatchModel(devs, N, interval_minutes=15).solve(
        devs, HorizonData(base, price(), call, interval_minutes=15))
    assert plan.feasible
    up = (plan.setpoint_kw[5] - base[5]).clip(min=0) * 0.25
    assert up.sum() == pytest.approx(60.0, rel=1e-2)
    assert up[2:10].sum() > 0.9 * 60.0  # made up where it fills the valley
    assert plan.setpoint_kw[5].max() <= devs[5].max_setpoint_kw + 1e-6


def test_the_tail_comes_back_within_the_rebound_cap():
    devs, base = _fleet()
    # terminal SoC = the SoC at the call: what the batteries charged goes back in the tail
    plan = DispatchModel(devs, N, interval_minutes=15).solve(
        devs, HorizonData(base, price(), _valley(120.0, 126.0, pct=10.0), interval_minutes=15))
    fleet_base = base.sum(axis=0)
    power = plan.setpoint_kw.sum(axis=0)
    tol = 1e-3 * fleet_base.max()
    assert (power[12:] >= 0.9 * fleet_base[12:] - tol).all()  # not below baseline x (1 - 10%)
    assert (power[12:] <= fleet_base[12:] + tol).all()  # nor above it: no unpaid rise
    assert plan.soc_pct[:4, -1] == pytest.approx([30.0] * 4, abs=0.1)


def test_an_impossible_valley_call_is_short_and_says_why():
    devs = [battery(i, soc=85) for i in range(2)]  # almost full: little room to charge
    base = baseline_for(devs)
    plan = DispatchModel(devs, N, interval_minutes=15).solve(
        devs, HorizonData(base, price(), _valley(90.0), interval_minutes=15))
    assert not plan.feasible and plan.shortfall_kwh > 0
    assert any("call cannot be met" in w for w in plan.warnings)


def test_one_built_model_plans_both_directions():
    devs, base = _fleet()
    model = DispatchModel(devs, N, interval_minutes=15)
    peak = EventCall(4, 12, 120.0, ceiling_kw=126.0, rebound_max_pct=5.0)
    a = model.solve(devs, HorizonData(base, price(), peak, interval_minutes=15))
    b = model.solve(devs, HorizonData(base, price(), _valley(120.0, 126.0),
                                      interval_minutes=15))
    assert a.feasible and b.feasible
    assert (a.reduction_kw[4:12] >= 119.8).all() and (b.reduction_kw[4:12] <= -119.8).all()
    fresh = DispatchModel(devs, N, interval_minutes=15).solve(
        devs, HorizonData(base, price(), peak, interval_minutes=15))
    assert np.allclose(fresh.setpoint_kw, a.setpoint_kw, atol=0.5)


def test_valley_bounds_mirror_the_peak_ones():
    """The fleet rows of a valley call are the peak rows of the negated reduction: bounds
    swapped and negated, the two slacks' roles swapped."""
    base = np.full(N, 1000.0)
    w = Weights()
    peak = call_bounds(EventCall(4, 12, 100.0, ceiling_kw=105.0, rebound_max_pct=5.0), N, base, w)
    valley = call_bounds(_valley(100.0, 105.0), N, base, w)
    red0 = np.linspace(-0.1, 0.1, N)
    p = fleet_row_vectors(peak, red0, 5000.0, 0.01, 6)
    v = fleet_row_vectors(valley, -red0, 5000.0, 0.01, 6)
    assert np.array_equal(v.row_lo, -p.row_hi) and np.array_equal(v.row_hi, -p.row_lo)
    assert np.array_equal(v.omega_q, p.sigma_q) and np.array_equal(v.sigma_q, p.omega_q)
    assert np.array_equal(v.omega_hi, p.sigma_hi) and np.array_equal(v.sigma_hi, p.omega_hi)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-300, 300), min_size=N, max_size=N), st.floats(0.1, 50.0))
def test_the_coordinators_update_is_the_mirror_too(total, step):
    base = np.full(N, 1000.0)
    w = Weights()
    peak = call_bounds(EventCall(4, 12, 100.0, ceiling_kw=105.0, rebound_max_pct=5.0), N, base, w)
    valley = CallBounds(peak.floor_kw, peak.ceiling_kw, peak.floor_cost_yuan_per_kwh,
                        peak.ceiling_cost_yuan_per_kwh, peak.in_call, VALLEY)
    tot = np.array(total)
    assert np.allclose(prox_total(-tot, valley, step), -prox_total(tot, peak, step))
    below_p, above_p = violation_kw(tot, peak)
    below_v, above_v = violation_kw(-tot, valley)
    assert np.allclose(below_p, below_v) and np.allclose(above_p, above_v)


def test_evs_pull_their_charging_into_the_window():
    devs = [ev(1, (EvSession(0, 32, 20.0),)), ev(2, (EvSession(0, 32, 20.0),))]
    base = baseline_for(devs)  # as soon as possible: charged by interval 8
    call = EventCall(16, 20, 15.0, ceiling_kw=16.0, direction_sign=VALLEY)
    plan = DispatchModel(devs, N, interval_minutes=15).solve(
        devs, HorizonData(base, price(), call, interval_minutes=15))
    assert plan.feasible
    assert (plan.response_kw[16:20] >= 15.0 * (1 - 1e-3)).all()
    for d in devs:  # each car still gets exactly what it asked for
        assert plan.ev_delivered_kwh[d.device_id].sum() == pytest.approx(20.0, abs=1e-2)


def test_the_call_solver_plans_valley_filling():
    devs, base = _fleet()
    solver = CallSolver(SchedulerSettings(), 15, PartitionedScheduler(10_000, None, 15))
    req = CallRequest(baseline_kw=base, price_yuan_per_kwh=price(), declared_kw=100.0,
                      start=4, end=12, now_index=4, band_upper_pct=120.0,
                      direction_sign=VALLEY)
    plan = solver.solve(devs, req, solver.options())
    assert plan.feasible and (plan.response_kw[4:12] >= 99.9).all()
    assert (plan.response_kw[4:12] <= 105.1).all()  # the 5 % target margin
    with pytest.raises(ValidationError, match="direction_sign must be"):
        solver.horizon(CallRequest(base, price(), 100.0, 4, 12, 4, 120.0, direction_sign=0.5))
    solver.close()


def test_the_partitioned_solve_plans_valley_filling():
    from distributed import Client

    from vpp.scheduler.partition import local_cluster

    devs = [battery(i, soc=30) for i in range(8)] + [building(10 + i) for i in range(4)]
    base = baseline_for(devs)
    data = HorizonData(base, price(), _valley(150.0, 158.0), interval_minutes=15)
    with local_cluster(workers=1) as cluster, Client(cluster) as client:
        part = solve_partitioned(client, devs, data, chunk(devs, 6), max_iter=600)
    rise = -part.reduction_kw
    assert (rise[4:12] >= 150.0 * 0.99).all() and (rise[4:12] <= 158.0 * 1.01).all()
    assert part.plan.direction_sign == VALLEY
    assert part.plan.shed_kw.max() == pytest.approx(0.0, abs=1e-2)  # no load sheds


def test_the_envelope_gives_the_room_to_rise():
    devs = [battery(1, soc=50, rated=50, hours=2), building(2), industrial(3)]
    q = np.stack([np.zeros((3, 4)), np.zeros((3, 4))])
    q[:, 1:] = 200.0
    env = flexibility_envelope(devs, q, [0.1, 0.9], 0.9, sustain_intervals=4,
                               interval_minutes=15, direction_sign=VALLEY)
    # 40 % of 100 kWh below the 90 % maximum, over 1 h at 95 % charge efficiency: 42.1 kW;
    # capped at the 50 kW setpoint; the loads owe nothing: no rise
    assert env.by_kind_kw["battery"] == pytest.approx([40.0 / 0.95] * 4)
    assert env.by_kind_kw["commercial_building"].max() == 0.0
    assert env.by_kind_kw["industrial_load"].max() == 0.0
    assert env.reduction_kw == pytest.approx([40.0 / 0.95] * 4)
