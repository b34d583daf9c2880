"""The first run's fleet as the daemon's planner sees it (tests/e2e/test_first_run.py): 600
devices, five gateways of 120 (Huawei and Sungrow batteries, Alfen chargers, CoolMaster
buildings, industrial PLCs: the first five of :data:`sim.fleet.SYNTHETIC_KINDS`), built through
:func:`vpp.scheduler.device_view.scheduler_device` as :meth:`vpp.daemon.planning.Planner.
_plan_fleet` builds them, and the :class:`~vpp.scheduler.call_solver.CallRequest` of a
75-minute call (5 intervals of 15 minutes, then the 4 h tail: 21 intervals).

:func:`replan` is what a later plan of the same event looks like to the solver: the past
pinned (``now_index``), one device excluded (gone offline), the loads' metered shed so far
(``shed_used_kwh``, different for every load) and the batteries' new charge. Baselines are
per-device telemetry means (every device its own), as the daemon's fixed baselines are.
Powers in kW, energies in kWh, state of charge in percent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from device_adapters.protocol import DeviceState
from sim.fleet import SYNTHETIC_KINDS
from vpp.device_kinds import DeviceKind, parse_params
from vpp.scheduler.call_solver import CallRequest
from vpp.scheduler.device_view import scheduler_device
from vpp.scheduler.inputs import FleetDevice

INTERVAL_MINUTES = 15
CALL_INTERVALS = 5  # 75 minutes: the VEN widens a one-hour call to the intervals covering it
TAIL_INTERVALS = 16  # [scheduler] event_tail_minutes = 240
N_INTERVALS = CALL_INTERVALS + TAIL_INTERVALS
PER_GATEWAY = 120
DECLARED_KW = 12_000.0  # event 1 of the first run
NOW = datetime(2026, 7, 15, 4, 45, tzinfo=UTC)


@dataclass(frozen=True)
class PlanCase:
    """One plan's solver inputs: the devices and the request."""

    devices: list[FleetDevice]
    request: CallRequest


def _baseline_kw(kind: DeviceKind, rng: np.random.Generator) -> float:
    """A device's running power as its telemetry mean would give it (kW)."""
    if kind is DeviceKind.COMMERCIAL_BUILDING:
        return 486.5  # the simulated buildings all start alike
    if kind is DeviceKind.INDUSTRIAL_LOAD:
        return 400.0  # a PLC runs at 80% of its rating
    if kind is DeviceKind.EV_CHARGER:
        return float(rng.choice([0.0, 7.4, 11.0, 22.0]))
    return 0.0  # batteries idle


def _state(device_id: int, kind: DeviceKind, power_kw: float,
           rng: np.random.Generator) -> DeviceState:
    soc = 55.0 if kind is DeviceKind.BATTERY else None
    return DeviceState(device_id=device_id, ts=NOW, power_kw=power_kw, energy_kwh=None,
                       soc_pct=soc, indoor_temp_c=None, available=True, flex_down_kw=0.0,
                       flex_up_kw=0.0)


def first_plan(n_devices: int = 600, seed: int = 0) -> PlanCase:
    """The event's first plan (nothing pinned)."""
    rng = np.random.default_rng(seed)
    devices, rows = [], []
    for i in range(n_devices):
        k = SYNTHETIC_KINDS[(i // PER_GATEWAY) % 5]
        params = parse_params(k.kind, k.params)
        base = _baseline_kw(k.kind, rng)
        devices.append(scheduler_device(
            i + 1, k.kind, params, rated_power_kw=k.rated_power_kw,  # type: ignore[arg-type]
            min_setpoint_kw=k.min_setpoint_kw, max_setpoint_kw=k.max_setpoint_kw,
            owner="1", state=_state(i + 1, k.kind, base, rng), preferences={}, sessions=(),
            horizon_intervals=N_INTERVALS, interval_minutes=INTERVAL_MINUTES))
        rows.append(np.full(N_INTERVALS, base))
    price = np.full(N_INTERVALS, 0.65)
    price[:CALL_INTERVALS] = 1.04
    return PlanCase(devices, CallRequest(
        baseline_kw=np.vstack(rows), price_yuan_per_kwh=price, declared_kw=DECLARED_KW,
        start=0, end=CALL_INTERVALS, now_index=0, band_upper_pct=120.0))


def replan(case: PlanCase, now_index: int = 1, exclude: int = 1,
           seed: int = 1) -> PlanCase:
    """A re-plan of ``case`` in interval ``now_index``: device ``exclude`` left out, every load's
    metered shed so far and every battery's charge as read now (module docstring)."""
    rng = np.random.default_rng(seed)
    dt_h = INTERVAL_MINUTES / 60.0
    keep = [i for i, d in enumerate(case.devices) if d.device_id != exclude]
    devices = []
    for i in keep:
        d = case.devices[i]
        if d.kind in (DeviceKind.COMMERCIAL_BUILDING, DeviceKind.INDUSTRIAL_LOAD):
            depth = float(getattr(d.params, "max_shed_kw", getattr(d.params, "max_curtail_kw",
                                                                      0.0)))
            d = replace(d, shed_used_kwh=depth * now_index * dt_h * float(rng.uniform(0.5, 1)))
        elif d.kind is DeviceKind.BATTERY and d.soc_pct is not None:
            soc = max(d.soc_pct - float(rng.integers(0, 6)), 10.0)
            d = replace(d, soc_pct=soc, terminal_soc_pct=d.terminal_soc_pct)
        devices.append(d)
    request = replace(case.request, baseline_kw=case.request.baseline_kw[keep],
                      now_index=now_index)
    return PlanCase(devices, request)
