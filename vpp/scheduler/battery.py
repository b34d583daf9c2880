"""Battery model: state-of-charge dynamics with charge/discharge efficiency.

Local variables per device (per unit): charge ``c_t >= 0`` and discharge ``d_t >= 0`` as fractions
of the rated power, and state of charge ``e_t`` as a fraction of capacity at the end of interval
``t``. Separate charge and discharge keep the efficiency losses convex:

    e_t = e_{t-1} + (eta_c * c_t - d_t / eta_d) * dt * R / capacity,   e_{-1} = SoC now

with ``soc_min <= e_t <= soc_max`` (relaxed to the current SoC if it already lies outside),
``e_{end} >= terminal SoC`` (default: the SoC now), and the setpoint limits as bounds on c and d;
``d_t`` also at most the device's ``discharge_cap_kw`` per interval where it has one (the
export rule, :mod:`vpp.scheduler.tou`).
Power ``R (c - d)``. Costs: throughput wear (linear) plus a small quadratic per unit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vpp.errors import ValidationError
from vpp.scheduler.block import Block, Context, Pattern, Vectors, attr, finish, live_mask
from vpp.scheduler.inputs import FleetDevice, Weights


def build(members: np.ndarray, devices: Sequence[FleetDevice], n: int, dt_h: float,
          w: Weights) -> Block:
    """Block of ``devices`` (all batteries) over ``n`` intervals of ``dt_h`` hours."""
    m = len(devices)
    rated = attr(devices, "rated_power_kw")
    cap = attr(devices, "capacity_kwh")
    a_c = attr(devices, "charge_efficiency") * dt_h * rated / cap
    a_d = dt_h * rated / (attr(devices, "discharge_efficiency") * cap)
    t = np.arange(n)
    c, d, e = t, n + t, 2 * n + t
    pat = Pattern(m)
    r0 = pat.add_rows("battery.soc_dynamics", n, t)
    rows = r0 + t
    pat.entries(rows, e, 1.0)
    pat.entries(rows[1:], e[:-1], -1.0)
    pat.entries(rows, c, -np.repeat(a_c[:, None], n, axis=1))
    pat.entries(rows, d, np.repeat(a_d[:, None], n, axis=1))
    for fam, var in (("battery.charge_limit", c), ("battery.discharge_limit", d)):
        r = pat.add_rows(fam, n, t)
        pat.entries(r + t, var, 1.0)
    r = pat.add_rows("battery.soc_limit", n - 1, t[:-1])
    pat.entries(r + t[:-1], e[:-1], 1.0)
    r = pat.add_rows("battery.terminal_soc", 1, n - 1)
    pat.entries([r], [e[-1]], 1.0)
    p_diag = np.full((m, 3 * n), 1e-6)
    p_diag[:, : 2 * n] = (2.0 * w.battery_quad_yuan_per_kwh * attr(devices, "preference_weight"))[
        :, None
    ]
    power = (np.concatenate([c, d]), np.concatenate([t, t]),
             np.concatenate([np.ones(n), -np.ones(n)]))
    ctx_static = {"a_c": a_c, "rated": rated, "n": n}

    def vectors(ctx: Context) -> Vectors:
        return _vectors(ctx, ctx_static)

    return finish("battery", members, rated, 3 * n, pat, p_diag, power, vectors)


def _vectors(ctx: Context, st: dict) -> Vectors:
    n, m = ctx.n, len(ctx.devices)
    rated = st["rated"]
    live = live_mask(n, ctx.now)
    devs = ctx.devices
    soc0 = attr(devs, "soc_pct") / 100.0
    smin = attr(devs, "soc_min_pct") / 100.0
    smax = attr(devs, "soc_max_pct") / 100.0
    term = np.array([
        (d.terminal_soc_pct if d.terminal_soc_pct is not None else d.soc_pct) for d in devs
    ]) / 100.0
    avail = np.array([d.available for d in devs])
    scale = attr(devs, "flex_scale") * avail
    lo_sp, hi_sp = attr(devs, "min_setpoint_kw"), attr(devs, "max_setpoint_kw")
    cmax = np.maximum(hi_sp, 0.0) / rated * scale
    cmin = np.maximum(lo_sp, 0.0) / rated * avail
    dmax = np.maximum(-lo_sp, 0.0) / rated * scale
    dmin = np.maximum(-hi_sp, 0.0) / rated * avail
    term = np.minimum(np.maximum(term, np.minimum(smin, soc0)), np.maximum(smax, soc0))
    # The terminal SoC must be reachable charging at full power in the live intervals.
    reach = soc0 + st["a_c"] * cmax * int(live.sum())
    bad = avail & (term > reach + 1e-9)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValidationError(
            f"device {devs[i].device_id} (battery): terminal SoC {term[i] * 100:.1f}% is "
            f"unreachable from {soc0[i] * 100:.1f}% (at most {reach[i] * 100:.1f}% in the horizon)"
        )
    lo = np.empty((m, 4 * n))
    hi = np.empty((m, 4 * n))
    lo[:, :n] = 0.0
    hi[:, :n] = 0.0
    lo[:, 0] = hi[:, 0] = soc0
    lm = live[None, :]
    lo[:, n : 2 * n] = np.where(lm, cmin[:, None], 0.0)
    hi[:, n : 2 * n] = np.where(lm, cmax[:, None], 0.0)
    lo[:, 2 * n : 3 * n] = np.where(lm, dmin[:, None], 0.0)
    hi[:, 2 * n : 3 * n] = np.where(lm, _discharge_hi(devs, dmax, dmin, rated, n), 0.0)
    lo[:, 3 * n : 4 * n - 1] = np.minimum(smin, soc0)[:, None]
    hi[:, 3 * n : 4 * n - 1] = np.maximum(smax, soc0)[:, None]
    lo[:, 4 * n - 1] = np.where(avail, term, np.minimum(smin, soc0))
    hi[:, 4 * n - 1] = np.maximum(smax, soc0)
    q = np.zeros((m, 3 * n))
    wear = ctx.weights.battery_wear_yuan_per_kwh * attr(devs, "preference_weight")
    q[:, : 2 * n] = wear[:, None]
    const = np.where(avail[:, None], 0.0, ctx.baseline_kw)
    return Vectors(q=q, lo=lo, hi=hi, const_kw=const)


def _discharge_hi(devs: Sequence[FleetDevice], dmax: np.ndarray, dmin: np.ndarray,
                  rated: np.ndarray, n: int) -> np.ndarray:
    """Per unit, the most each battery may discharge per interval, (m, n): its limit, and its
    ``discharge_cap_kw`` where it has one (never below a discharge its limits force)."""
    hi = np.repeat(dmax[:, None], n, axis=1)
    for i, d in enumerate(devs):
        if d.discharge_cap_kw:
            cap = np.asarray(d.discharge_cap_kw, dtype=float) / rated[i]
            hi[i] = np.maximum(np.minimum(hi[i], cap), dmin[i])
    return hi


def soc_pct(blk: Block, x: np.ndarray) -> np.ndarray:
    """State of charge (%) at the end of each interval, from the block's solution (m, nv)."""
    n = blk.nv // 3
    return 100.0 * x[:, 2 * n :]
