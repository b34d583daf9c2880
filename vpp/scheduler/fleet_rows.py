"""The bounds and slack costs of the QP's fleet rows, from the call's band, in either direction.

The fleet row of interval ``t`` (:mod:`vpp.scheduler.model`) holds the fleet reduction (baseline
minus power) per unit of the fleet's rating ``S``, relaxed by two slacks per unit
``kappa * S``:

    v_t + kappa (sigma_t - omega_t)  in  [lo_t, hi_t],   v_t = (reduction_t / S) - red0_t

(``red0_t``: the reduction of the blocks' constant power). The band of
:mod:`vpp.scheduler.call_rows` is on the response ``sign * reduction``:

* peak shaving (``sign = +1``): ``lo = floor - red0``, ``hi = ceiling - red0``; ``sigma``
  (which lifts the row) is the shortfall below the floor, ``omega`` the excess over the
  ceiling;
* valley filling (``sign = -1``): the response is ``-reduction``, so ``lo = -ceiling - red0``
  and ``hi = -floor - red0``; ``omega`` (which lowers the row, i.e. raises the response's
  shortfall room) is the shortfall, ``sigma`` the excess over the ceiling.

Only bounds and linear costs change with the direction: the matrix is the same, so one built
QP plans calls of both directions and re-solves warm between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vpp.scheduler.block import INF
from vpp.scheduler.call_rows import CallBounds


@dataclass(frozen=True)
class FleetRowVectors:
    """Per interval: the fleet row's bounds, and for each slack its linear cost (per unit of
    the QP's objective) and upper bound (its lower bound is 0)."""

    row_lo: np.ndarray
    row_hi: np.ndarray
    sigma_q: np.ndarray
    sigma_hi: np.ndarray
    omega_q: np.ndarray
    omega_hi: np.ndarray


def fleet_row_vectors(band: CallBounds, red0: np.ndarray, total_rated_kw: float,
                      kappa: float, n_devices: int) -> FleetRowVectors:
    """The fleet rows' data for ``band`` (module docstring); ``red0`` per unit of ``S``."""
    S, N = total_rated_kw, n_devices
    floor0 = np.nan_to_num(band.floor_kw) / S
    ceil0 = np.nan_to_num(band.ceiling_kw) / S
    short_q = np.broadcast_to(band.floor_cost_yuan_per_kwh * N * kappa, floor0.shape)
    over_q = np.full(floor0.shape, band.ceiling_cost_yuan_per_kwh * N * kappa)
    # below the floor, unbounded: a fleet that must draw above its baseline in the call (a car
    # that must charge, with nothing to offset it) gets a plan short by more than the target,
    # at the shortfall price, instead of an infeasible problem
    short_hi = np.where(band.in_call | band.has_floor, INF, 0.0)
    over_hi = np.where(band.has_ceiling, INF, 0.0)
    if band.sign > 0:
        return FleetRowVectors(
            row_lo=np.where(band.has_floor, floor0 - red0, -INF),
            row_hi=np.where(band.has_ceiling, ceil0 - red0, INF),
            sigma_q=short_q, sigma_hi=short_hi, omega_q=over_q, omega_hi=over_hi)
    return FleetRowVectors(
        row_lo=np.where(band.has_ceiling, -ceil0 - red0, -INF),
        row_hi=np.where(band.has_floor, -floor0 - red0, INF),
        sigma_q=over_q, sigma_hi=over_hi, omega_q=short_q, omega_hi=short_hi)
