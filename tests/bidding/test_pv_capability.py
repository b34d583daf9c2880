"""A PV inverter in the offer's no-history rules (bidding.capability, bidding.fallback): it
cannot raise its output, so it offers nothing for peak shaving; its curtailment for valley
filling depends on the sky, which these rules do not know, so nothing there either (the
planner curtails it where a call needs it: vpp.scheduler.pv)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bidding.capability import device_capability_kw
from bidding.fallback import held_kw


@dataclass
class Roof:
    id: int | None = 1
    owner_id: int = 1
    kind: str = "pv_inverter"
    params: dict[str, Any] = field(default_factory=lambda: {"dc_capacity_kwp": 110.0})
    rated_power_kw: float = 100.0
    min_setpoint_kw: float = -100.0
    max_setpoint_kw: float = 0.0


def test_pv_offers_nothing_without_history_in_either_direction() -> None:
    assert device_capability_kw(Roof(), 2.0) == 0.0
    assert held_kw(Roof(), 2.0, "summer") == 0.0
    assert held_kw(Roof(), 2.0, "summer", direction="valley_filling") == 0.0
