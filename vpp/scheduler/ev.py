"""EV charger model: each connected vehicle gets the energy it needs by its departure.

Local variables per connector ``j`` (per unit of the charger's rated power): charge ``c_j,t >= 0``
and, on V2G chargers only, discharge ``d_j,t >= 0``. A connector's vehicle (one session per
connector per horizon, :class:`~vpp.scheduler.inputs.EvSession`) may draw power only while it is
connected and receives exactly the energy it asked for:

    sum_t (c_j,t - d_j,t) * R * dt = energy_kwh            (connected intervals only)

A charger with several connectors also keeps the sum of its connectors within its setpoint
limits. Power ``R * sum_j (c_j - d_j)``. Costs: a small quadratic, a slight preference for
charging early (the owners' "as soon as possible"), wear on V2G discharge.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vpp.errors import ValidationError
from vpp.scheduler.block import INF, Block, Context, Pattern, Vectors, attr, finish, live_mask
from vpp.scheduler.inputs import FleetDevice, Weights


def variant(d: FleetDevice) -> tuple[int, bool]:
    """Structural variant of a charger: (connectors, V2G)."""
    return (d.params.connectors, d.params.v2g)  # type: ignore[union-attr]


def build(members: np.ndarray, devices: Sequence[FleetDevice], n: int, dt_h: float,
          w: Weights) -> Block:
    """Block of EV chargers that all have the same :func:`variant`."""
    m = len(devices)
    k, v2g = variant(devices[0])
    rated = attr(devices, "rated_power_kw")
    t = np.arange(n)
    nv = k * n * (2 if v2g else 1)
    pat = Pattern(m)
    cvars = [j * n + t for j in range(k)]
    dvars = [k * n + j * n + t for j in range(k)] if v2g else []
    for j in range(k):
        r = pat.add_rows("ev.charge_limit", n, t)
        pat.entries(r + t, cvars[j], 1.0)
    for j in range(len(dvars)):
        r = pat.add_rows("ev.discharge_limit", n, t)
        pat.entries(r + t, dvars[j], 1.0)
    for j in range(k):
        r = pat.add_rows("ev.energy_by_departure", 1, -1)
        pat.entries(np.full(n, r), cvars[j], 1.0)
        if v2g:
            pat.entries(np.full(n, r), dvars[j], -1.0)
    if k > 1:
        r = pat.add_rows("ev.charger_limit", n, t)
        for j in range(k):
            pat.entries(r + t, cvars[j], 1.0)
            if v2g:
                pat.entries(r + t, dvars[j], -1.0)
    pref = attr(devices, "preference_weight")
    p_diag = np.repeat((2.0 * w.ev_quad_yuan_per_kwh * pref)[:, None], nv, axis=1)
    allc = np.concatenate(cvars)
    alld = np.concatenate(dvars) if v2g else np.zeros(0, dtype=np.int64)
    power = (np.concatenate([allc, alld]), np.concatenate([allc % n, alld % n]),
             np.concatenate([np.ones(allc.size), -np.ones(alld.size)]))

    def vectors(ctx: Context) -> Vectors:
        return _vectors(ctx, k, v2g, rated, dt_h)

    return finish(f"ev_charger[{k}{'v2g' if v2g else ''}]", members, rated, nv, pat, p_diag,
                  power, vectors)


def _vectors(ctx: Context, k: int, v2g: bool, rated: np.ndarray, dt_h: float) -> Vectors:
    n, m, devs, w = ctx.n, len(ctx.devices), ctx.devices, ctx.weights
    live = live_mask(n, ctx.now)
    t = np.arange(n)
    avail = np.array([d.available for d in devs])
    per_c = attr(devs, "max_charge_kw_per_connector")
    per_d = attr(devs, "max_discharge_kw_per_connector")
    lo_sp, hi_sp = attr(devs, "min_setpoint_kw"), attr(devs, "max_setpoint_kw")
    cmax = np.minimum(per_c, np.maximum(hi_sp, 0.0)) / rated
    dmax = np.minimum(per_d, np.maximum(-lo_sp, 0.0)) / rated
    nd = k if v2g else 0
    nr = k * n + nd * n + k + (n if k > 1 else 0)
    lo = np.zeros((m, nr))
    hi = np.zeros((m, nr))
    q = np.zeros((m, k * n + nd * n))
    late = w.ev_late_yuan_per_kwh * t / n
    for j in range(k):
        q[:, j * n : (j + 1) * n] = late[None, :]
    if v2g:
        q[:, k * n :] = w.battery_wear_yuan_per_kwh
    for i, d in enumerate(devs):
        if not avail[i]:
            lo[i, k * n + nd * n : k * n + nd * n + k] = -INF
            hi[i, k * n + nd * n : k * n + nd * n + k] = INF
            continue
        if not d.sessions and ctx.baseline_kw[i].max(initial=0.0) > 0.0:
            _unknown_car(lo[i], hi[i], ctx.baseline_kw[i], ctx, cmax[i], rated[i], k, nd)
            continue
        for j, s in enumerate(d.sessions):
            window = live & (t >= s.arrival) & (t < s.departure)
            hi[i, j * n : (j + 1) * n] = np.where(window, cmax[i], 0.0)
            if v2g:
                hi[i, k * n + j * n : k * n + (j + 1) * n] = np.where(window, dmax[i], 0.0)
            need = s.energy_kwh / (rated[i] * dt_h)
            most = cmax[i] * window.sum()
            if need > most + 1e-9:
                raise ValidationError(
                    f"device {d.device_id} (ev_charger): session needs {s.energy_kwh:.1f} kWh "
                    f"by interval {s.departure} but can take at most "
                    f"{most * rated[i] * dt_h:.1f} kWh while connected"
                )
            lo[i, k * n + nd * n + j] = hi[i, k * n + nd * n + j] = need
    if k > 1:
        r0 = k * n + nd * n + k
        lo[:, r0:] = np.where(lo_sp < 0, lo_sp / rated, -INF)[:, None]
        hi[:, r0:] = (np.maximum(hi_sp, 0.0) / rated)[:, None]
    const = np.where(avail[:, None], 0.0, ctx.baseline_kw)
    return Vectors(q=q, lo=lo, hi=hi, const_kw=const)


def _unknown_car(lo: np.ndarray, hi: np.ndarray, baseline_kw: np.ndarray, ctx: Context,
                 cmax: float, rated: float, k: int, nd: int) -> None:
    """Bounds (in place, one device's rows) of a charger drawing power for a car nobody
    declared: its need and departure are unknown, so the plan neither starves nor fills it.
    Its connectors share the baseline (per unit of the rating, each at most ``cmax``) and
    follow it everywhere but in the call's window, where they may be held anywhere from 0 up
    to it; no energy is owed for the car. (Planned at 0 outside the call, such a car was capped
    for the whole tail and its baseline counted as a reduction against the rebound band, a
    slack OSQP could not settle in late re-plans.) What the car makes up after the call is
    not modelled: nobody told the daemon what it needs."""
    n = ctx.n
    follow = np.clip(np.asarray(baseline_kw, dtype=float) / (rated * k), 0.0, cmax)
    t = np.arange(n)
    window = ctx.call_window
    inside = (t >= window[0]) & (t < window[1]) if window else np.zeros(n, dtype=bool)
    inside &= live_mask(n, ctx.now)
    for j in range(k):
        lo[j * n : (j + 1) * n] = np.where(inside, 0.0, follow)
        hi[j * n : (j + 1) * n] = follow
    energy = k * n + nd * n
    lo[energy : energy + k] = -INF
    hi[energy : energy + k] = INF


def connector_kwh(blk: Block, x: np.ndarray, dt_h: float) -> np.ndarray:
    """Energy each connector delivers in each interval, (m, connectors, intervals), kWh."""
    first = blk.name.split("[", 1)[1]
    k = int(first.rstrip("]").replace("v2g", ""))
    v2g = "v2g" in first
    n = blk.nv // (k * (2 if v2g else 1))
    c = x[:, : k * n].reshape(-1, k, n)
    d = x[:, k * n :].reshape(-1, k, n) if v2g else 0.0
    return (c - d) * blk.rated_kw[:, None, None] * dt_h


def delivered_kwh(blk: Block, x: np.ndarray, dt_h: float) -> np.ndarray:
    """Energy each connector delivers over the horizon, (m, connectors), kWh."""
    return connector_kwh(blk, x, dt_h).sum(axis=2)
