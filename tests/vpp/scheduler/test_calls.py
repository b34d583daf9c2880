"""Impossible calls, bad input, re-dispatch after a device drops out, the envelope."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.vpp.scheduler.conftest import (
    N,
    baseline_for,
    battery,
    building,
    data,
    ev,
    industrial,
    price,
)
from vpp.device_kinds import DeviceKind
from vpp.errors import ValidationError
from vpp.scheduler import (
    DispatchModel,
    EventCall,
    EvSession,
    HorizonData,
    Scheduler,
    advance,
    flexibility_envelope,
    redispatch,
)
from vpp.scheduler.synthetic import event_window, mixed_fleet, tou_price


def test_impossible_call_reports_shortfall_and_binding_constraints():
    devs = [building(1), building(2, rated=300, shed=90, minutes=90, rebound=0.0), industrial(3)]
    base = baseline_for(devs)
    # one interval, so duration budgets do not bind: the most the loads can give is their caps
    most = sum(min(d.params.max_shed_kw if hasattr(d.params, "max_shed_kw")
                   else d.params.max_curtail_kw, base[k, 18] - d.min_setpoint_kw)
               for k, d in enumerate(devs))
    plan = DispatchModel(devs, N, interval_minutes=15).solve(devs, data(base, most + 500.0, start=18, end=19))
    assert not plan.feasible
    assert plan.shortfall_kw[18] == pytest.approx(500.0, rel=1e-3)
    assert plan.reduction_kw[18] == pytest.approx(most, rel=1e-3)
    families = {b.family for b in plan.binding}
    assert {"building.shed_limit", "industrial.shed_limit"} <= families
    assert any("cannot be met" in w for w in plan.warnings)


def test_impossible_multi_interval_call_is_best_effort():
    devs = [battery(1, soc=50), battery(2, soc=30), building(3)]
    base = baseline_for(devs)
    plan = DispatchModel(devs, N, interval_minutes=15).solve(devs, data(base, 5000.0))
    assert not plan.feasible and plan.shortfall_kwh > 0
    assert plan.status == "solved"
    # batteries discharge as hard as they may during the call, bounded by energy and limits
    assert (plan.reduction_kw[16:20] > 0).all()
    assert plan.binding


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d, b: (d, np.where(np.arange(N) == 3, np.nan, b)), "NaN"),
        (lambda d, b: ([replace(d[0], min_setpoint_kw=60.0, max_setpoint_kw=40.0)] + d[1:], b),
         "inverted limits"),
        (lambda d, b: ([replace(d[0], soc_pct=float("nan"))] + d[1:], b), "soc_pct"),
        (lambda d, b: (d, b[:, :-1]), "shape"),
        (lambda d, b: ([replace(d[0], soc_pct=12.0, terminal_soc_pct=90.0)] + d[1:], b),
         "unreachable"),
        (lambda d, b: (d[:1] + [ev(9, (EvSession(0, 4, 500.0),))], b[:2]), "at most"),
    ],
)
def test_bad_input_is_a_clear_error(mutate, message):
    devs = [battery(1, rated=5.0, hours=20.0), building(2)]
    base = baseline_for(devs)
    devs, base = mutate(devs, base)
    with pytest.raises(ValidationError, match=message):
        DispatchModel(devs, N, interval_minutes=15).solve(devs, data(base, 10.0))


def test_call_in_the_past_is_rejected():
    devs = [building(1)]
    base = baseline_for(devs)
    with pytest.raises(ValidationError, match="past"):
        DispatchModel(devs, N, interval_minutes=15).solve(devs, data(base, 10.0, start=2, end=6, now=4))


def test_redispatch_after_a_device_drops_out(mixed):
    devs, base = mixed
    sched = Scheduler(n_intervals=N, interval_minutes=15)
    # flat price: nothing is shed for its own sake, so the call binds
    d0 = HorizonData(base, np.full(N, 0.65), EventCall(16, 24, 250.0), interval_minutes=15)
    plan = sched.plan(devs, d0)
    assert plan.feasible
    model = sched.model_for(devs)
    solver = model._solver
    # the load carrying most of the rest of the call goes offline at interval 18
    now = 18
    k = int(np.argmax(plan.shed_kw[:, now:24].sum(axis=1)))
    lost = devs[k].device_id
    state = advance(devs, plan, now)
    new = redispatch(model, state, d0, now, offline=[lost])
    assert sched.builds == 1 and model._solver is solver  # no rebuild, warm re-solve
    assert new.feasible
    assert (new.reduction_kw[now:24] >= 250.0 * (1 - 1e-3)).all()
    # the dropped device is left at its baseline; the others made up its share
    assert np.allclose(new.power_kw[k, now:], base[k, now:], atol=1e-6)
    others = np.arange(len(devs)) != k
    before = (base[others, now:24] - plan.setpoint_kw[others, now:24]).sum(axis=0)
    after = (base[others, now:24] - new.setpoint_kw[others, now:24]).sum(axis=0)
    assert before.min() < 250.0 * 0.99  # without the dropped device the old plan falls short
    assert (after >= 250.0 * (1 - 1e-3)).all()  # the others now cover the whole call


def test_advance_charges_each_session_to_its_own_connector():
    # connector 1's vehicle charges early; connector 0's arrives only at interval 12
    late, early = EvSession(12, 30, 20.0), EvSession(0, 10, 15.0)
    devs = [ev(1, (late, early), connectors=2), building(2)]
    base = baseline_for(devs)
    model = DispatchModel(devs, N, interval_minutes=15)
    plan = model.solve(devs, data(base, 20.0))
    now = 10
    assert plan.ev_connector_kwh[1][1, :now].sum() == pytest.approx(15.0, abs=1e-3)
    state = advance(devs, plan, now)
    got = state[0].sessions
    assert got[0].energy_kwh == pytest.approx(20.0, abs=1e-6)  # nothing delivered to it yet
    assert got[1].energy_kwh == 0.0  # left full
    new = redispatch(model, state, data(base, 20.0), now)
    assert new.ev_connector_kwh[1][0].sum() == pytest.approx(20.0, abs=1e-3)


def test_receding_horizon_replans_chain_through_the_call(mixed):
    """Every interval re-plans from the previous re-plan's state (solver noise included: shed
    of -1e-6 kW, sessions a few mWh short of done) and stays solvable."""
    devs, base = mixed
    model = DispatchModel(devs, N, interval_minutes=15)
    d0 = data(base, 150.0, start=16, end=22)
    plan, state = model.solve(devs, d0), devs
    assert plan.feasible
    for now in range(1, 24):
        state = advance(state, plan, now)
        plan = redispatch(model, state, d0, now)
        assert plan.status == "solved" and plan.feasible  # the call's future is still met
        assert all(s.energy_kwh >= 0 for d in state for s in d.sessions)
        assert all(d.shed_used_kwh >= 0 for d in state)


def test_replan_keeps_each_curtailments_own_makeup_deadline():
    """Curtailment must be made up within ``makeup_hours`` of its own interval. A re-plan in
    the middle of the call (state from ``advance``, which carries the curtailment history) may
    not push the make-up of the call's first intervals later, even when later energy is
    cheaper."""
    plant = replace(industrial(1, cap=300.0, minutes=120, makeup=1.0, hours=1.0),
                    max_setpoint_kw=1000.0)
    devs = [plant]
    base = baseline_for(devs)
    p = np.full(N, 0.65)
    p[24:] = 0.05  # very cheap energy later: delaying the make-up would pay
    d0 = HorizonData(base, p, EventCall(12, 18, 250.0), interval_minutes=15)
    model = DispatchModel(devs, N, interval_minutes=15)
    plan = model.solve(devs, d0)
    assert plan.feasible
    now = 15
    state = advance(devs, plan, now)
    assert len(state[0].shed_history_kwh) == now
    new = redispatch(model, state, d0, now)
    assert new.feasible
    window = int(round(1.0 / 0.25)) + 1  # make-up due within 4 intervals: 5 rows of lags
    shed = np.concatenate([np.asarray(state[0].shed_history_kwh), new.shed_kw[0, now:] * 0.25])
    for t in range(now, N):
        due = shed[max(t - window + 1, 0) : t + 1].sum()  # curtailed in (t - window, t]
        assert new.owed_kwh[0, t] <= due + 1e-3 * 300, t


def test_derated_device_gets_less(mixed):
    devs, base = mixed
    model = DispatchModel(devs, N, interval_minutes=15)
    d0 = data(base, 250.0)
    plan = model.solve(devs, d0)
    k = int(np.argmax(plan.shed_kw.sum(axis=1)))
    new = redispatch(model, devs, d0, 0, derate={devs[k].device_id: 0.25})
    assert new.shed_kw[k].max() <= 0.25 * devs[k].params.max_curtail_kw + 1e-3 * devs[k].rated_power_kw
    assert new.shed_kw[k].max() < plan.shed_kw[k].max()
    assert new.feasible


def test_envelope_shrinks_with_confidence_and_is_deliverable():
    devs = [building(1), building(2, rated=300, shed=90, minutes=90, rebound=0.0), industrial(3),
            battery(4, soc=80)]
    base = baseline_for(devs)
    base[3] = 0.0
    q = np.stack([0.9 * base, base, 1.1 * base])
    lv = [0.1, 0.5, 0.9]
    hi = flexibility_envelope(devs, q, lv, confidence=0.5, sustain_intervals=4, interval_minutes=15)
    lo = flexibility_envelope(devs, q, lv, confidence=0.9, sustain_intervals=4, interval_minutes=15)
    assert (lo.reduction_kw <= hi.reduction_kw + 1e-9).all()
    assert lo.reduction_kw[16] > 0
    # the envelope at the low baseline is deliverable for the sustain period on that baseline
    low = q[0]
    amount = float(lo.reduction_kw[16:20].min())
    plan = DispatchModel(devs, N, interval_minutes=15).solve(devs, HorizonData(low, price(), EventCall(16, 20, amount), interval_minutes=15))
    assert plan.feasible
    with pytest.raises(ValidationError):
        flexibility_envelope(devs, q[:, :2], lv, interval_minutes=15)


def test_event_window_is_the_daemons_view_of_a_day_fleet():
    """The benchmark's event-horizon fleet: baselines sliced, EV sessions cut to the window
    with their energy pro rata (still deliverable), batteries ending at their SoC now; the
    call on it is met."""
    devs, base = mixed_fleet(60, 96, seed=4, interval_minutes=15)
    win, wbase = event_window(devs, base, 72, 24)
    assert wbase.shape == (60, 24) and np.array_equal(wbase, base[:, 72:96])
    for d, w in zip(devs, win, strict=True):
        if d.kind is DeviceKind.BATTERY:
            assert w.terminal_soc_pct is None
        for s in w.sessions:
            assert 0 <= s.arrival < s.departure <= 24
            most = d.params.max_charge_kw_per_connector * (s.departure - s.arrival) * 0.25
            assert 0 < s.energy_kwh <= most
    assert sum(len(w.sessions) for w in win) < sum(len(d.sessions) for d in devs)
    call = EventCall(0, 8, round(0.1 * float(wbase[:, :8].sum(axis=0).mean()), 1))
    plan = DispatchModel(win, 24, interval_minutes=15).solve(win, HorizonData(wbase, tou_price(24, start_hour=18, interval_minutes=15),
                                                         call, interval_minutes=15))
    assert plan.feasible and plan.shortfall_kw.max() < 0.01 * call.reduction_kw
