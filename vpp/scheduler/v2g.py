"""V2G charger model: the car is a battery (:mod:`vpp.scheduler.battery`) that is connected only
while it is there and leaves with the energy its driver asked for.

Each ``v2g_charger`` is planned as a battery block whose battery is the car's
(:class:`~vpp.device_kinds.V2gChargerParams`: capacity, state-of-charge range, efficiencies;
state of charge ``e_t`` per unit of the car's capacity, charge ``c_t`` and discharge ``d_t``
per unit of the charger's rating ``R``, power ``R (c - d)``), with these bounds:

- charge and discharge are 0 outside the session ``[arrival, departure)`` (and before now);
  inside, ``c <= min(max_charge_kw, max setpoint) / R`` and
  ``d <= min(max_discharge_kw, -min setpoint) / R`` (``flex_scale`` derates the discharge only:
  the car's charging is the driver's, not flexibility), and at most ``discharge_cap_kw`` per
  interval where the device has one (the export rule, as a battery's);
- the battery's terminal row ``e_{n-1} >= ask`` is the departure constraint: after the car
  leaves nothing charges or discharges, so its state of charge at departure is the one at the
  horizon's end. ``ask`` is the driver's (``terminal_soc_pct``, else the kind's
  ``departure_soc_pct``); a departure past the horizon asks it by the horizon's end. It is a
  bound of the QP, never a penalty: no price or call is traded against it. An ask the car
  cannot reach while connected is refused (``ValidationError``) as an EV session's is;
- ``soc_min_pct <= e_t <= soc_max_pct`` (V2G never drains the car below the floor).

Costs: the energy price on the power (from the assembler), the car battery's wear
``wear_yuan_per_kwh`` per kWh discharged (at the charger, linear), the battery model's small
quadratic that spreads the burden; charging carries no wear cost (the driver charges anyway).
A charger with no car, or offline, is pinned at its baseline.

:func:`reduction_kw` / :func:`raise_kw` are the kind's part of the offer envelope
(:mod:`vpp.scheduler.envelope`): only what still leaves the car with its ask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from vpp.device_kinds import BatteryParams, DeviceKind, V2gChargerParams
from vpp.errors import ValidationError
from vpp.scheduler import battery
from vpp.scheduler.block import Block, Context, Vectors, attr, live_mask
from vpp.scheduler.inputs import EvSession, FleetDevice, Weights

BLOCK_NAME = "v2g_charger"


def _params(d: FleetDevice) -> V2gChargerParams:
    p = d.params
    if not isinstance(p, V2gChargerParams):
        raise ValidationError(f"device {d.device_id}: not a V2G charger ({type(p).__name__})")
    return p


def ask_pct(d: FleetDevice) -> float:
    """The state of charge (%) the driver asked for at departure."""
    p = _params(d)
    return p.departure_soc_pct if d.terminal_soc_pct is None else float(d.terminal_soc_pct)


def charge_kw(d: FleetDevice) -> float:
    """The most the charger can charge the car at (kW)."""
    return min(_params(d).max_charge_kw, max(d.max_setpoint_kw, 0.0))


def discharge_kw(d: FleetDevice) -> float:
    """The most the charger can discharge the car at (kW)."""
    return min(_params(d).max_discharge_kw, max(-d.min_setpoint_kw, 0.0))


def as_battery(d: FleetDevice) -> FleetDevice:
    """The car behind ``d`` as the battery model sees it (its departure ask as the terminal
    state of charge); a charger with no car is an unavailable battery (pinned at baseline)."""
    p = _params(d)
    car = bool(d.sessions) and d.soc_pct is not None
    bp = BatteryParams(capacity_kwh=p.car_battery_kwh, soc_min_pct=p.soc_min_pct,
                       soc_max_pct=p.soc_max_pct, charge_efficiency=p.charge_efficiency,
                       discharge_efficiency=p.discharge_efficiency)
    soc = d.soc_pct if car and d.soc_pct is not None else p.soc_min_pct
    return replace(d, kind=DeviceKind.BATTERY, params=bp, soc_pct=soc, discharge_cap_kw=(),
                   terminal_soc_pct=ask_pct(d) if car else None, sessions=(),
                   min_setpoint_kw=-discharge_kw(d), max_setpoint_kw=charge_kw(d),
                   available=d.available and car, flex_scale=1.0)


def connected(d: FleetDevice, n: int, now: int = 0) -> np.ndarray:
    """Intervals (bool, ``n``) in which ``d``'s car is connected and may still be planned."""
    t = np.arange(n)
    out = np.zeros(n, dtype=bool)
    for s in d.sessions:
        out |= (t >= s.arrival) & (t < s.departure)
    return out & live_mask(n, now)


def build(members: np.ndarray, devices: Sequence[FleetDevice], n: int, dt_h: float,
          w: Weights) -> Block:
    """Block of ``devices`` (all V2G chargers): the battery model's block of their cars, with
    the session's bounds and the wear cost applied per solve (module docstring)."""
    inner = battery.build(members, [as_battery(d) for d in devices], n, dt_h, w)

    def vectors(ctx: Context) -> Vectors:
        return _vectors(ctx, inner, dt_h)

    return replace(inner, name=BLOCK_NAME, vectors=vectors)


def _vectors(ctx: Context, inner: Block, dt_h: float) -> Vectors:
    n, devs = ctx.n, ctx.devices
    cars = [as_battery(d) for d in devs]
    _check_reachable(devs, cars, n, ctx.now, dt_h)
    v = inner.vectors(replace(ctx, devices=cars))
    rated = attr(devs, "rated_power_kw")
    for i, (d, car) in enumerate(zip(devs, cars, strict=True)):
        if not car.available:
            continue
        window = connected(d, n, ctx.now)
        v.lo[i, n : 3 * n] = 0.0
        v.hi[i, n : 2 * n] = np.where(window, charge_kw(d) / rated[i], 0.0)
        out_kw = discharge_kw(d) * d.flex_scale
        if d.discharge_cap_kw:  # e.g. the host site's load where export does not count
            out_kw = np.minimum(out_kw, np.asarray(d.discharge_cap_kw, dtype=float))
        v.hi[i, 2 * n : 3 * n] = np.where(window, out_kw / rated[i], 0.0)
    v.q[:, :n] = 0.0
    v.q[:, n : 2 * n] = attr(devs, "wear_yuan_per_kwh")[:, None]
    return v


def _check_reachable(devs: Sequence[FleetDevice], cars: Sequence[FleetDevice], n: int, now: int,
                     dt_h: float) -> None:
    """Refuse an ask the car cannot reach charging at full power while connected."""
    for d, car in zip(devs, cars, strict=True):
        if not car.available or car.soc_pct is None:
            continue
        p = _params(d)
        hours = float(connected(d, n, now).sum()) * dt_h
        reach = car.soc_pct + 100.0 * p.charge_efficiency * charge_kw(d) * hours \
            / p.car_battery_kwh
        if ask_pct(d) > min(reach, p.soc_max_pct) + 1e-6:
            raise ValidationError(
                f"device {d.device_id} (v2g_charger): the driver asks {ask_pct(d):.1f}% at "
                f"departure but the car can reach at most {min(reach, p.soc_max_pct):.1f}% "
                f"from {car.soc_pct:.1f}% while connected")


def hold_departure(devices: Sequence[FleetDevice], power_kw: np.ndarray, soc_pct: np.ndarray,
                   now: int, dt_h: float) -> None:
    """Make the plan's V2G rows (in place: power kW and the car's state of charge %, devices x
    intervals) hold the car's range and its departure ask exactly, as the car's own physics
    would follow them: the solver meets its bounds only to its tolerance (a call it cannot
    meet has left a car 1-2% short of its ask), and the ask is never traded. From ``now``,
    re-simulated with the car's efficiencies: first each interval's power is kept within the
    charger's limits and the car's state-of-charge range, then any shortfall at departure is made up from the last
    connected interval back (less discharge first, then more charge, within the limits)."""
    n = power_kw.shape[1]
    for i, d in enumerate(devices):
        if d.kind is not DeviceKind.V2G_CHARGER or not d.available or not d.sessions \
                or d.soc_pct is None:
            continue
        p = _params(d)
        window = connected(d, n, now)
        row = np.where(window, power_kw[i], 0.0)
        row[:now] = power_kw[i, :now]
        cap, eta_c, eta_d = p.car_battery_kwh, p.charge_efficiency, p.discharge_efficiency
        lo_kwh, hi_kwh = p.soc_min_pct / 100 * cap, p.soc_max_pct / 100 * cap
        e = d.soc_pct / 100 * cap
        for t in range(now, n):  # within the limits and the car's range (where it stops)
            row[t] = min(max(row[t], -discharge_kw(d)), charge_kw(d))
            if row[t] > 0:
                row[t] = min(row[t], max(hi_kwh - e, 0.0) / (eta_c * dt_h))
            elif row[t] < 0:
                row[t] = max(row[t], -max(e - lo_kwh, 0.0) * eta_d / dt_h)
            e += _gain_kwh(row[t], eta_c, eta_d, dt_h)
        short = ask_pct(d) / 100 * cap - e
        for t in np.flatnonzero(window)[::-1]:
            if short <= 1e-9:
                break
            if row[t] < 0:
                up = min(-row[t], short * eta_d / dt_h)
                row[t] += up
                short -= up * dt_h / eta_d
            up = min(max(charge_kw(d) - max(row[t], 0.0), 0.0), max(short, 0.0) / (eta_c * dt_h))
            row[t] += up
            short -= up * dt_h * eta_c
        power_kw[i, now:] = row[now:]
        gains = np.array([_gain_kwh(v, eta_c, eta_d, dt_h) for v in row[now:]])
        soc_pct[i, now:] = (d.soc_pct + 100.0 * np.cumsum(gains) / cap)


def _gain_kwh(power_kw: float, eta_c: float, eta_d: float, dt_h: float) -> float:
    """The car battery's energy change (kWh) at charger power ``power_kw`` for ``dt_h``."""
    return power_kw * dt_h * eta_c if power_kw >= 0 else power_kw * dt_h / eta_d


def with_car(d: FleetDevice, car_soc_pct: float | None, sessions: Sequence[EvSession], n: int,
             interval_minutes: int) -> FleetDevice:
    """The charger ``d`` with the car the edge reports (the planner's view,
    :func:`vpp.scheduler.device_view.scheduler_device`): the car's state of charge read by the
    charger (None or 0: no car, as the Quasar reads 0) and the owner's declared departure and
    energy need (``sessions[0]``, :func:`~vpp.scheduler.device_view.ev_session_from_preferences`):
    the ask is the state of charge now plus that need, within the car's range and lowered to
    what the car can reach while connected. No car or no declared departure: ``d`` unchanged
    (pinned at its baseline: nothing is known of when the car leaves)."""
    if car_soc_pct is None or car_soc_pct <= 0 or not sessions:
        return d
    p = _params(d)
    s = sessions[0]
    soc = min(float(car_soc_pct), 100.0)
    ask = min(max(soc + 100.0 * s.energy_kwh / p.car_battery_kwh, p.soc_min_pct), p.soc_max_pct)
    car = replace(d, soc_pct=soc, terminal_soc_pct=ask,
                  sessions=(EvSession(s.arrival, s.departure, 0.0),))
    return replace(car, terminal_soc_pct=reachable_ask_pct(car, n, 0, interval_minutes / 60.0))


def reachable_ask_pct(d: FleetDevice, n: int, now: int, dt_h: float) -> float:
    """The driver's ask, lowered to what the car can reach while connected (the planner's
    view of a car that came late or asks too much: :mod:`vpp.scheduler.device_view`)."""
    p = _params(d)
    if d.soc_pct is None:
        return ask_pct(d)
    hours = float(connected(d, n, now).sum()) * dt_h
    reach = d.soc_pct + 100.0 * p.charge_efficiency * charge_kw(d) * hours / p.car_battery_kwh
    return max(min(ask_pct(d), reach * 0.999, p.soc_max_pct), p.soc_min_pct)


def reduction_kw(d: FleetDevice, base_kw: np.ndarray, hold_h: float, dt_h: float) -> np.ndarray:
    """The reduction below ``base_kw`` (kW per interval) ``d`` can hold for ``hold_h`` hours
    starting in each interval and still leave the car with its ask: charging held back and
    discharge, as long as the car, charging at full power for the rest of its stay after the
    hold, reaches the ask, and never goes below its floor. The car is taken at its state of
    charge now (what it gains before the hold is not counted: conservative)."""
    p = _params(d)
    n = base_kw.shape[0]
    if not d.sessions or d.soc_pct is None:
        return np.zeros(n)
    window = connected(d, n)
    dep = max(s.departure for s in d.sessions)
    t = np.arange(n)
    after_h = np.maximum(dep - t, 0) * dt_h - hold_h  # connected time left after the hold
    cap = p.car_battery_kwh
    now_kwh = d.soc_pct / 100.0 * cap
    after_kwh = p.charge_efficiency * charge_kw(d) * np.maximum(after_h, 0.0)
    floor_kwh = np.maximum(ask_pct(d) / 100.0 * cap - after_kwh, p.soc_min_pct / 100.0 * cap)
    # the energy the car may gain (> 0: must gain) in the hold, and the lowest power that keeps it
    need_kwh = floor_kwh - now_kwh
    lowest_kw = np.where(need_kwh > 0, need_kwh / (p.charge_efficiency * hold_h),
                         need_kwh * p.discharge_efficiency / hold_h)
    lowest_kw = np.maximum(lowest_kw, -discharge_kw(d))
    b = np.maximum(base_kw, 0.0)
    ok = window & (after_h >= -1e-9) & (lowest_kw <= charge_kw(d))
    return np.where(ok, np.maximum(b - lowest_kw, 0.0), 0.0)


def raise_kw(d: FleetDevice, base_kw: np.ndarray, hold_h: float) -> np.ndarray:
    """The rise above ``base_kw`` (kW per interval) ``d`` can hold for ``hold_h`` hours while
    its car is connected: charging, up to the room below the car's maximum state of charge."""
    p = _params(d)
    n = base_kw.shape[0]
    if not d.sessions or d.soc_pct is None:
        return np.zeros(n)
    room_kwh = max(p.soc_max_pct - d.soc_pct, 0.0) / 100.0 * p.car_battery_kwh
    top = min(charge_kw(d), room_kwh / (p.charge_efficiency * hold_h))
    return np.where(connected(d, n), np.maximum(top - base_kw, 0.0), 0.0)
