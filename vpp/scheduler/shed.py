"""Shed-with-recovery envelope shared by commercial buildings and industrial loads.

Local variables per device (per unit of rated power): shed ``r_t >= 0`` below the baseline,
and, when some of the shed energy comes back (building rebound, industrial make-up), recovery
``q_t >= 0`` above the baseline and the energy still owed ``s_t >= 0`` (per unit x hours):

    power_t = baseline_t - R r_t + R q_t
    s_t = s_{t-1} + rho * r_t * dt - q_t * dt,   s_{-1} = owed now,   s_end = 0

- shed at most ``max_kw`` and never below ``min_setpoint_kw``; recovery never above
  ``max_setpoint_kw``;
- duration: the energy shed in the horizon is at most ``max_kw * minutes / 60`` (minus what was
  already shed in this event), so a full-depth shed lasts at most the declared duration (convex
  relaxation of "at most N minutes": a shallower shed may last longer); a building's
  ``minutes`` come from its device view, already cut to what its comfort band holds
  (:func:`vpp.scheduler.device_view.comfort_limited`: a shallower shed warms it slower, so
  the budget holds for it too);
- industrial make-up window: energy owed at ``t`` is at most what was curtailed in the last
  ``makeup_hours`` (older curtailment must have been made up).

In a valley-filling call (``Context.direction_sign < 0``) a load does not shed; it raises its
power only by the recovery of energy it already owes (the one rise its kind declares).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vpp.device_kinds import CommercialBuildingParams, DeviceKind
from vpp.scheduler.block import INF, Block, Context, Pattern, Vectors, attr, finish, live_mask
from vpp.scheduler.inputs import FleetDevice, Weights


@dataclass(frozen=True)
class ShedSpec:
    """Per-kind names of the envelope parameters."""

    family: str
    max_kw: str
    minutes: str
    fraction: str


BUILDING = ShedSpec("building", "max_shed_kw", "max_shed_minutes", "rebound_fraction")
INDUSTRIAL = ShedSpec("industrial", "max_curtail_kw", "max_curtail_minutes", "makeup_fraction")


def spec_of(d: FleetDevice) -> ShedSpec:
    return BUILDING if isinstance(d.params, CommercialBuildingParams) else INDUSTRIAL


def variant(d: FleetDevice, n: int, dt_h: float) -> tuple[str, bool, int]:
    """(family, has recovery, make-up window in intervals or 0 when it cannot bind)."""
    sp = spec_of(d)
    rec = getattr(d.params, sp.fraction) > 0
    window = 0
    if sp is INDUSTRIAL and rec:
        window = int(round(d.params.makeup_hours / dt_h))  # type: ignore[union-attr]
        window = window + 1 if window < n else 0
    return (sp.family, rec, window)


def build(members: np.ndarray, devices: Sequence[FleetDevice], n: int, dt_h: float,
          w: Weights) -> Block:
    """Block of loads that share one :func:`variant`."""
    m = len(devices)
    sp = spec_of(devices[0])
    _, rec, window = variant(devices[0], n, dt_h)
    rated = attr(devices, "rated_power_kw")
    rho = attr(devices, sp.fraction)
    pref = attr(devices, "preference_weight")
    t = np.arange(n)
    r_, q_, s_ = t, n + t, 2 * n + t
    nv = 3 * n if rec else n
    fam = sp.family
    pat = Pattern(m)
    r0 = pat.add_rows(f"{fam}.shed_limit", n, t)
    pat.entries(r0 + t, r_, 1.0)
    rb = pat.add_rows(f"{fam}.duration_budget", 1, -1)
    pat.entries(np.full(n, rb), r_, dt_h)
    if rec:
        r0 = pat.add_rows(f"{fam}.recovery_limit", n, t)
        pat.entries(r0 + t, q_, 1.0)
        r0 = pat.add_rows(f"{fam}.owed_energy_dynamics", n, t)
        pat.entries(r0 + t, s_, 1.0)
        pat.entries(r0 + t[1:], s_[:-1], -1.0)
        pat.entries(r0 + t, r_, -(rho * dt_h)[:, None].repeat(n, axis=1))
        pat.entries(r0 + t, q_, dt_h)
        r0 = pat.add_rows(f"{fam}.owed_energy", n - 1, t[:-1])
        pat.entries(r0 + t[:-1], s_[:-1], 1.0)
        r0 = pat.add_rows(f"{fam}.recovered_by_end", 1, n - 1)
        pat.entries([r0], [s_[-1]], 1.0)
        if window:
            r0 = pat.add_rows(f"{fam}.makeup_window", n, t)
            pat.entries(r0 + t, s_, 1.0)
            rr, cc = [], []
            for lag in range(window):
                rr.append(r0 + t[lag:])
                cc.append(r_[: n - lag])
            rr_a, cc_a = np.concatenate(rr), np.concatenate(cc)
            pat.entries(rr_a, cc_a, -(rho * dt_h)[:, None].repeat(rr_a.size, axis=1))
    p_diag = np.full((m, nv), 1e-6)
    if fam == "building":
        p_diag[:, :n] = (2.0 * w.discomfort_yuan_per_kwh * pref)[:, None]
        if rec:
            p_diag[:, 2 * n :] = (2.0 * w.comfort_debt_yuan_per_kwh * pref)[:, None]
    else:
        p_diag[:, :n] = (2.0 * w.curtail_quad_yuan_per_kwh * pref)[:, None]
    if rec:
        power = (np.concatenate([r_, q_]), np.concatenate([t, t]),
                 np.concatenate([-np.ones(n), np.ones(n)]))
    else:
        power = (r_, t, -np.ones(n))

    def vectors(ctx: Context) -> Vectors:
        return _vectors(ctx, sp, rec, window, rated, dt_h, pat.nr)

    return finish(fam, members, rated, nv, pat, p_diag, power, vectors)


def _vectors(ctx: Context, sp: ShedSpec, rec: bool, window: int, rated: np.ndarray,
             dt_h: float, nr: int) -> Vectors:
    n, m, devs, w = ctx.n, len(ctx.devices), ctx.devices, ctx.weights
    live = live_mask(n, ctx.now)[None, :]
    base = ctx.baseline_kw
    avail = np.array([d.available for d in devs])
    scale = (attr(devs, "flex_scale") * avail)[:, None]
    max_kw = attr(devs, sp.max_kw)
    lo_sp, hi_sp = attr(devs, "min_setpoint_kw"), attr(devs, "max_setpoint_kw")
    pref = attr(devs, "preference_weight")
    rmax = np.minimum(max_kw[:, None], np.maximum(base - lo_sp[:, None], 0.0)) / rated[:, None]
    lo = np.zeros((m, nr))
    hi = np.zeros((m, nr))
    shed_ok = recover_ok = live
    if ctx.direction_sign < 0:
        # valley filling: the kinds declare a shed and the recovery of what it owes, nothing
        # else; so a load does not shed for the call (that works against it) and rises above
        # its baseline only to make up energy it still owes (``debt_kwh``), up to its
        # max_setpoint_kw: any time, the call's window being where that helps
        shed_ok = np.zeros_like(live)
    elif ctx.shed_window is not None:
        inside = (np.arange(n) >= ctx.shed_window[0]) & (np.arange(n) < ctx.shed_window[1])
        shed_ok, recover_ok = live & inside[None, :], live & ~inside[None, :]
        whole = (ctx.shed_window[0] if ctx.call_first is None else ctx.call_first,
                 ctx.shed_window[1])
        shed_ok = shed_ok & staggered(devs, attr(devs, sp.minutes), n, dt_h, whole)
    hi[:, :n] = np.where(shed_ok, rmax * scale, 0.0)
    budget = max_kw * attr(devs, sp.minutes) / 60.0 - attr(devs, "shed_used_kwh")
    lo[:, n] = -INF
    hi[:, n] = np.maximum(budget, 0.0) / rated
    nvar = 3 * n if rec else n
    q = np.zeros((m, nvar))
    if sp is INDUSTRIAL:
        q[:, :n] = (w.curtail_yuan_per_kwh * pref)[:, None]
    if rec:
        o = n + 1
        qmax = np.maximum(hi_sp[:, None] - base, 0.0) / rated[:, None]
        hi[:, o : o + n] = np.where(recover_ok & avail[:, None], qmax, 0.0)
        o += n
        owed0 = attr(devs, "debt_kwh") / rated
        lo[:, o] = hi[:, o] = owed0
        o += n
        hi[:, o : o + n - 1] = INF
        o += n - 1
        hi[:, o] = np.where(avail, 0.0, INF)
        o += 1
        if window:
            lo[:, o : o + n] = -INF
            rho = attr(devs, sp.fraction)
            allow = _makeup_allowance(devs, rho, rated, owed0, window, n, ctx.now)
            # before ``now`` the owed energy is pinned at ``owed0`` (no shed, no recovery):
            # those rows would only be tight and degenerate, and every re-plan would move them
            hi[:, o : o + n] = np.where(avail[:, None] & live, allow, INF)
    return Vectors(q=q, lo=lo, hi=hi, const_kw=np.array(base, dtype=float, copy=True))


#: a load's place in the rotation is its device id modulo this (60: every call of 1-6, 10, 12,
#: 15, 20, 30 or 60 intervals is covered evenly); per-unit-identical loads of one slot may be
#: merged (:func:`vpp.scheduler.aggregate.per_unit_key`), of different slots not
STAGGER_SLOTS = 60

#: a load is not planned to the last minute of its limit: a setpoint takes effect some seconds
#: after its interval starts (the dispatch of a fleet over one connection per gateway, the
#: read-back), and a PLC capped for 60 minutes and a few seconds overrides its cap
#: (sim.physics.industrial); so ``k`` below counts the whole intervals in ``minutes - 1``
SHED_MARGIN_MINUTES = 1.0


def stagger_slot(d: FleetDevice) -> int:
    """The load's place in the rotation of :func:`staggered` (0 for other kinds)."""
    if d.kind in (DeviceKind.COMMERCIAL_BUILDING, DeviceKind.INDUSTRIAL_LOAD):
        return d.device_id % STAGGER_SLOTS
    return 0


def staggered(devs: Sequence[FleetDevice], minutes: np.ndarray, n: int, dt_h: float,
              window: tuple[int, int]) -> np.ndarray:
    """(m, n) mask of the intervals each load may shed in: all, except that a load whose
    ``minutes`` (less :data:`SHED_MARGIN_MINUTES`) hold only ``k`` of the window's ``L``
    intervals sheds in ``k`` of them, the
    ``L - k`` it leaves out rotating with its :func:`stagger_slot`, so a fleet of them covers every
    interval alike (a device counts its time shed at any depth, e.g. sim.physics.industrial;
    the energy budget alone let 120 PLCs of 60 minutes all shed a little for a 75-minute call,
    and all reach their limit together). ``window`` is the whole call (:attr:`EventCall.first`), so
    every re-plan of the event gives a load the same intervals."""
    a, b = window
    size = b - a
    ok = np.ones((len(devs), n), dtype=bool)
    j = np.arange(size)
    for i, d in enumerate(devs):
        k = int(max(minutes[i] - SHED_MARGIN_MINUTES, 0.0) // (dt_h * 60.0) + 1e-9)
        if k < size:
            ok[i, a:b] = (j + stagger_slot(d) * (size - k)) % size >= size - k
    return ok


def _makeup_allowance(devs: Sequence[FleetDevice], rho: np.ndarray, rated: np.ndarray,
                      owed0: np.ndarray, window: int, n: int, now: int) -> np.ndarray:
    """Upper bound of the make-up-window rows (m, n), per unit x hours: what may still be owed
    at ``t`` from curtailment before ``now``: ``rho`` x the energy curtailed in the intervals
    of ``[t - window + 1, now)`` by the device's shed history (exact: each interval's make-up
    is due ``window`` intervals after it, and the bound does not move between re-plans), plus
    any debt the history does not explain (older, or no history at all), due by
    ``now + window``."""
    t = np.arange(n)
    out = np.zeros((len(devs), n))
    for i, d in enumerate(devs):
        hist = rho[i] * np.asarray(d.shed_history_kwh, dtype=float) / rated[i]
        tau = now - hist.size + np.arange(hist.size)  # interval of each history entry
        csum = np.concatenate([[0.0], np.cumsum(hist)])
        first = np.searchsorted(tau, t - window + 1)  # first entry inside t's window
        out[i] = csum[-1] - csum[np.clip(first, 0, hist.size)]
        unexplained = max(owed0[i] - out[i, min(now, n - 1)], 0.0)
        out[i] += np.where(t < now + window, unexplained, 0.0)
    return out


def shed_kw(blk: Block, x: np.ndarray, n: int) -> np.ndarray:
    """Shed below the baseline per interval (kW), from the block's solution (m, nv)."""
    return x[:, :n] * blk.rated_kw[:, None]
