"""What a plan asks of the fleet for a bid: one rule for the daemon's planner and the season
simulator.

The plan delivers the declared kW in every interval of the call (peak shaving: below the
fleet's baseline; valley filling: above it) and at most
``[scheduler] target_margin_pct`` (5%) more where that saves energy cost, never past the
programme's band ceiling (over-delivery there is unpaid comfort and rebound); over the tail
after the call the fleet's power stays within ``[scheduler] rebound_max_pct`` of its baseline.
Until 2026-12-07 the simulator aimed 10% above the award with no ceiling and no rebound cap.
"""

from __future__ import annotations

from vpp.scheduler.inputs import EventCall


def call_headroom(target_margin_pct: float, band_upper_pct: float) -> float:
    """The ceiling of the plan's reduction as a multiple of the declared kW (>= 1)."""
    return min(1.0 + target_margin_pct / 100.0, max(band_upper_pct / 100.0, 1.0))


def plan_call(declared_kw: float, start: int, end: int, *, target_margin_pct: float,
              band_upper_pct: float, rebound_max_pct: float | None,
              origin: int | None = None, direction_sign: float = 1.0) -> EventCall:
    """The :class:`EventCall` over horizon intervals ``[start, end)`` for a bid of
    ``declared_kw`` (module docstring); ``origin``: the call's first interval when a re-plan
    starts it later (``start``); ``direction_sign``: +1 peak shaving, -1 valley filling (the
    same rule on the response: the declared rise, at most the margin more, the band's ceiling,
    the rebound cap on the tail)."""
    return EventCall(start=start, end=end, reduction_kw=declared_kw,
                     ceiling_kw=declared_kw * call_headroom(target_margin_pct, band_upper_pct),
                     rebound_max_pct=rebound_max_pct, origin=origin,
                     direction_sign=direction_sign)
