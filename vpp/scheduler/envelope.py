"""Flexibility envelope for the bidder: the largest response the fleet can sustain per interval.

For each device and interval, the reduction below its baseline it could hold for
``sustain_intervals`` in a row, from its limits and current state; summed over the fleet.
Uncertainty comes in as baseline quantiles (``quantile_levels`` x devices x intervals, kW): at a
confidence ``c`` every load is taken at its ``1 - c`` baseline quantile (a lower baseline leaves
less to shed). Summing per-device quantiles assumes the devices' errors move together, which is
conservative for a portfolio.

Per kind: buildings / industrial loads: ``min(max shed, baseline - min setpoint, duration budget
spread over the sustain period)``; batteries: baseline plus discharge, limited by the energy above
the minimum SoC now; EV chargers: the charging that can be deferred (slack of each session spread
over the sustain period, at most the baseline) plus V2G discharge where allowed; V2G chargers
(:func:`vpp.scheduler.v2g.reduction_kw`) charging held back and discharge, only as far as the car
still leaves with its driver's ask; a charger
drawing power for a car nobody declared (no session) can hold back its baseline, as the
planner plans it (:func:`vpp.scheduler.ev._unknown_car`).

Valley filling (``direction_sign = -1``) takes the rise above the baseline instead, each load
at its ``confidence`` baseline quantile (a higher baseline leaves less room): batteries charge
up to their maximum setpoint, limited by the room below the maximum SoC now, from their baseline
as it is (a battery discharging in its baseline can stop: that rise takes no room); EV chargers draw
their sessions' energy in the window (at most each session's need spread over the sustain
period); buildings and industrial loads rise only to make up energy they owe (``debt_kwh``:
their kinds declare no other rise), up to their maximum setpoint; PV inverters curtail their
expected output (their negative baseline at that quantile: less sun, less to curtail,
:func:`vpp.scheduler.pv.raise_kw`). A PV inverter cannot reduce a load: nothing for peak
shaving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vpp.device_kinds import (
    BatteryParams,
    CommercialBuildingParams,
    DeviceKind,
    EvChargerParams,
    IndustrialLoadParams,
    PvInverterParams,
    V2gChargerParams,
)
from vpp.errors import ValidationError
from vpp.scheduler import pv, v2g
from vpp.scheduler.inputs import FleetDevice


@dataclass(frozen=True)
class Envelope:
    reduction_kw: np.ndarray  # fleet, per interval
    by_kind_kw: dict[str, np.ndarray]
    confidence: float


def baseline_at(quantiles_kw: np.ndarray, levels: Sequence[float], level: float) -> np.ndarray:
    """Interpolate a (Q, N, T) stack of baseline quantiles at ``level`` (clamped to the range)."""
    lv = np.asarray(levels, dtype=float)
    if lv.ndim != 1 or lv.size != quantiles_kw.shape[0] or (np.diff(lv) <= 0).any():
        raise ValidationError("quantile_levels must be increasing, one per quantile array")
    level = float(np.clip(level, lv[0], lv[-1]))
    k = int(np.clip(np.searchsorted(lv, level) - 1, 0, lv.size - 2)) if lv.size > 1 else 0
    if lv.size == 1:
        return quantiles_kw[0]
    w = (level - lv[k]) / (lv[k + 1] - lv[k])
    return (1 - w) * quantiles_kw[k] + w * quantiles_kw[k + 1]


def raise_kw(d: FleetDevice, base_kw: np.ndarray, hold_h: float) -> np.ndarray:
    """How far ``d`` can hold its power above ``base_kw`` (kW per interval) for ``hold_h``
    hours: the valley-filling side of the envelope (module docstring)."""
    p = d.params
    n = base_kw.shape[0]
    if isinstance(p, V2gChargerParams):
        return v2g.raise_kw(d, base_kw, hold_h)
    if isinstance(p, PvInverterParams):
        return pv.raise_kw(d, base_kw)
    if isinstance(p, BatteryParams):
        soc = p.soc_max_pct if d.soc_pct is None else d.soc_pct  # unknown: no room
        room_kwh = max(p.soc_max_pct - soc, 0.0) / 100 * p.capacity_kwh
        top = min(max(d.max_setpoint_kw, 0.0), room_kwh / p.charge_efficiency / hold_h)
        return np.maximum(top - base_kw, 0.0)
    if isinstance(p, EvChargerParams):
        per = min(p.max_charge_kw_per_connector, max(d.max_setpoint_kw, 0.0))
        t = np.arange(n)
        pull = np.zeros(n)
        for s in d.sessions:
            conn = (t >= s.arrival) & (t < s.departure)
            pull += np.where(conn, min(per, s.energy_kwh / hold_h), 0.0)
        return np.maximum(np.minimum(pull, max(d.max_setpoint_kw, 0.0)) - base_kw, 0.0)
    fraction = p.rebound_fraction if isinstance(p, CommercialBuildingParams) else \
        p.makeup_fraction  # type: ignore[union-attr]
    if fraction <= 0:
        return np.zeros(n)
    return np.minimum(np.maximum(d.max_setpoint_kw - base_kw, 0.0), d.debt_kwh / hold_h)


def flexibility_envelope(devices: Sequence[FleetDevice], baseline_quantiles_kw: np.ndarray,
                         quantile_levels: Sequence[float], confidence: float = 0.9, *,
                         sustain_intervals: int = 4, interval_minutes: int,
                         direction_sign: float = 1.0) -> Envelope:
    """Largest sustainable fleet response per interval at ``confidence`` (kW): the reduction
    (``direction_sign`` +1, peak shaving), or the rise above the baseline (-1, valley
    filling; :func:`raise_kw`)."""
    bq = np.asarray(baseline_quantiles_kw, dtype=float)
    if bq.ndim != 3 or bq.shape[1] != len(devices):
        raise ValidationError(
            f"baseline_quantiles_kw must be (quantiles, {len(devices)}, intervals), got {bq.shape}"
        )
    if not np.isfinite(bq).all():
        raise ValidationError("baseline_quantiles_kw has NaN/inf")
    if not 0 < confidence < 1:
        raise ValidationError(f"confidence must be in (0, 1), got {confidence}")
    if sustain_intervals < 1:
        raise ValidationError("sustain_intervals must be >= 1")
    valley = direction_sign < 0
    # a lower baseline leaves less to shed, a higher one less room to rise; a battery's rise
    # starts from its baseline as it is, discharge included (stopping it takes no room)
    raw = baseline_at(bq, quantile_levels, confidence if valley else 1.0 - confidence)
    base = np.maximum(raw, 0.0)
    n = bq.shape[2]
    dt = interval_minutes / 60.0
    hold_h = sustain_intervals * dt
    t = np.arange(n)
    out = {k.value: np.zeros(n) for k in DeviceKind}
    for i, d in enumerate(devices):
        b = base[i]
        p = d.params
        scale = d.flex_scale if d.available else 0.0
        if valley:
            signed = isinstance(p, BatteryParams | PvInverterParams)  # baselines below 0 count
            cap = raise_kw(d, raw[i] if signed else b, hold_h)
        elif isinstance(p, PvInverterParams):  # it cannot raise its output
            cap = np.zeros(n)
        elif isinstance(p, V2gChargerParams):  # only what leaves the car with its ask
            cap = v2g.reduction_kw(d, b, hold_h, dt)
        elif isinstance(p, BatteryParams):
            avail_kwh = max((d.soc_pct or 0.0) - p.soc_min_pct, 0.0) / 100 * p.capacity_kwh \
                * p.discharge_efficiency
            dis = min(max(-d.min_setpoint_kw, 0.0), avail_kwh / hold_h)
            cap = b + dis
        elif isinstance(p, EvChargerParams):
            per = min(p.max_charge_kw_per_connector, d.max_setpoint_kw)
            defer = np.zeros(n)
            for s in d.sessions:
                conn = (t >= s.arrival) & (t < s.departure)
                slack_kwh = per * conn.sum() * dt - s.energy_kwh
                defer += np.where(conn, max(slack_kwh, 0.0) / hold_h, 0.0)
                if p.v2g:
                    defer += np.where(conn, min(p.max_discharge_kw_per_connector,
                                                -d.min_setpoint_kw), 0.0)
            if not d.sessions:  # a car nobody declared: what it draws can be held back
                defer = b.copy()
            cap = np.minimum(defer, b + (np.inf if p.v2g else 0.0))
        else:
            if isinstance(p, CommercialBuildingParams):
                mx, minutes = p.max_shed_kw, p.max_shed_minutes
            else:
                assert isinstance(p, IndustrialLoadParams)
                mx, minutes = p.max_curtail_kw, p.max_curtail_minutes
            budget_kw = max(mx * minutes / 60.0 - d.shed_used_kwh, 0.0) / hold_h
            cap = np.minimum(np.minimum(mx, budget_kw), np.maximum(b - d.min_setpoint_kw, 0.0))
        out[d.kind.value] += np.maximum(cap, 0.0) * scale
    total = sum(out.values())
    return Envelope(reduction_kw=np.asarray(total), by_kind_kw=out, confidence=confidence)
