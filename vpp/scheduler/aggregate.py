"""Exact aggregation of devices that are identical per unit of their rating.

Devices of one kind whose limits, parameters, state, preferences and baseline are the same once
divided by their rated power (same product model in the same state, at different sizes) are merged
into one *virtual* device with the summed rating. This is exact, not an approximation: every
constraint is per unit, every cost is ``R_i * f(x_i)`` with ``f`` convex and the fleet coupling
depends only on ``sum_i R_i x_i``, so averaging the members' per-unit plans is feasible and no
worse (Jensen); the optimum gives every member the virtual device's per-unit plan.
:func:`disaggregate` does exactly that (member power = its share of the rating x the virtual
power) and clamps setpoints to each member's own limits.

Grouping depends on state (SoC, sessions, baselines), so a state change may regroup the fleet and
then the virtual fleet's QP is rebuilt: use it where devices really repeat (many home batteries of
one model reporting SoC in whole percent), not for fleets of unique devices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from vpp.device_kinds import DeviceKind
from vpp.scheduler import pv
from vpp.scheduler.call_rows import shortfall_kw
from vpp.scheduler.inputs import EvSession, FleetDevice
from vpp.scheduler.plan import SolvedPlan
from vpp.scheduler.shed import stagger_slot

_SCALED_PARAMS = {
    DeviceKind.BATTERY: ("capacity_kwh",),
    DeviceKind.EV_CHARGER: ("max_charge_kw_per_connector", "max_discharge_kw_per_connector"),
    DeviceKind.COMMERCIAL_BUILDING: ("max_shed_kw",),
    DeviceKind.INDUSTRIAL_LOAD: ("max_curtail_kw",),
    DeviceKind.V2G_CHARGER: ("max_charge_kw", "max_discharge_kw", "car_battery_kwh"),
    DeviceKind.PV_INVERTER: ("dc_capacity_kwp",),
}


def _r(v: float) -> float:
    return float(f"{v:.9g}")


def per_unit_key(d: FleetDevice, baseline_pu: bytes) -> tuple:
    """Everything about a device divided by its rated power (rounded to 9 significant digits);
    ``baseline_pu`` is its per-unit baseline, rounded, as bytes."""
    R = d.rated_power_kw
    scaled = _SCALED_PARAMS[d.kind]
    params = tuple(
        (k, _r(v / R) if k in scaled else v) for k, v in sorted(d.params.model_dump().items())
    )
    sessions = tuple((s.arrival, s.departure, _r(s.energy_kwh / R)) for s in d.sessions)
    return (
        d.kind, _r(d.min_setpoint_kw / R), _r(d.max_setpoint_kw / R), params, d.soc_pct,
        d.terminal_soc_pct, sessions, _r(d.shed_used_kwh / R), _r(d.debt_kwh / R),
        tuple(_r(v / R) for v in d.shed_history_kwh),
        d.preference_weight, d.available, d.flex_scale, stagger_slot(d),
        tuple(_r(v / R) for v in d.discharge_cap_kw), baseline_pu,
    )


@dataclass
class Aggregation:
    """Virtual fleet plus the map back: ``groups[g]`` are the fleet indices of virtual device
    ``g``; ``share[i]`` is device ``i``'s fraction of its group's rating."""

    devices: list[FleetDevice]
    baseline_kw: np.ndarray
    groups: list[np.ndarray]
    share: np.ndarray
    group_of: np.ndarray


def aggregate(devices: Sequence[FleetDevice], baseline_kw: np.ndarray) -> Aggregation:
    """Merge per-unit-identical devices. Virtual device ids are the first member's id."""
    base = np.asarray(baseline_kw, dtype=float)
    rated = np.array([d.rated_power_kw for d in devices])
    pu = np.round(base / rated[:, None], 9) + 0.0  # + 0.0: no negative zeros
    keyed: dict[tuple, list[int]] = {}
    for i, d in enumerate(devices):
        keyed.setdefault(per_unit_key(d, pu[i].tobytes()), []).append(i)
    virtual, vbase, groups = [], [], []
    share = np.empty(len(devices))
    group_of = np.empty(len(devices), dtype=np.int64)
    for g, idx in enumerate(keyed.values()):
        members = np.array(idx, dtype=np.int64)
        first = devices[idx[0]]
        R = sum(devices[i].rated_power_kw for i in idx)
        k = R / first.rated_power_kw
        scaled = {p: getattr(first.params, p) * k for p in _SCALED_PARAMS[first.kind]}
        virtual.append(replace(
            first, rated_power_kw=R, min_setpoint_kw=first.min_setpoint_kw * k,
            max_setpoint_kw=first.max_setpoint_kw * k,
            params=first.params.model_copy(update=scaled),
            sessions=tuple(EvSession(s.arrival, s.departure, s.energy_kwh * k)
                           for s in first.sessions),
            shed_used_kwh=first.shed_used_kwh * k, debt_kwh=first.debt_kwh * k,
            discharge_cap_kw=tuple(v * k for v in first.discharge_cap_kw),
        ))
        vbase.append(base[idx].sum(axis=0))
        groups.append(members)
        for i in idx:
            share[i] = devices[i].rated_power_kw / R
            group_of[i] = g
    return Aggregation(virtual, np.array(vbase), groups, share, group_of)


def disaggregate(plan: SolvedPlan, agg: Aggregation, devices: Sequence[FleetDevice],
                 baseline_kw: np.ndarray) -> SolvedPlan:
    """The per-device plan from a plan of the virtual fleet (same order as ``devices``)."""
    g, s = agg.group_of, agg.share[:, None]
    power = plan.power_kw[g] * s
    lo = np.array([d.min_setpoint_kw for d in devices])[:, None]
    hi = np.array([d.max_setpoint_kw for d in devices])[:, None]
    setp = np.clip(power, lo, hi)
    rated = np.array([d.rated_power_kw for d in devices])[:, None]
    base = np.asarray(baseline_kw, dtype=float)
    ev_kwh, ev_t = {}, {}
    for i, d in enumerate(devices):
        v = agg.devices[g[i]].device_id
        if v in plan.ev_delivered_kwh:
            ev_kwh[d.device_id] = plan.ev_delivered_kwh[v] * agg.share[i]
        if v in plan.ev_connector_kwh:
            ev_t[d.device_id] = plan.ev_connector_kwh[v] * agg.share[i]
    reduction = (base - setp).sum(axis=0)
    short = shortfall_kw(plan.target_kw, reduction, plan.direction_sign)
    return replace(
        plan, device_ids=np.array([d.device_id for d in devices]), baseline_kw=base,
        power_kw=power, setpoint_kw=setp,
        dispatch_kw=pv.release_uncurtailed(devices, power, base, setp),
        clamped=np.abs(setp - power) > 1e-6 * np.maximum(rated, 1.0),
        reduction_kw=reduction, shortfall_kw=short, soc_pct=plan.soc_pct[g],
        shed_kw=plan.shed_kw[g] * s, owed_kwh=plan.owed_kwh[g] * s, ev_delivered_kwh=ev_kwh,
        ev_connector_kwh=ev_t, energy_cost_yuan=plan.energy_cost_yuan,
        warnings=list(plan.warnings), binding=list(plan.binding),
    )
