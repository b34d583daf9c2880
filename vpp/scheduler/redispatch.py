"""Receding-horizon re-dispatch: carry a plan forward to ``now`` and re-plan the rest.

:func:`advance` derives every device's state at interval ``now`` from the plan that was being
executed (state of charge, energy already shed, energy owed, EV energy still needed), with
telemetry overrides; :func:`redispatch` marks devices that dropped out (offline) or
under-delivered (derated), clips the call to the future and re-solves the *same* model (no
rebuild: only bounds and costs change), so that the remaining devices make up the difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from vpp.device_kinds import DeviceKind
from vpp.errors import ValidationError
from vpp.scheduler.inputs import EvSession, FleetDevice, HorizonData
from vpp.scheduler.model import DispatchModel
from vpp.scheduler.plan import SolvedPlan


def advance(devices: Sequence[FleetDevice], plan: SolvedPlan, now: int,
            soc_pct: Mapping[int, float] | None = None) -> list[FleetDevice]:
    """Device states at the start of interval ``now``, assuming ``plan`` ran until then
    (``soc_pct`` overrides batteries' SoC with measured values)."""
    if not 0 < now < plan.power_kw.shape[1]:
        raise ValidationError(f"now={now} must be inside the horizon and after its start")
    if now < plan.now_index:
        raise ValidationError(f"now={now} is before the plan's own start ({plan.now_index})")
    dt = plan.interval_minutes / 60.0
    soc_pct = soc_pct or {}
    out = []
    for i, d in enumerate(devices):
        if d.kind is DeviceKind.V2G_CHARGER and d.soc_pct is None:  # no car
            out.append(d)
        elif d.kind in (DeviceKind.BATTERY, DeviceKind.V2G_CHARGER):  # a V2G charger's car
            soc = soc_pct.get(d.device_id, float(plan.soc_pct[i, now - 1]))
            out.append(replace(d, soc_pct=float(np.clip(soc, 0.0, 100.0))))
        elif d.kind is DeviceKind.EV_CHARGER:
            per_conn = plan.ev_connector_kwh.get(d.device_id)
            if per_conn is None:
                raise ValidationError(f"the plan has no per-connector energy for EV charger "
                                      f"{d.device_id}")
            sessions = []
            for j, s in enumerate(d.sessions):  # connector j carries session j
                used = float(per_conn[j, :now].sum())
                left = s.energy_kwh - min(s.energy_kwh, max(used, 0.0))
                if s.departure <= now or left < 1e-4:  # gone, or the solver's tolerance
                    left = 0.0
                sessions.append(EvSession(s.arrival, s.departure, left))
            out.append(replace(d, sessions=tuple(sessions)))
        else:
            # the solver's tolerance leaves shed of order -1e-6 kW where none is planned;
            # intervals before the plan's own now_index were pinned (their shed is in the
            # device's history already)
            done = np.maximum(plan.shed_kw[i, plan.now_index : now], 0.0) * dt
            shed_used = d.shed_used_kwh + float(done.sum())
            history = d.shed_history_kwh
            if d.kind is DeviceKind.INDUSTRIAL_LOAD:
                history = history + tuple(float(v) for v in done)
            out.append(replace(d, shed_used_kwh=shed_used, shed_history_kwh=history,
                               debt_kwh=float(max(plan.owed_kwh[i, now - 1], 0.0))))
    return out


def replan_inputs(devices: Sequence[FleetDevice], data: HorizonData, now: int, *,
                  offline: Sequence[int] = (), derate: Mapping[int, float] | None = None
                  ) -> tuple[list[FleetDevice], HorizonData]:
    """The devices and data of a re-plan from interval ``now``: ``offline`` devices pinned at
    their baseline, ``derate`` (device id -> fraction of flexibility still trusted) applied, the
    call clipped to the future. ``devices`` carry the state at ``now`` (see :func:`advance`)."""
    derate = derate or {}
    known = {d.device_id for d in devices}
    for dev_id in list(offline) + list(derate):
        if dev_id not in known:
            raise ValidationError(f"unknown device {dev_id}")
    off = set(offline)
    devs = [
        replace(d, available=d.device_id not in off,
                flex_scale=float(derate.get(d.device_id, d.flex_scale)))
        for d in devices
    ]
    call = data.call
    if call is not None:
        if call.end <= now:
            call = None
        else:
            call = call.from_interval(now)
    new = HorizonData(data.baseline_kw, data.price_yuan_per_kwh, call, now_index=now,
                      interval_minutes=data.interval_minutes)
    return devs, new


def redispatch(model: DispatchModel, devices: Sequence[FleetDevice], data: HorizonData,
               now: int, *, offline: Sequence[int] = (),
               derate: Mapping[int, float] | None = None) -> SolvedPlan:
    """Re-plan from interval ``now`` (:func:`replan_inputs`) on the same model: a warm
    re-solve, nothing rebuilt, so that the remaining devices make up the difference."""
    return model.solve(*replan_inputs(devices, data, now, offline=offline, derate=derate))
