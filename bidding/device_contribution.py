"""Each device's part of its owner's settled response in one event (the owner portal's table).

Pure (arrays in, dataclasses out). Inputs, per device of one owner over the event's intervals
(kW, devices x intervals): the baseline by the method the owner's settlement used, and the
metered mean power (NaN: no reading). As both settlement paths do
(:func:`bidding.settlement.fill_unmetered`), an interval without a reading counts as no
response: the device's load is taken to be its baseline there.

A device's response is ``sign * (baseline - metered)`` (``sign`` +1 peak shaving, -1 valley
filling) summed over the event intervals, in kWh. The devices' responses add up to the owner's
settled response up to:

- rounding: settlement converts each owner-interval to integer Wh, so the sum may differ by at
  most 1 Wh per event interval (:func:`tolerance_kwh`);
- the connection meter rule (:mod:`bidding.export_rule`): without ``export_counts``, export at
  the owner's site meter is credited back, or an unmetered site's load is floored at zero; this
  applies to the owner's connection, not to one device;
- a baseline method that is not a mean over days (the ``forecast`` method): the device
  baselines are then the owner's days' means and need not add up to the owner's baseline.

Whatever is left beyond the tolerance is reported as ``not_attributed_kwh`` (settled minus the
devices' sum), never spread over the devices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vpp.errors import ValidationError


@dataclass(frozen=True)
class DeviceContribution:
    """One device over the event intervals (kWh); ``share_pct``: its part of the sum of the
    devices' responses (None when that sum is zero)."""

    device_id: int
    baseline_kwh: float
    metered_kwh: float
    response_kwh: float
    share_pct: float | None
    unmetered_intervals: int  # event intervals without a reading (counted as no response)
    excluded: bool  # taken out of the event's plan after an owner override


@dataclass(frozen=True)
class OwnerContribution:
    devices: list[DeviceContribution]
    devices_response_kwh: float
    settled_response_kwh: float
    not_attributed_kwh: float  # settled - devices' sum, 0 within the tolerance
    tolerance_kwh: float


def tolerance_kwh(n_event_intervals: int) -> float:
    """Settlement's rounding: one integer Wh per owner and event interval, at most 0.5 Wh each
    for baseline and meter: 1 Wh per interval."""
    return 0.001 * n_event_intervals


def device_contributions(device_ids: Sequence[int], baseline_kw: np.ndarray,
                         metered_kw: np.ndarray, in_event: np.ndarray, *, sign: float,
                         interval_minutes: int, settled_response_kwh: float,
                         excluded: set[int]) -> OwnerContribution:
    """The table (module docstring). ``baseline_kw``/``metered_kw``: devices x intervals (kW);
    ``in_event``: bool per interval. ValidationError on shapes or a baseline with a gap in the
    event."""
    base = np.asarray(baseline_kw, dtype=float)
    meter = np.asarray(metered_kw, dtype=float)
    mask = np.asarray(in_event, dtype=bool)
    n = len(device_ids)
    if base.shape != meter.shape or base.shape != (n, mask.size):
        raise ValidationError(f"baseline {base.shape} and meter {meter.shape} must both be "
                              f"({n}, {mask.size})")
    if interval_minutes <= 0:
        raise ValidationError("interval_minutes must be positive")
    base, meter = base[:, mask], meter[:, mask]
    if not np.isfinite(base).all():
        raise ValidationError("a device has no baseline in some event interval")
    gap = ~np.isfinite(meter)
    meter = np.where(gap, base, meter)
    dt_h = interval_minutes / 60.0
    resp = sign * (base - meter).sum(axis=1) * dt_h
    total = float(resp.sum())
    devices = [DeviceContribution(
        device_id=int(d), baseline_kwh=round(float(base[i].sum() * dt_h), 3),
        metered_kwh=round(float(meter[i].sum() * dt_h), 3),
        response_kwh=round(float(resp[i]), 3),
        share_pct=round(100.0 * float(resp[i]) / total, 1) if abs(total) > 1e-9 else None,
        unmetered_intervals=int(gap[i].sum()), excluded=int(d) in excluded)
        for i, d in enumerate(device_ids)]
    tol = tolerance_kwh(int(mask.sum()))
    left = settled_response_kwh - total
    return OwnerContribution(devices, round(total, 3), settled_response_kwh,
                             round(left, 3) if abs(left) > tol else 0.0, tol)


def days_mean_baseline(day_rows: Sequence[np.ndarray], adjustment_kw: float | None) -> np.ndarray:
    """Device baselines (devices x intervals, kW) as the similar-days methods compute the
    owner's: the mean over the owner's baseline days (``day_rows``: one devices x intervals
    array per day, NaN: no reading), plus the owner's day-of ``adjustment_kw`` split over the
    devices in proportion to their mean baseline (equally when that is zero), so the rows add
    up to the owner's baseline."""
    if not day_rows:
        raise ValidationError("no baseline days")
    block = np.stack([np.asarray(r, dtype=float) for r in day_rows])
    finite = np.isfinite(block)
    count = finite.sum(axis=0)
    mean = np.where(count > 0, np.where(finite, block, 0.0).sum(axis=0) / np.maximum(count, 1),
                    np.nan)
    if adjustment_kw:
        level = np.nan_to_num(np.nanmean(mean, axis=1)) if mean.size else np.zeros(0)
        weights = level / level.sum() if level.sum() > 0 else np.full(len(mean), 1 / len(mean))
        mean = mean + weights[:, None] * float(adjustment_kw)
    return mean
