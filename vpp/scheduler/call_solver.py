"""Solve one grid call's plan: one path for the daemon's planner and the season simulator.

:class:`CallRequest` is what a plan asks (:mod:`vpp.scheduler.call_target`: the declared kW,
at most ``target_margin_pct`` more within the band's ceiling, the tail's rebound cap), over a
horizon whose interval 0 is the call's first and whose intervals before ``now_index`` are the
past (pinned). :class:`CallSolver` keeps one :class:`~vpp.scheduler.service.Scheduler` per
horizon length (exact aggregation of identical devices; the built QP is re-solved warm while
the fleet's structure is unchanged) and sends a fleet above ``[scheduler] partition_size``
devices to :class:`~vpp.scheduler.partition.PartitionedScheduler` (split by owner, solved on
Dask). Blocking: call it from a worker thread in asyncio code. Powers in kW, prices in
yuan/kWh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vpp.config import SchedulerSettings
from vpp.errors import ValidationError
from vpp.scheduler.call_target import plan_call
from vpp.scheduler.inputs import FleetDevice, HorizonData
from vpp.scheduler.model import SolverOptions
from vpp.scheduler.partition import PartitionedScheduler
from vpp.scheduler.plan import SolvedPlan
from vpp.scheduler.service import Scheduler

#: built schedulers kept (one per horizon length)
MAX_CACHED = 8


@dataclass(frozen=True)
class CallRequest:
    """One plan of a call: ``baseline_kw`` (devices x horizon), the tariff over the horizon,
    the bid's ``declared_kw`` over horizon intervals ``[start, end)`` (the whole call), the
    first interval still open ``now_index`` (a re-plan plans the call from there on), the programme band's ceiling (% of declared) and ``direction_sign``
    (+1 peak shaving, -1 valley filling)."""

    baseline_kw: np.ndarray
    price_yuan_per_kwh: np.ndarray
    declared_kw: float
    start: int
    end: int
    now_index: int
    band_upper_pct: float
    direction_sign: float = 1.0


class CallSolver:
    """The scheduler path of every plan (module docstring); ``settings``: ``[scheduler]``."""

    def __init__(self, settings: SchedulerSettings, interval_minutes: int,
                 partitioned: PartitionedScheduler) -> None:
        self.settings = settings
        self.interval_minutes = interval_minutes
        self.partitioned = partitioned
        self._schedulers: dict[int, Scheduler] = {}

    def horizon(self, request: CallRequest) -> HorizonData:
        """The scheduler's inputs for ``request``."""
        if request.direction_sign not in (1.0, -1.0):
            raise ValidationError(f"direction_sign must be +1 (peak shaving) or -1 (valley "
                                  f"filling), got {request.direction_sign}")
        call = plan_call(request.declared_kw, max(request.start, request.now_index),
                         request.end, target_margin_pct=self.settings.target_margin_pct,
                         band_upper_pct=request.band_upper_pct,
                         rebound_max_pct=self.settings.rebound_max_pct, origin=request.start,
                         direction_sign=request.direction_sign)
        return HorizonData(baseline_kw=request.baseline_kw,
                           price_yuan_per_kwh=request.price_yuan_per_kwh, call=call,
                           now_index=request.now_index, interval_minutes=self.interval_minutes)

    def options(self, time_limit_s: float = 0.0) -> SolverOptions:
        """The configured tolerance and polishing; ``time_limit_s`` > 0 bounds a re-plan."""
        return SolverOptions(eps=self.settings.eps, polishing=self.settings.polishing,
                             time_limit_s=time_limit_s)

    def uses_partitions(self, n_devices: int) -> bool:
        return self.partitioned.applies(n_devices)

    def solve(self, devices: Sequence[FleetDevice], request: CallRequest,
              options: SolverOptions, owners: Sequence[str] | None = None) -> SolvedPlan:
        """The plan of ``request`` for ``devices`` (``owners``: the partitions' grouping,
        default each device's owner)."""
        data = self.horizon(request)
        if self.uses_partitions(len(devices)):
            return self.partitioned.plan(devices, data, options, owners=owners)
        n = int(request.baseline_kw.shape[1])
        sched = self._schedulers.get(n)
        if sched is None:
            if len(self._schedulers) >= MAX_CACHED:
                self._schedulers.pop(next(iter(self._schedulers)))
            sched = Scheduler(n_intervals=n, interval_minutes=self.interval_minutes,
                              aggregate=True)
            self._schedulers[n] = sched
        return sched.plan(devices, data, options)

    def build_counts(self) -> dict[int, int]:
        """Per horizon length kept, how many times its scheduler built the QP."""
        return {n: sched.builds for n, sched in self._schedulers.items()}

    def builds(self, n_intervals: int) -> int:
        """How many times the scheduler of that horizon length built its QP."""
        sched = self._schedulers.get(n_intervals)
        return sched.builds if sched is not None else 0

    def close(self) -> None:
        self.partitioned.close()
