"""Loads whose shed limit is shorter than the call are staggered over it (vpp.scheduler.shed.
staggered), at the first plan and at every re-plan.

The first run's OpenADR call was widened to 75 minutes (five intervals); its 120 industrial PLCs
may curtail for 60 minutes, and a PLC counts its time under a cap at any depth. The energy
budget alone (max_curtail_kw x 60 min) let the plan cap every PLC a little in all five
intervals: all 120 would reach their limit together at minute 60 and override their caps.
"""

from __future__ import annotations

import numpy as np

from tests.vpp.scheduler.conftest import N, baseline_for, industrial, price
from vpp.scheduler import DispatchModel, EventCall, HorizonData
from vpp.scheduler.redispatch import replan_inputs
from vpp.scheduler.service import Scheduler

START, END = 16, 21  # five intervals of 15 minutes


def _fleet():
    devs = [industrial(i, rated=500.0, cap=150.0, minutes=60, makeup=0.0) for i in range(1, 41)]
    return devs, baseline_for(devs)


def _shed_intervals(plan, base) -> np.ndarray:
    return ((base - plan.setpoint_kw)[:, START:END] > 1e-3 * base.max()).sum(axis=1)


def test_loads_of_sixty_minutes_shed_in_three_of_five_intervals_and_cover_all_five() -> None:
    devs, base = _fleet()
    call = EventCall(START, END, 3_000.0, ceiling_kw=3_150.0, rebound_max_pct=10.0)
    model = DispatchModel(devs, N, interval_minutes=15)
    plan = model.solve(devs, HorizonData(base, price(), call, interval_minutes=15))
    assert plan.feasible
    assert _shed_intervals(plan, base).max() <= 3  # before: 5 (every PLC, every interval)
    assert (plan.reduction_kw[START:END] >= 3_000.0 * (1 - 1e-3)).all()
    # a re-plan two intervals in keeps each load to the intervals it was given
    devs2, data2 = replan_inputs(devs, HorizonData(base, price(), call, now_index=START + 2, interval_minutes=15),
                                 START + 2)
    assert data2.call is not None and data2.call.first == START
    again = model.solve(devs2, data2)
    before = (base - plan.setpoint_kw)[:, START:START + 2] > 1e-3 * base.max()
    later = (base - again.setpoint_kw)[:, START + 2:END] > 1e-3 * base.max()
    assert (before.sum(axis=1) + later.sum(axis=1)).max() <= 3
    assert (again.reduction_kw[START + 2:END] >= 3_000.0 * (1 - 1e-3)).all()


def test_the_daemons_aggregating_scheduler_staggers_identical_loads_too() -> None:
    """The daemon merges per-unit-identical devices (aggregate=True): 40 identical PLCs were one
    virtual device, so all left out the same interval and overrode together at minute 60."""
    devs, base = _fleet()
    call = EventCall(START, END, 3_000.0, ceiling_kw=3_150.0, rebound_max_pct=10.0)
    plan = Scheduler(n_intervals=N, interval_minutes=15, aggregate=True).plan(
        devs, HorizonData(base, price(), call, interval_minutes=15))
    shed = (base - plan.setpoint_kw)[:, START:END] > 1e-3 * base.max()
    assert shed.sum(axis=1).max() <= 3
    assert shed.sum(axis=0).min() >= 20  # each interval: 3/5 of the 40 shed (24)
    assert (plan.reduction_kw[START:END] >= 3_000.0 * (1 - 1e-3)).all()
