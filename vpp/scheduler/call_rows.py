"""What the call asks of the fleet's response, interval by interval: a floor and a ceiling.

The fleet response ``r_t`` (kW) is ``sign`` x (fleet baseline - fleet power), ``sign`` the
call's ``direction_sign``: +1 peak shaving (the reduction), -1 valley filling (the fleet's
rise above its baseline). It is held in a band, the same in both directions:

* in the call window: ``target_t <= r_t <= ceiling_t`` (``ceiling`` when the call has one);
  below the target costs ``shortfall_yuan_per_kwh``, above the ceiling
  ``over_delivery_yuan_per_kwh``;
* after the window (the rebound / make-up / recharge tail), with ``rebound_max_pct`` set:
  ``-rebound_max_pct/100 * fleet_baseline_t <= r_t <= 0``: the fleet is back, its power
  between its baseline and baseline x (1 + pct/100) (valley filling: x (1 - pct/100), the
  batteries giving back what they charged; a fleet that exports at baseline, PV's, takes the
  share of its baseline's size); past that costs ``rebound_yuan_per_kwh``, the
  other side (a response past the call, which nobody pays for and the owner did not agree
  to) ``over_delivery_yuan_per_kwh``;
* elsewhere: free.

All soft: the monolithic QP (:mod:`vpp.scheduler.model`, its fleet row's bounds by
:mod:`vpp.scheduler.fleet_rows`) carries one slack below the floor and one above the ceiling
per interval, the partition coordinator (:mod:`vpp.scheduler.partition`)
the same piecewise-linear cost in closed form (:func:`prox_total`). The limit is on the fleet,
not per device: the grid sees the fleet's (the feeder's) rebound, and a per-device limit would
be infeasible for a building whose rebound is large next to its own baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vpp.scheduler.inputs import EventCall, Weights


@dataclass(frozen=True)
class CallBounds:
    """Per interval (kW; NaN = no bound) and the cost (yuan/kWh) of each side's violation."""

    floor_kw: np.ndarray
    ceiling_kw: np.ndarray
    floor_cost_yuan_per_kwh: np.ndarray
    ceiling_cost_yuan_per_kwh: float
    in_call: np.ndarray  # bool
    #: +1 peak shaving, -1 valley filling: the response is ``sign`` x the fleet reduction
    sign: float = 1.0

    def response(self, reduction_kw: np.ndarray) -> np.ndarray:
        """The fleet response (kW) of a fleet reduction (baseline - power, kW)."""
        return self.sign * np.asarray(reduction_kw, dtype=float)

    @property
    def has_floor(self) -> np.ndarray:
        return ~np.isnan(self.floor_kw)

    @property
    def has_ceiling(self) -> np.ndarray:
        return ~np.isnan(self.ceiling_kw)


def call_bounds(call: EventCall | None, n: int, fleet_baseline_kw: np.ndarray,
                weights: Weights) -> CallBounds:
    """The band of the fleet response over a horizon of ``n`` intervals (module docstring)."""
    nan = np.full(n, np.nan)
    if call is None:
        return CallBounds(nan, nan.copy(), np.zeros(n), weights.over_delivery_yuan_per_kwh,
                          np.zeros(n, dtype=bool))
    tgt = call.target_kw(n)
    in_call = ~np.isnan(tgt)
    floor = tgt.copy()
    cost = np.where(in_call, weights.shortfall_yuan_per_kwh, 0.0)
    ceiling = call.ceiling_over(n)
    if call.rebound_max_pct is not None:
        tail = np.arange(n) >= call.end
        base = np.asarray(fleet_baseline_kw, dtype=float)
        # a share of the fleet's baseline load, or of its export where PV makes it export
        # (a negative baseline would invert the band)
        floor = np.where(tail, -call.rebound_max_pct / 100.0 * np.abs(base), floor)
        ceiling = np.where(tail, 0.0, ceiling)
        cost = np.where(tail, weights.rebound_yuan_per_kwh, cost)
    return CallBounds(floor, ceiling, cost, weights.over_delivery_yuan_per_kwh, in_call,
                      float(call.direction_sign))


def shortfall_kw(target_kw: np.ndarray, reduction_kw: np.ndarray, sign: float) -> np.ndarray:
    """Per interval, how far the response (``sign`` x ``reduction_kw``) falls below the call's
    ``target_kw`` (NaN outside the call: 0 there), kW."""
    tgt = np.asarray(target_kw, dtype=float)
    resp = sign * np.asarray(reduction_kw, dtype=float)
    return np.where(np.isnan(tgt), 0.0, np.maximum(np.nan_to_num(tgt) - resp, 0.0))


def prox_total(total_kw: np.ndarray, bounds: CallBounds, step: float) -> np.ndarray:
    """argmin_W  sum_t c_t (floor_t - W_t)+ + c' (W_t - ceiling_t)+ + |W - total|^2 / (2 step)

    (kW; ``step`` in kW per yuan/kWh): the coordinator's fleet update, per interval in closed
    form (soft thresholding towards the band). ``total_kw`` and the result are fleet
    reductions; the band is on the response (``bounds.sign`` x the reduction)."""
    w = bounds.response(total_kw).copy()
    lo, hi = bounds.has_floor, bounds.has_ceiling
    f = np.nan_to_num(bounds.floor_kw)
    c = np.nan_to_num(bounds.ceiling_kw)
    below = lo & (w < f)
    w = np.where(below, np.minimum(f, w + step * bounds.floor_cost_yuan_per_kwh), w)
    above = hi & (w > c)
    w = np.where(above, np.maximum(c, w - step * bounds.ceiling_cost_yuan_per_kwh), w)
    return bounds.sign * w


def violation_kw(reduction_kw: np.ndarray, bounds: CallBounds) -> tuple[np.ndarray, np.ndarray]:
    """(kW below the floor, kW above the ceiling) per interval of a plan's fleet reduction
    (its response against the band)."""
    r = bounds.response(reduction_kw)
    below = np.where(bounds.has_floor, np.maximum(np.nan_to_num(bounds.floor_kw) - r, 0.0), 0.0)
    above = np.where(bounds.has_ceiling,
                     np.maximum(r - np.nan_to_num(bounds.ceiling_kw), 0.0), 0.0)
    return below, above


def band_warnings(reduction_kw: np.ndarray, bounds: CallBounds, tol_kw: float) -> list[str]:
    """Plain-language warnings where a plan leaves the band by more than ``tol_kw`` (the
    shortfall in the call has its own warning)."""
    below, above = violation_kw(reduction_kw, bounds)
    out = []
    rebound = np.where(bounds.in_call, 0.0, below)
    if rebound.max(initial=0.0) > tol_kw:
        t = int(np.argmax(rebound))
        out.append(f"rebound after the call exceeds its limit by up to {rebound[t]:.1f} kW "
                   f"(interval {t})")
    if above.max(initial=0.0) > tol_kw:
        t = int(np.argmax(above))
        what = "reduction" if bounds.sign > 0 else "rise above the baseline"
        out.append(f"{what} exceeds the call's ceiling by up to {above[t]:.1f} kW "
                   f"(interval {t})")
    return out


#: A slack's marginal cost grows by SLACK_CURVATURE_YUAN_PER_KWH per SLACK_SPREAD of the
#: fleet's rating: about a tariff spread per 1% (an excess is spread to within ~1% of the
#: rating), small next to the gaps between the slacks' prices (so the call still comes first
#: while an excess stays below ~90% of the rating).
SLACK_CURVATURE_YUAN_PER_KWH = 1.0
SLACK_SPREAD = 0.01


def slack_curvature(kappa: float, n_devices: int) -> float:
    """The QP's diagonal ``P`` entry of each slack (per unit ``kappa * S``, objective over
    ``dt * S / N``): its cost grows quadratically, so an excess the plan cannot avoid (a
    rebound past the limit) is spread over the tail instead of put all in the interval where
    energy is cheapest."""
    return SLACK_CURVATURE_YUAN_PER_KWH * kappa**2 * n_devices / SLACK_SPREAD
