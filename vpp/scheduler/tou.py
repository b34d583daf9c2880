"""Batteries between calls: a schedule against the energy price series, holding the reserve the
next day-ahead call needs at its start.

Outside calls the batteries work the programme's time-of-use tariff (or a day-ahead spot series:
any price per interval): charge when energy is cheap, discharge when it is dear, within their
state-of-charge and power limits and their round-trip efficiency. It is the scheduler's own QP
(:class:`~vpp.scheduler.model.DispatchModel`, no call): the energy at the price is already in its
objective, with the batteries' throughput wear and quadratic cost (:class:`Weights`), so a cycle
runs only where the spread pays for the losses and the wear.

**Calls take priority.** A schedule's horizon ends where the next accepted call begins (the
call's plan owns the batteries from its start through its tail, :mod:`vpp.daemon.planning`), and
a battery with a :class:`BatteryReserve` for that call must end the horizon at the reserve's
target state of charge: the QP's terminal SoC (``e_end >= target``), so the energy is bought at
the cheapest intervals before the call. :func:`call_reserves` reads the target off the call's
plan: the SoC its plan draws during the call, above the battery's floor.

**Export.** Where the programme does not count export past the site meter, the caller passes
each battery's ``discharge_cap_kw`` per interval (its host site's load at baseline, by
:func:`bidding.export_rule.deliverable_cap_kw`); the battery block keeps ``d_t`` under it.

**Without it.** :attr:`TouPlan.reference` is the same batteries planned with no price signal
(every interval at the horizon's mean price): idle unless a reserve must be charged, then
charging spread over the horizon. The saving is the reference's cost minus the schedule's, both
at the exact tariff (:func:`bidding.tariff.tou_saving`). Every battery ends the horizon at least
at its state of charge now (and its reserve): a saving is never energy taken out of the battery.

Units: kW, kWh, SoC %, prices yuan/kWh, horizon indices in market intervals (0 = now).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from vpp.device_kinds import BatteryParams, DeviceKind
from vpp.errors import ValidationError
from vpp.scheduler.inputs import FleetDevice, HorizonData, Weights
from vpp.scheduler.model import DispatchModel, SolverOptions
from vpp.scheduler.plan import SolvedPlan


@dataclass(frozen=True)
class BatteryReserve:
    """What one battery holds for a call: ``target_soc_pct`` at the call's first interval
    (horizon index ``call_start_index``), ``reserve_kwh`` of it above the battery's floor
    (kWh stored, before discharge losses)."""

    device_id: int
    call_start_index: int
    target_soc_pct: float
    reserve_kwh: float


@dataclass(frozen=True)
class TouPlan:
    """The schedule between calls (``plan``), the same batteries without it (``reference``),
    the reserves held at the horizon's end and what could not be held (``warnings``)."""

    plan: SolvedPlan
    reference: SolvedPlan
    reserves: tuple[BatteryReserve, ...]
    warnings: tuple[str, ...] = ()

    def summary(self) -> dict:
        """Plain numbers for the CLI, logs and JSON: the reserve per battery and in total."""
        soc_end = {int(i): float(self.plan.soc_pct[k, -1])
                   for k, i in enumerate(self.plan.device_ids)}
        return {
            "batteries": int(self.plan.device_ids.size),
            "status": self.plan.status,
            "reserve_kwh": round(sum(r.reserve_kwh for r in self.reserves), 3),
            "reserves": [{"device_id": r.device_id, "call_start_index": r.call_start_index,
                          "target_soc_pct": round(r.target_soc_pct, 2),
                          "reserve_kwh": round(r.reserve_kwh, 3),
                          "planned_soc_pct": round(soc_end[r.device_id], 2)}
                         for r in self.reserves],
            "warnings": list(self.warnings),
        }


def _battery_params(d: FleetDevice) -> BatteryParams:
    if d.kind is not DeviceKind.BATTERY or not isinstance(d.params, BatteryParams):
        raise ValidationError(f"device {d.device_id} ({d.kind.value}): the schedule between "
                              "calls plans batteries only")
    return d.params


def call_reserves(plan: SolvedPlan, devices: Sequence[FleetDevice], start: int,
                  end: int) -> tuple[BatteryReserve, ...]:
    """Per battery in ``devices``, the reserve ``plan`` (a call's plan, horizon indices) needs at
    the call's start: the SoC it draws over ``[start, end)`` (its SoC at the start minus the
    lowest it reaches in the window) above the battery's floor, at most its ceiling. The
    returned ``call_start_index`` is ``start`` of this plan's horizon."""
    if not 0 <= start < end <= plan.soc_pct.shape[1]:
        raise ValidationError(f"call window {start}..{end} outside the plan's "
                              f"{plan.soc_pct.shape[1]} intervals")
    out = []
    for d in devices:
        if d.kind is not DeviceKind.BATTERY:
            continue
        p = _battery_params(d)
        soc = plan.soc_pct[plan.row(d.device_id)]
        at_start = float(d.soc_pct if start == 0 else soc[start - 1])  # type: ignore[arg-type]
        drop = max(at_start - float(soc[start:end].min()), 0.0)
        target = min(p.soc_min_pct + drop, p.soc_max_pct)
        out.append(BatteryReserve(d.device_id, start, target,
                                  (target - p.soc_min_pct) / 100.0 * p.capacity_kwh))
    return tuple(out)


def _reachable_pct(d: FleetDevice, p: BatteryParams, n: int, dt_h: float) -> float:
    """The highest SoC (%) the battery can reach by the horizon's end, charging at its
    largest charging setpoint throughout."""
    charge_kw = max(d.max_setpoint_kw, 0.0) * d.flex_scale * (1.0 if d.available else 0.0)
    gain = p.charge_efficiency * charge_kw * n * dt_h / p.capacity_kwh * 100.0
    return min(float(d.soc_pct or 0.0) + gain, p.soc_max_pct)


def _with_targets(devices: Sequence[FleetDevice], reserves: Sequence[BatteryReserve], n: int,
                  dt_h: float, cap_kw: np.ndarray | None) -> tuple[list[FleetDevice], list[str]]:
    """The batteries with their terminal SoC (their SoC now, raised to their reserve where
    reachable) and discharge caps; a warning for each reserve that cannot be reached."""
    by_id = {r.device_id: r for r in reserves}
    ids = {d.device_id for d in devices}
    for r in reserves:
        if r.device_id not in ids:
            raise ValidationError(f"reserve for device {r.device_id}, which is not in the fleet")
        if r.call_start_index != n:
            raise ValidationError(
                f"device {r.device_id}: the reserve is for a call starting at interval "
                f"{r.call_start_index}; the schedule between calls must end there (it has {n})")
    out, warnings = [], []
    for i, d in enumerate(devices):
        p = _battery_params(d)
        soc = float(d.soc_pct) if d.soc_pct is not None else p.soc_min_pct
        term = min(max(soc, p.soc_min_pct), p.soc_max_pct)
        held = by_id.get(d.device_id)
        if held is not None and d.available:
            reach = _reachable_pct(d, p, n, dt_h)
            if held.target_soc_pct > reach + 1e-6:
                warnings.append(f"device {d.device_id}: reserve {held.target_soc_pct:.1f}% "
                                f"unreachable before the call; planned to {reach:.1f}%")
            term = max(term, min(held.target_soc_pct, reach - 1e-6))
        caps: tuple[float, ...] = ()
        if cap_kw is not None:
            row = np.nan_to_num(np.asarray(cap_kw[i], dtype=float), nan=0.0,
                                posinf=max(-d.min_setpoint_kw, 0.0))
            caps = tuple(float(v) for v in np.maximum(row, 0.0))
        out.append(replace(d, terminal_soc_pct=term, discharge_cap_kw=caps))
    return out, warnings


def tou_schedule(devices: Sequence[FleetDevice], baseline_kw: np.ndarray,
                 price_yuan_per_kwh: np.ndarray, *, interval_minutes: int,
                 reserves: Sequence[BatteryReserve] = (),
                 discharge_cap_kw: np.ndarray | None = None, weights: Weights | None = None,
                 options: SolverOptions | None = None) -> TouPlan:
    """The batteries' schedule against ``price_yuan_per_kwh`` over the horizon of
    ``baseline_kw`` (batteries x intervals, kW), which ends at the next call's start (module
    docstring). ``reserves``: for that call (:func:`call_reserves`, ``call_start_index`` = the
    horizon's length). ``discharge_cap_kw`` (batteries x intervals, kW; inf or None: no cap;
    NaN: 0): the export rule. Setpoints are clamped to each battery's limits."""
    base = np.asarray(baseline_kw, dtype=float)
    price = np.asarray(price_yuan_per_kwh, dtype=float)
    if base.ndim != 2 or base.shape[0] != len(devices):
        raise ValidationError(f"baseline_kw must be ({len(devices)}, intervals), got {base.shape}")
    n = base.shape[1]
    cap = None if discharge_cap_kw is None else np.asarray(discharge_cap_kw, dtype=float)
    if cap is not None and cap.shape != base.shape:
        raise ValidationError(f"discharge_cap_kw must have shape {base.shape}, got {cap.shape}")
    fleet, warnings = _with_targets(devices, reserves, n, interval_minutes / 60.0, cap)
    model = DispatchModel(fleet, n, interval_minutes=interval_minutes, weights=weights,
                          options=options)
    plan = model.solve(fleet, HorizonData(base, price, interval_minutes=interval_minutes))
    reference = plan
    if np.ptp(price) > 0:  # a flat price: the schedule is the reference
        flat = np.full(n, float(price.mean()))
        reference = model.solve(fleet, HorizonData(base, flat, interval_minutes=interval_minutes))
    return TouPlan(plan, reference, tuple(reserves), tuple(warnings) + tuple(plan.warnings))
