"""Admission of the VPP under its programme: adjustable capacity, continuous response, share of
normal load, each against the programme version's figure, with the verdict and the margin.

:func:`assess_admission` is pure (no database): :mod:`vpp.admission` reads the fleet and its
history and calls it for ``vpp admission`` and ``GET /api/v1/admission``.

What is measured, over a **reference window** (interval starts ``window``, one local day's
clock window; its history is the same clock window on earlier days):

* **Adjustable capacity** (kW): ``down_kw``, the net load reduction the fleet can hold for one
  measurement interval (peak shaving; for a generation resource, more output), plus ``up_kw``,
  the rise it can hold (valley filling): Hunan 2026 counts adjustable capacity as up plus down.
  Each is the best interval of the window. The flexibility model is the bidder's:
  owners with load quantiles (their forecast, else the empirical quantiles of their history's
  days of the reference day's type, :func:`bidding.core.same_type_days`, at least
  :data:`bidding.core.MIN_HISTORY_DAYS` days) count the scheduler's flexibility envelope
  (:func:`vpp.scheduler.envelope.flexibility_envelope`, ``confidence`` as for the offer,
  batteries at their state of charge, unknown: nothing) over their quantiles split over their
  devices by rated power (an owner's reduction capped by the export rule as the offer caps
  it, :func:`bidding.export_rule.deliverable_cap_kw`), the fleet as
  :func:`bidding.core.scheduler_envelopes` builds it for
  an offer, except that the hold is ``H`` intervals instead of the whole window (that function
  holds for its window: called per ``H``-long stretch it gives the same, at a call per stretch,
  40 s for 1,000 devices over 13 h where this takes one call per ``H``); devices of owners
  without either count what they hold on average without history
  (:func:`bidding.fallback.held_kw`, in the reference day's season).
* **Continuous response** (h): the longest hold ``H`` (whole intervals, at most the window)
  for which the fleet holds ``down(H) + up(H) >= min_declared_kw``, each direction in its
  best ``H``-long part of the window (``down(H)``: the largest over the window's ``H``-long
  stretches of the smallest interval's envelope held for ``H``). Capacity never grows with
  ``H``, so ``H`` is found by bisection. A programme without a minimum (0 kW) gives the
  whole window, as does a fleet that holds it throughout (``duration_capped``).
* **Normal load** (kW): per owner, the mean over the window of its expected load (the mean of
  those history days, or the forecast's median), summed over the owners with a counted
  device. The **share** is ``adjustable_kw / normal_load_kw`` in percent; it is ``unknown``
  while an owner with a counted device has neither history nor forecast.

Which rule applies to which type (the programme file states its figures for load units only:
"a load unit needs ..."; the rest is our choice): a **load** or **mixed** VPP counts every
device and is held to all three rules; a **generation** VPP has no load to shed or normal
load to compare with: it counts only its generation and storage devices (the kinds not in
:data:`LOAD_KINDS`; load devices in its fleet are listed as excluded), from what they hold
(:func:`bidding.fallback.held_kw`, no load history needed), and is held to the capacity and
duration rules; the share rule is ``not_applicable``. The duration required is the largest
``min_duration_hours`` of the programme's products (the VPP must be able to answer each).

A rule passes when the measure is at least the figure (``margin`` = measured - required, in the
rule's unit); a figure's ``verified`` is False when the version lists its key (or ``*``) in
``unverified``. Devices that cannot take part (:func:`bidding.participants.can_take_part`) are
not counted; an owner's load quantiles are split over its counted devices by rated power, as
the bidder splits them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fnmatch import fnmatch
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from bidding.bid_inputs import BidDevice, OwnerInput
from bidding.core import MIN_HISTORY_DAYS, direction_sign, same_type_days, site_baseline_kw
from bidding.export_rule import can_export, deliverable_cap_kw
from bidding.fallback import held_kw
from bidding.programme import Programme
from bidding.rules import Direction
from forecasting.calendars import DayCalendar
from forecasting.owners import OwnerForecast
from vpp.calendar import MarketCalendar, Season
from vpp.device_kinds import DeviceKind, parse_params
from vpp.domain.admission import (
    AdmissionResult,
    OwnerNormalLoad,
    RuleCheck,
    RuleStatus,
    VppType,
)
from vpp.errors import ValidationError

#: Device kinds that are loads: a generation-type VPP does not count them.
LOAD_KINDS = frozenset({DeviceKind.COMMERCIAL_BUILDING.value, DeviceKind.INDUSTRIAL_LOAD.value,
                        DeviceKind.EV_CHARGER.value})

ALL_TYPES = [VppType.LOAD, VppType.GENERATION, VppType.MIXED]
LOAD_TYPES = [VppType.LOAD, VppType.MIXED]
DOWN, UP = Direction.PEAK_SHAVING.value, Direction.VALLEY_FILLING.value

#: Relative tolerance of "at least": a measure equal to the figure up to float rounding passes.
EDGE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class AdmissionInput:
    """What the check reads: the programme version, the declared type, the reference window's
    interval starts (aware, on the programme's interval), the owners with their devices
    (``eligible``, a battery's ``soc_pct``) and their history days over that clock window
    (:func:`bidding.bid_inputs.whole_days`, other events' days left out), the working-day
    calendar; ``forecast``: owners' load quantiles covering the window (None: none)."""

    programme: Programme
    vpp_type: VppType
    window: pd.DatetimeIndex
    owners: tuple[OwnerInput, ...]
    calendar: DayCalendar
    confidence: float = 0.9
    levels: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)
    forecast: OwnerForecast | None = None

    def __post_init__(self) -> None:
        w = self.window
        if len(w) == 0 or w.tz is None:
            raise ValidationError("the reference window must be a non-empty, aware index")
        step = pd.Timedelta(minutes=self.programme.interval_minutes)
        if len(w) > 1 and not (w[1:] - w[:-1] == step).all():
            raise ValidationError(f"the reference window must be in {step} steps")

    @property
    def step_h(self) -> float:
        return self.programme.interval_minutes / 60

    @property
    def day(self) -> date:
        return self.window[0].tz_convert(ZoneInfo(self.programme.timezone)).date()


@dataclass(frozen=True)
class _LoadView:
    """An owner's expected load over the window: quantiles (levels x intervals), the mean kW,
    and what they were made from."""

    quantiles_kw: np.ndarray
    mean_kw: float
    basis: str
    expected_kw: np.ndarray  # per interval: the history days' mean, or the forecast's median


def owner_load_view(inp: AdmissionInput, owner: OwnerInput) -> _LoadView | None:
    """The owner's forecast over the window, else the empirical quantiles of its history days
    of the reference day's type (:func:`bidding.core.same_type_days`); None with fewer than
    :data:`bidding.core.MIN_HISTORY_DAYS` days."""
    fc = inp.forecast.window(owner.owner_id, inp.window) if inp.forecast is not None else None
    if fc is not None and inp.forecast is not None:
        median = inp.forecast.median(fc)
        return _LoadView(_at_levels(fc, list(inp.forecast.levels), inp.levels),
                         float(median.mean()), "the forecast's median", np.asarray(median))
    if len(owner.history) < MIN_HISTORY_DAYS:
        return None
    dates = [h.day for h in owner.history]
    use, rule = same_type_days(dates, inp.day, inp.calendar)
    hist = np.vstack([owner.history[i].load_kw for i in use])
    used = ", ".join(d.isoformat() for d in sorted(dates[i] for i in use))
    rule = rule.replace("the event day's type", "the reference day's type")
    return _LoadView(np.quantile(hist, inp.levels, axis=0), float(hist.mean()),
                     f"mean over {rule}: {used}", hist.mean(axis=0))


def _at_levels(q: np.ndarray, have: list[float], want: Sequence[float]) -> np.ndarray:
    """Forecast quantiles ``q`` (len(have) x T) interpolated at the levels ``want``."""
    return np.array([[np.interp(lv, have, q[:, t]) for t in range(q.shape[1])] for lv in want])


@dataclass(frozen=True)
class _Fleet:
    """The scheduler's fleet of the owners with load quantiles (every device of theirs, those
    not counted pinned at their baseline, ``available=False``) and its baseline quantiles
    (levels x devices x intervals: each owner's split over its devices by rated power, as
    :func:`bidding.core.scheduler_envelopes` splits it); ``held``: the counted devices of the
    other owners (:func:`bidding.fallback.held_kw`)."""

    devices: tuple[Any, ...]  # vpp.scheduler.inputs.FleetDevice (imported when used)
    baseline_q_kw: np.ndarray
    enveloped: int  # counted devices among ``devices``
    held: tuple[BidDevice, ...]
    season: Season
    excluded: dict[str, int]
    down_caps: dict[str, np.ndarray]  # owner -> the export rule's cap, where it can bind


def _excluded(inp: AdmissionInput, d: BidDevice) -> str | None:
    if not d.eligible:
        return "cannot take part (inactive or opted out)"
    if inp.vpp_type == VppType.GENERATION and d.kind in LOAD_KINDS:
        return "a load in a generation-type VPP"
    return None


def _count(inp: AdmissionInput, views: dict[int, _LoadView | None]) -> _Fleet:
    from vpp.scheduler.inputs import FleetDevice  # the scheduler (osqp) only when checked

    excluded: dict[str, int] = {}
    fleet: list[FleetDevice] = []
    rows: list[np.ndarray] = []
    held: list[BidDevice] = []
    for o in inp.owners:
        view = None if inp.vpp_type == VppType.GENERATION else views.get(o.owner_id)
        rated = np.array([max(d.rated_power_kw, 0.0) for d in o.devices])
        share = rated / rated.sum() if rated.sum() > 0 else np.full(len(rated), 1 / len(rated))
        for d, sh in zip(o.devices, share, strict=True):
            reason = _excluded(inp, d)
            if reason is not None:
                excluded[reason] = excluded.get(reason, 0) + 1
            if view is None:
                held += [d] if reason is None else []
                continue
            kind = DeviceKind(d.kind)
            fleet.append(FleetDevice(
                device_id=d.device_id, kind=kind, rated_power_kw=d.rated_power_kw,
                min_setpoint_kw=d.min_setpoint_kw, max_setpoint_kw=d.max_setpoint_kw,
                params=parse_params(kind, d.params), owner=str(o.owner_id),
                soc_pct=d.soc_pct, available=reason is None))
            rows.append(np.maximum(view.quantiles_kw, 0.0) * sh)
    bq = np.stack(rows, axis=1) if rows else np.zeros((len(inp.levels), 0, len(inp.window)))
    season = MarketCalendar.from_programme(inp.programme, inp.calendar).season_of(inp.day)
    return _Fleet(tuple(fleet), bq, sum(d.available for d in fleet), tuple(held), season,
                  excluded, _down_caps(inp, views, fleet, bq))


def _down_caps(inp: AdmissionInput, views: dict[int, _LoadView | None], fleet: list[Any],
               bq: np.ndarray) -> dict[str, np.ndarray]:
    """The export rule as the offer applies it (:func:`bidding.export_rule.deliverable_cap_kw`:
    the site's import at baseline, else the owner's expected load, kW per interval), for the
    owners in the envelope whose cap can bind: owners that can export
    (:func:`bidding.export_rule.can_export`) whose cap is below the most their devices could
    shed (each device's highest baseline quantile less its lowest setpoint). Keyed by the
    fleet's owner."""
    caps: dict[str, np.ndarray] = {}
    rows_of: dict[str, list[int]] = {}
    for i, d in enumerate(fleet):
        rows_of.setdefault(d.owner, []).append(i)
    for o in inp.owners:
        view = views.get(o.owner_id)
        rows = rows_of.get(str(o.owner_id), [])
        if view is None or not can_export(fleet[i].min_setpoint_kw for i in rows):
            continue
        cap = deliverable_cap_kw(inp.programme.export_counts, DOWN, view.expected_kw,
                                 site_baseline_kw(o, inp.day, inp.calendar))
        most = sum(float(bq[:, i, :].max()) - min(fleet[i].min_setpoint_kw, 0.0) for i in rows)
        if float(cap.min()) < most:
            caps[str(o.owner_id)] = cap
    return caps


def _down_envelope(inp: AdmissionInput, fleet: _Fleet, hold: int) -> np.ndarray:
    """The fleet's reduction per interval held for ``hold`` intervals (kW): the scheduler's
    envelope of the owners the export rule does not bind, plus, per owner it may bind, the
    smaller of its own envelope and its cap."""
    from vpp.scheduler.envelope import flexibility_envelope

    def env(rows: list[int]) -> np.ndarray:
        if not rows:
            return np.zeros(len(inp.window))
        return np.asarray(flexibility_envelope(
            [fleet.devices[i] for i in rows], fleet.baseline_q_kw[:, rows, :], inp.levels,
            inp.confidence, sustain_intervals=hold,
            interval_minutes=inp.programme.interval_minutes,
            direction_sign=direction_sign(DOWN)).reduction_kw, dtype=float)

    rows_of: dict[str, list[int]] = {}
    for i, d in enumerate(fleet.devices):
        rows_of.setdefault(d.owner if d.owner in fleet.down_caps else "", []).append(i)
    out = env(rows_of.get("", []))
    for owner, cap in fleet.down_caps.items():
        out = out + np.minimum(env(rows_of.get(owner, [])), cap)
    return out


def capacity_kw(inp: AdmissionInput, fleet: _Fleet, direction: str, hold: int) -> float:
    """What the fleet holds in ``direction`` for ``hold`` intervals, in the best ``hold``-long
    stretch of the window (kW; module docstring)."""
    hours = hold * inp.step_h
    base = 0.0
    for d in fleet.held:  # BidDevice's id is read-only: the protocol's is settable
        base += held_kw(d, hours, fleet.season, d.soc_pct, direction)  # type: ignore[arg-type]
    if not fleet.enveloped:
        return base
    from vpp.scheduler.envelope import flexibility_envelope

    if direction == DOWN and fleet.down_caps:  # the export rule can bind some owners
        reduction = _down_envelope(inp, fleet, hold)
    else:
        reduction = np.asarray(flexibility_envelope(
            fleet.devices, fleet.baseline_q_kw, inp.levels, inp.confidence,
            sustain_intervals=hold, interval_minutes=inp.programme.interval_minutes,
            direction_sign=direction_sign(direction)).reduction_kw, dtype=float)
    held_through = sliding_window_view(reduction, hold)
    return float(base + held_through.min(axis=1).max())


def longest_hold(n: int, holds: Callable[[int], bool]) -> int:
    """The largest ``h`` in 1..n with ``holds(h)`` (non-increasing in ``h``: bisection), 0 when
    ``holds(1)`` is false."""
    if not holds(1):
        return 0
    lo, hi = 1, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if holds(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def at_least(measured: float, required: float) -> bool:
    return measured >= required - EDGE_TOLERANCE * max(1.0, abs(required))


def verified(programme: Programme, key: str) -> bool:
    """False when the version lists ``key`` as unverified (a pattern such as ``*`` or
    ``products.*.prices``)."""
    return not any(fnmatch(key, pat) for pat in programme.rules.unverified)


def _rule(inp: AdmissionInput, name: str, key: str, applies: list[VppType], required: float,
          measured: float | None, unit: str, note: str = "") -> RuleCheck:
    p = inp.programme
    ok = verified(p, key)
    source = (f"{p.name} version of {p.effective_from}, key {key} "
              f"({'VERIFIED' if ok else 'unverified'}): {p.rules.source}")
    if inp.vpp_type not in applies:
        status, margin = RuleStatus.NOT_APPLICABLE, None
        note = note or f"does not apply to a {inp.vpp_type.value}-type VPP"
    elif measured is None:
        status, margin = RuleStatus.UNKNOWN, None
    else:
        status = RuleStatus.PASS if at_least(measured, required) else RuleStatus.FAIL
        margin = round(measured - required, 6)
    return RuleCheck(name=name, applies_to=applies, required=required, measured=measured,
                     unit=unit, status=status, margin=margin, key=key, verified=ok,
                     source=source, note=note)


def _duration_rule(inp: AdmissionInput, duration_h: float, capped: bool) -> RuleCheck:
    products = sorted(inp.programme.rules.products, key=lambda p: -p.min_duration_hours)
    strictest = products[0]
    note = f"the largest product minimum ({strictest.key})" + (
        "; held for the whole window, so at least this long" if capped else "")
    return _rule(inp, "continuous_response", f"products.{strictest.key}.min_duration_hours",
                 ALL_TYPES, strictest.min_duration_hours, duration_h, "h", note)


def assess_admission(inp: AdmissionInput) -> AdmissionResult:
    """The admission check (module docstring). Pure: the same input gives the same result."""
    views = {o.owner_id: owner_load_view(inp, o) for o in inp.owners}
    fleet = _count(inp, views)
    n = len(inp.window)
    cache: dict[tuple[str, int], float] = {}

    def cap(direction: str, hold: int) -> float:
        if (direction, hold) not in cache:
            cache[(direction, hold)] = capacity_kw(inp, fleet, direction, hold)
        return cache[(direction, hold)]

    down, up = cap(DOWN, 1), cap(UP, 1)
    adjustable = down + up
    min_kw = inp.programme.rules.min_declared_kw
    hold = n if min_kw <= 0 else longest_hold(
        n, lambda h: at_least(cap(DOWN, h) + cap(UP, h), min_kw))
    duration_h, capped = hold * inp.step_h, hold == n
    owners, normal, missing = _normal_load(inp, views, fleet)
    share = None if normal is None or normal <= 0 else 100 * adjustable / normal
    share_note = (f"no history or forecast for owner(s) {missing}" if missing else
                  "no normal load in the window" if normal is not None and normal <= 0 else "")
    rules = [
        _rule(inp, "adjustable_capacity", "min_declared_kw", ALL_TYPES,
              inp.programme.rules.min_declared_kw, round(adjustable, 3), "kW", "up plus down"),
        _duration_rule(inp, duration_h, capped),
        _rule(inp, "share_of_normal_load", "min_share_of_normal_load_pct", LOAD_TYPES,
              inp.programme.rules.min_share_of_normal_load_pct,
              None if share is None else round(share, 4), "%", share_note),
    ]
    step = timedelta(minutes=inp.programme.interval_minutes)
    return AdmissionResult(
        programme=inp.programme.name, programme_version=inp.programme.effective_from,
        vpp_type=inp.vpp_type, window_start=_dt(inp.window[0]),
        window_end=_dt(inp.window[-1]) + step, interval_minutes=inp.programme.interval_minutes,
        down_kw=round(down, 3), up_kw=round(up, 3), adjustable_kw=round(adjustable, 3),
        duration_h=duration_h, duration_at_kw=min_kw, duration_capped=capped,
        normal_load_kw=None if normal is None else round(normal, 3),
        share_pct=None if share is None else round(share, 4), owners=owners,
        devices_counted=fleet.enveloped + len(fleet.held),
        devices_excluded=fleet.excluded, capacity_basis=_basis(fleet, inp),
        rules=rules, admitted=all(r.status in (RuleStatus.PASS, RuleStatus.NOT_APPLICABLE)
                                  for r in rules))


def _normal_load(inp: AdmissionInput, views: dict[int, _LoadView | None], fleet: _Fleet
                 ) -> tuple[list[OwnerNormalLoad], float | None, list[int]]:
    """Per owner with a counted device, its normal load; the sum (None for a generation-type
    VPP or while an owner has none); the owners without one."""
    if inp.vpp_type == VppType.GENERATION:
        return [], None, []
    counted = {int(d.owner) for d in fleet.devices if d.available} | {
        d.owner_id for d in fleet.held}
    owners = []
    for o in sorted(counted):
        v = views.get(o)
        owners.append(OwnerNormalLoad(
            owner_id=o, normal_load_kw=None if v is None else round(v.mean_kw, 3),
            basis=v.basis if v is not None else
            f"fewer than {MIN_HISTORY_DAYS} whole days of history in the window, no forecast"))
    missing = [o.owner_id for o in owners if o.normal_load_kw is None]
    total = None if missing else float(sum(o.normal_load_kw or 0.0 for o in owners))
    return owners, total, missing


def _basis(fleet: _Fleet, inp: AdmissionInput) -> str:
    parts = []
    if fleet.enveloped:
        parts.append(f"{fleet.enveloped} device(s): the scheduler's envelope over their "
                     f"owners' load quantiles at confidence {inp.confidence:g}")
    if fleet.held:
        parts.append(f"{len(fleet.held)} device(s): what they hold without history "
                     f"(bidding.fallback.held_kw, {fleet.season})")
    return "; ".join(parts) or "no device counted"


def _dt(ts: pd.Timestamp) -> datetime:
    out: datetime = ts.to_pydatetime()
    return out
