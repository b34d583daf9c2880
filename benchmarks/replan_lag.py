"""Solve time and asyncio loop lag of the first run's plans (``tests/vpp/scheduler/
first_run_fleet.py``): the first plan, then re-plans in later intervals of the call, each
through :class:`vpp.scheduler.call_solver.CallSolver` in a one-thread executor as the daemon
runs them, while a 10 ms ticker measures how late the event loop wakes. Run from the repo root:
``.venv/bin/python benchmarks/replan_lag.py`` (a measurement script: no baseline to compare
with, so not a ``bench_*`` benchmark of ``make bench``)."""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.vpp.scheduler.first_run_fleet import (  # noqa: E402
    INTERVAL_MINUTES,
    PlanCase,
    first_plan,
    replan,
)
from vpp.config import SchedulerSettings  # noqa: E402
from vpp.scheduler.call_solver import CallSolver  # noqa: E402
from vpp.scheduler.partition import PartitionedScheduler  # noqa: E402

TICK_S = 0.01


async def _timed(solver: CallSolver, pool: ThreadPoolExecutor, case: PlanCase,
                 limit_s: float, label: str) -> None:
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(TICK_S)
            lags.append(time.perf_counter() - t - TICK_S)

    task = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    plan = await asyncio.get_running_loop().run_in_executor(
        pool, lambda: solver.solve(case.devices, case.request, solver.options(limit_s)))
    wall = time.perf_counter() - t0
    done.set()
    await task
    print(f"{label}: wall {wall:.3f} s, solve_s {plan.solve_time_s:.3f}, {plan.iterations} "
          f"iterations ({plan.status}), {len(lags)} ticks, worst loop lag "
          f"{max(lags, default=0.0) * 1e3:.0f} ms {plan.warnings[:1]}")


async def main() -> None:
    s = SchedulerSettings()
    solver = CallSolver(s, INTERVAL_MINUTES,
                        PartitionedScheduler(s.partition_size, None, INTERVAL_MINUTES))
    with ThreadPoolExecutor(1) as pool:
        case = first_plan()
        await _timed(solver, pool, case, 0.0, "first plan")
        for now in (2, 3, 4):
            await _timed(solver, pool, replan(case, now), s.replan_time_limit_s,
                         f"re-plan in interval {now}")


if __name__ == "__main__":
    asyncio.run(main())
