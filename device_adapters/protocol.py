"""The one adapter protocol every device kind implements (cross-team interface 1).

Powers in kW with the project sign convention (``> 0`` consumption, ``< 0`` export);
timestamps aware. Modbus-backed adapters (:mod:`device_adapters.adapter`) and in-process
simulated devices (:mod:`sim.inprocess`) both implement :class:`DeviceAdapter`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from vpp.device_kinds import DeviceKind


@dataclass
class DeviceState:
    """What a device reports now. ``flex_down_kw``: how much it can reduce consumption now;
    ``flex_up_kw``: how much it can increase it (both >= 0). ``site_import_kw``: the site
    meter the device reads (a hybrid inverter's grid meter), kW at the site's grid connection,
    + import, - export; None when the device has no site meter. ``measured_at``: when the
    power was measured, where that is earlier than ``ts`` (a pushed meter value read by a later
    poll, on the same clock as ``ts``); None: measured at ``ts``."""

    device_id: int
    ts: datetime
    power_kw: float
    energy_kwh: float | None
    soc_pct: float | None
    indoor_temp_c: float | None
    available: bool
    flex_down_kw: float
    flex_up_kw: float
    detail: dict[str, Any] = field(default_factory=dict)
    site_import_kw: float | None = None
    measured_at: datetime | None = None


@dataclass
class SetpointResult:
    """Outcome of one setpoint write: what was asked, what was written after clamping to the
    declared limits, what the device reports back, and whether that matches."""

    device_id: int
    requested_kw: float
    written_kw: float
    clamped: bool
    readback_kw: float | None
    verified: bool
    error: str | None


@runtime_checkable
class DeviceAdapter(Protocol):
    """Read state, apply a setpoint (clamp, write, read back), release, keep the watchdog fed."""

    device_id: int
    kind: DeviceKind
    min_setpoint_kw: float
    max_setpoint_kw: float

    async def read_state(self) -> DeviceState: ...

    async def apply_setpoint(self, setpoint_kw: float) -> SetpointResult: ...

    async def release(self) -> None: ...

    async def heartbeat(self) -> None: ...


def clamp_setpoint(setpoint_kw: float, lo_kw: float, hi_kw: float) -> tuple[float, bool]:
    """Clamp to ``[lo_kw, hi_kw]``; returns (value, clamped). NaN is refused with ValueError."""
    if setpoint_kw != setpoint_kw:  # NaN
        raise ValueError("setpoint is NaN")
    value = min(max(setpoint_kw, lo_kw), hi_kw)
    return value, value != setpoint_kw
