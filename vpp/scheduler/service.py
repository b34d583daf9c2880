"""The daemon-facing entry point: one cached model per fleet structure.

:class:`Scheduler` rebuilds only when the fleet's structure changes (devices added, removed or
re-parametrised); state, forecasts, prices and calls are re-solved on the cached model. It holds
no event-loop state: from asyncio, ``await loop.run_in_executor(None, scheduler.plan, devs, data)``.
One call at a time per instance (a lock serialises callers from several threads).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from vpp.scheduler.aggregate import aggregate, disaggregate
from vpp.scheduler.inputs import FleetDevice, HorizonData, Weights
from vpp.scheduler.model import DispatchModel, SolverOptions, signature
from vpp.scheduler.plan import SolvedPlan


class Scheduler:
    """Plans calls for a fleet, reusing the built QP while the fleet's structure is unchanged."""

    def __init__(self, n_intervals: int, interval_minutes: int,
                 weights: Weights | None = None, options: SolverOptions | None = None,
                 aggregate: bool = False) -> None:
        self.n = n_intervals
        self.interval_minutes = interval_minutes
        self.weights = weights or Weights()
        self.options = options or SolverOptions()
        self._model: DispatchModel | None = None
        self._lock = threading.Lock()
        self.builds = 0
        self.aggregate = aggregate  # merge per-unit-identical devices (exact), see aggregate.py

    def model_for(self, devices: Sequence[FleetDevice]) -> DispatchModel:
        if self._model is None or self._model.signature != signature(devices):
            self._model = DispatchModel(devices, self.n, interval_minutes=self.interval_minutes,
                                        weights=self.weights, options=self.options)
            self.builds += 1
        return self._model

    def plan(self, devices: Sequence[FleetDevice], data: HorizonData,
             options: SolverOptions | None = None) -> SolvedPlan:
        """Plan ``data``; ``options`` (e.g. a time limit for a re-plan) apply from this solve
        on, without a rebuild."""
        with self._lock:
            if options is not None:
                self.options = options
            if not self.aggregate:
                return self._solve(devices, data)
            agg = aggregate(devices, data.baseline_kw)
            vdata = replace(data, baseline_kw=agg.baseline_kw)
            plan = self._solve(agg.devices, vdata)
            return disaggregate(plan, agg, devices, data.baseline_kw)

    def _solve(self, devices: Sequence[FleetDevice], data: HorizonData) -> SolvedPlan:
        model = self.model_for(devices)
        if model.options != self.options:
            model.set_options(self.options)
        return model.solve(devices, data)
