"""Flexibility a device offers now (pure): how far consumption can go down and up, in kW."""

from __future__ import annotations

from typing import Any

from vpp.device_kinds import DeviceKind


def flexibility(
    kind: DeviceKind,
    power_kw: float,
    min_setpoint_kw: float,
    max_setpoint_kw: float,
    soc_pct: float | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[float, float]:
    """Return (flex_down_kw, flex_up_kw), both >= 0.

    Loads can go down to ``max(min_setpoint_kw, 0)`` (capped by ``max_shed_kw`` /
    ``max_curtail_kw`` when declared) and up to ``max_setpoint_kw``. A battery can discharge
    down to ``min_setpoint_kw`` unless at its minimum SoC, and charge up to ``max_setpoint_kw``
    unless full.
    """
    params = params or {}
    if kind is DeviceKind.BATTERY:
        soc_min = float(params.get("soc_min_pct", 10.0))
        soc_max = float(params.get("soc_max_pct", 95.0))
        low = min_setpoint_kw if soc_pct is None or soc_pct > soc_min else 0.0
        high = max_setpoint_kw if soc_pct is None or soc_pct < soc_max else 0.0
        return max(0.0, power_kw - low), max(0.0, high - power_kw)
    down = max(0.0, power_kw - max(min_setpoint_kw, 0.0))
    cap = float(params.get("max_shed_kw", 0.0) or params.get("max_curtail_kw", 0.0) or 0.0)
    if cap > 0:
        down = min(down, cap)
    return down, max(0.0, max_setpoint_kw - power_kw)
