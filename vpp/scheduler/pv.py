"""PV inverter model: generation the plan may curtail, never raise.

A ``pv_inverter``'s baseline is its expected output with the project's sign (``-output``; in
the daemon its metered load on the programme's baseline days, else the nowcast of
:func:`forecasting.pv.nowcast_load_kw`): what the sky gives is the available power, an upper
bound the plan cannot exceed. Its one control is curtailment, ``c_t >= 0`` per unit of the inverter's rating
``R`` (one variable per interval):

    power_t = baseline_t + R c_t,    0 <= R c_t <= min(-baseline_t, max_setpoint_kw - baseline_t)

so the output ``-power_t`` stays between 0 and the forecast (:func:`raise_kw`, the same bound,
is the kind's part of the offer envelope). Curtailing raises the site's net
load: in a valley-filling call it is response like any other kind's rise (the assembler
counts it through the shared response rows); in a peak-shaving call it works against the
call, so the plan leaves PV alone and its forecast output is simply part of the fleet's
baseline (the site's net load). Past intervals, an offline inverter, or one at night have
nothing to curtail (bound 0); ``flex_scale`` derates the bound as for other kinds.

Costs: the energy price on the power (from the assembler: curtailed energy is bought back from
the grid), the owner's lost generation ``pv_curtail_yuan_per_kwh`` per kWh curtailed (linear),
and the small quadratic ``pv_curtail_quad_yuan_per_kwh`` that spreads curtailment over the
fleet's inverters in proportion to their ratings.

The setpoint is minus the output ceiling (:mod:`vpp.device_kinds`): a curtailed interval's is
the planned power; an interval the plan does not curtail gets the inverter's lowest setpoint
(:func:`release_uncurtailed`: no ceiling), so more sun than forecast is never thrown away.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vpp.device_kinds import DeviceKind
from vpp.scheduler.block import Block, Context, Pattern, Vectors, attr, finish, live_mask
from vpp.scheduler.inputs import FleetDevice, Weights

BLOCK_NAME = "pv_inverter"
#: curtailment below this (kW, or this share of the rating where larger) is no curtailment
#: (the solver's tolerance)
CURTAIL_TOL_KW = 1e-2
CURTAIL_TOL_SHARE = 1e-3


def build(members: np.ndarray, devices: Sequence[FleetDevice], n: int, dt_h: float,
          w: Weights) -> Block:
    """Block of PV inverters (module docstring): one curtailment variable and one bound row
    per interval."""
    m = len(devices)
    rated = attr(devices, "rated_power_kw")
    pref = attr(devices, "preference_weight")
    t = np.arange(n)
    pat = Pattern(m)
    r0 = pat.add_rows("pv.available", n, t)
    pat.entries(r0 + t, t, 1.0)
    p_diag = np.repeat((2.0 * w.pv_curtail_quad_yuan_per_kwh * pref)[:, None], n, axis=1)

    def vectors(ctx: Context) -> Vectors:
        return _vectors(ctx, rated, pat.nr)

    return finish(BLOCK_NAME, members, rated, n, pat, p_diag, (t, t, np.ones(n)), vectors)


def _vectors(ctx: Context, rated: np.ndarray, nr: int) -> Vectors:
    devs, n = ctx.devices, ctx.n
    base = np.asarray(ctx.baseline_kw, dtype=float)
    avail = np.array([d.available for d in devs], dtype=float)
    scale = (attr(devs, "flex_scale") * avail)[:, None]
    room_kw = _room_kw(base, attr(devs, "max_setpoint_kw")[:, None])
    hi = np.where(live_mask(n, ctx.now)[None, :], room_kw / rated[:, None] * scale, 0.0)
    pref = attr(devs, "preference_weight")
    q = np.repeat((ctx.weights.pv_curtail_yuan_per_kwh * pref)[:, None], n, axis=1)
    return Vectors(q=q, lo=np.zeros((len(devs), nr)), hi=hi, const_kw=base.copy())


def raise_kw(d: FleetDevice, base_kw: np.ndarray) -> np.ndarray:
    """How far ``d`` (a PV inverter) can raise its power above ``base_kw`` (its signed
    baseline, kW per interval) by curtailing: its expected output, less what the owner keeps
    (``max_setpoint_kw``); the offer envelope's valley side (:mod:`vpp.scheduler.envelope`).
    Curtailment has no energy budget: it holds for any duration."""
    return _room_kw(np.asarray(base_kw, dtype=float), d.max_setpoint_kw)


def _room_kw(base_kw: np.ndarray, max_setpoint_kw: float | np.ndarray) -> np.ndarray:
    """Curtailable kW: the expected output (``-base``), at most down to the owner's kept
    output (``max_setpoint_kw``, <= 0), never below 0."""
    return np.maximum(np.minimum(-base_kw, max_setpoint_kw - base_kw), 0.0)


def release_uncurtailed(devices: Sequence[FleetDevice], power_kw: np.ndarray,
                        baseline_kw: np.ndarray, setpoint_kw: np.ndarray) -> np.ndarray | None:
    """The setpoints with every PV inverter's uncurtailed intervals (planned power within
    :data:`CURTAIL_TOL_KW` / :data:`CURTAIL_TOL_SHARE` of its baseline) at its lowest
    setpoint: no output ceiling (None:
    no PV inverter, the setpoints as they are)."""
    if not any(d.kind is DeviceKind.PV_INVERTER for d in devices):
        return None
    out = setpoint_kw.copy()
    for i, d in enumerate(devices):
        if d.kind is DeviceKind.PV_INVERTER:
            tol = max(CURTAIL_TOL_KW, CURTAIL_TOL_SHARE * d.rated_power_kw)
            free = power_kw[i] - baseline_kw[i] <= tol
            out[i, free] = d.min_setpoint_kw
    return out
