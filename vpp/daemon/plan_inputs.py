"""What one plan (or re-plan) of an event is made from: the typed contract between the
planner's database step (:meth:`vpp.daemon.planning.Planner._prepare`), its solve in the solver
thread and the plan's storage (:func:`vpp.daemon.plan_store.store_plan`).

The horizon is the event's intervals and the tail after it (rebound / make-up / recharge), in
market intervals of ``interval_minutes``; index 0 is the event's first interval. The intervals
before ``first_index`` are the past (pinned in the solve); the current one is ``first_index``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from vpp.models import GridEvent
from vpp.scheduler.call_solver import CallRequest
from vpp.scheduler.inputs import FleetDevice


@dataclass(frozen=True)
class PlanInputs:
    """One plan's inputs. Powers in kW, prices in yuan/kWh, times aware.

    ``devices``: the scheduler's view of the devices that take part (those with a state);
    ``baseline_kw``: (devices x ``n_intervals``) each device's fixed baseline;
    ``price_yuan_per_kwh``: the programme's tariff per horizon interval; ``horizon_start``: the
    current interval's start (local); ``declared_kw``: the bid's; ``band_upper_pct``: the
    programme band's ceiling (% of declared; what the plan may deliver above the declared kW is
    :func:`vpp.scheduler.call_target.plan_call`'s rule);
    ``direction_sign``: +1 peak shaving, -1 valley filling; ``owner_of_device``: device id ->
    owner id; ``reason``: why it is planned (``initial``, a re-plan's reason); ``trigger``:
    what the control loop measured (kW) that made it re-plan."""

    event: GridEvent
    devices: list[FleetDevice]
    baseline_kw: np.ndarray
    price_yuan_per_kwh: np.ndarray
    horizon_start: datetime
    n_intervals: int
    first_index: int
    n_event_intervals: int
    intervals: list[datetime]  # the event's interval starts from the current one (aware UTC)
    declared_kw: float
    band_upper_pct: float
    direction_sign: float
    interval_minutes: int
    owner_of_device: dict[int, int]
    reason: str = "initial"
    trigger: dict[str, float] | None = None

    @property
    def event_slice(self) -> slice:
        """The horizon's event intervals from the current one."""
        return slice(self.first_index, self.first_index + self.n_event_intervals)

    @property
    def tail_slice(self) -> slice:
        """The horizon's intervals after the event (the tail)."""
        return slice(self.first_index + self.n_event_intervals, self.n_intervals)

    def request(self) -> CallRequest:
        """What the solve asks (:class:`vpp.scheduler.call_solver.CallRequest`); horizon
        interval 0 is the event's first."""
        return CallRequest(
            baseline_kw=self.baseline_kw, price_yuan_per_kwh=self.price_yuan_per_kwh,
            declared_kw=self.declared_kw, start=0,
            end=self.first_index + self.n_event_intervals, now_index=self.first_index,
            band_upper_pct=self.band_upper_pct, direction_sign=self.direction_sign)

    def horizon_starts(self) -> list[datetime]:
        """Interval starts from the current interval to the horizon's end (call, then tail)."""
        step = timedelta(minutes=self.interval_minutes)
        n_tail = self.n_intervals - self.first_index - self.n_event_intervals
        return list(self.intervals) + [self.intervals[-1] + (k + 1) * step
                                       for k in range(n_tail)]
