"""The scheduler's answer: per-device planned power and setpoints, the fleet response, the
shortfall against the call and, when the call cannot be met, which constraints stopped it.

Setpoints are always clamped to each device's declared ``[min_setpoint_kw, max_setpoint_kw]``
(the safety rule); ``clamped`` marks where the plan itself lay outside (for example a baseline
already below a load's minimum setpoint).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Binding:
    """A family of constraints that was active where the call fell short."""

    family: str
    rows: int
    device_ids: tuple[int, ...]  # up to 10 examples

    def describe(self) -> str:
        ex = ", ".join(str(i) for i in self.device_ids)
        return f"{self.family}: {self.rows} active rows (devices {ex or '-'})"


@dataclass
class SolvedPlan:
    """Result of one solve. Arrays are (devices, intervals) in the order of ``device_ids``.
    (What the daemon stores from it is a :class:`vpp.models.DispatchPlan` row and its
    setpoints: :mod:`vpp.daemon.plan_store`.)"""

    device_ids: np.ndarray
    baseline_kw: np.ndarray
    power_kw: np.ndarray
    setpoint_kw: np.ndarray
    clamped: np.ndarray
    target_kw: np.ndarray  # (intervals,), NaN outside the call window
    reduction_kw: np.ndarray  # fleet baseline minus fleet plan, (intervals,) (either direction)
    shortfall_kw: np.ndarray  # (intervals,), 0 outside the window
    soc_pct: np.ndarray  # batteries' SoC at the end of each interval, NaN for other kinds
    shed_kw: np.ndarray  # loads' shed below baseline, 0 for other kinds
    owed_kwh: np.ndarray  # loads' energy still owed (rebound / make-up) at each interval's end
    ev_delivered_kwh: dict[int, np.ndarray]  # per EV charger: energy per connector
    energy_cost_yuan: float
    objective_yuan: float
    status: str
    iterations: int
    solve_time_s: float
    setup_time_s: float
    interval_minutes: int  # the market interval the plan steps by
    binding: list[Binding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: per EV charger: energy per connector per interval (kWh, connectors x intervals)
    ev_connector_kwh: dict[int, np.ndarray] = field(default_factory=dict)
    #: the first interval this plan could change (earlier ones were pinned: the past)
    now_index: int = 0
    #: what is written to each device per interval (kW): ``setpoint_kw``, except that a PV
    #: inverter's uncurtailed intervals carry its lowest setpoint, no output ceiling
    #: (:func:`vpp.scheduler.pv.release_uncurtailed`); None: ``setpoint_kw``
    dispatch_kw: np.ndarray | None = None
    #: the call's direction: +1 peak shaving, -1 valley filling (``target_kw`` and
    #: ``shortfall_kw`` are on the response, ``direction_sign`` x ``reduction_kw``)
    direction_sign: float = 1.0

    @property
    def dispatch_setpoint_kw(self) -> np.ndarray:
        """The setpoints to write (kW, devices x intervals; ``dispatch_kw`` where set)."""
        return self.setpoint_kw if self.dispatch_kw is None else self.dispatch_kw

    @property
    def response_kw(self) -> np.ndarray:
        """The fleet's response in the call's direction (kW per interval): the reduction for
        peak shaving, the rise above the baseline for valley filling."""
        return self.direction_sign * self.reduction_kw

    @property
    def shortfall_kwh(self) -> float:
        return float(self.shortfall_kw.sum() * self.interval_minutes / 60.0)

    @property
    def feasible(self) -> bool:
        """True when the call is met in every interval (within 0.1 % of the target)."""
        tgt = np.nan_to_num(self.target_kw)
        return bool((self.shortfall_kw <= 1e-3 * np.maximum(tgt, 1.0)).all())

    def row(self, device_id: int) -> int:
        hits = np.flatnonzero(self.device_ids == device_id)
        if hits.size == 0:
            raise KeyError(device_id)
        return int(hits[0])

    def summary(self) -> dict:
        """Headline figures as plain numbers (for the CLI, logs and JSON)."""
        win = ~np.isnan(self.target_kw)
        return {
            "devices": int(self.device_ids.size),
            "status": self.status,
            "iterations": self.iterations,
            "solve_time_s": round(self.solve_time_s, 4),
            "target_kw_max": float(np.nanmax(self.target_kw)) if win.any() else 0.0,
            "reduction_kw_min_in_window": float(self.response_kw[win].min()) if win.any() else 0.0,
            "shortfall_kwh": round(self.shortfall_kwh, 3),
            "energy_cost_yuan": round(self.energy_cost_yuan, 2),
            "objective_yuan": round(self.objective_yuan, 2),
            "clamped_setpoints": int(self.clamped.sum()),
        }
