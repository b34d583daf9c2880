"""What the scheduler is given: devices with their state, the horizon's data, and the call.

Everything is plain numpy / frozen dataclasses (no database, no forecasting or bidding import).
Units: powers in kW (``> 0`` consumption, ``< 0`` export, :mod:`vpp.device_kinds`), energies in
kWh, prices in yuan/kWh, time as interval indices into a horizon of ``n`` intervals of
``interval_minutes`` starting at the horizon's first interval.

:func:`validate` checks one request before anything is built and raises
:class:`vpp.errors.ValidationError` with a one-line message naming the device and the problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from vpp.device_kinds import (
    BatteryParams,
    CommercialBuildingParams,
    DeviceKind,
    EvChargerParams,
    IndustrialLoadParams,
    PvInverterParams,
    V2gChargerParams,
    check_limits,
)
from vpp.errors import ValidationError

Params = (CommercialBuildingParams | IndustrialLoadParams | EvChargerParams | BatteryParams
          | V2gChargerParams | PvInverterParams)

_PARAMS_TYPE = {
    DeviceKind.BATTERY: BatteryParams,
    DeviceKind.EV_CHARGER: EvChargerParams,
    DeviceKind.COMMERCIAL_BUILDING: CommercialBuildingParams,
    DeviceKind.INDUSTRIAL_LOAD: IndustrialLoadParams,
    DeviceKind.V2G_CHARGER: V2gChargerParams,
    DeviceKind.PV_INVERTER: PvInverterParams,
}


@dataclass(frozen=True)
class EvSession:
    """One vehicle on one connector: needs ``energy_kwh`` delivered (at the battery) from interval
    ``arrival`` (inclusive) to ``departure`` (exclusive), horizon indices; ``departure`` may be
    past the horizon end, in which case the energy must still be delivered within the horizon."""

    arrival: int
    departure: int
    energy_kwh: float


@dataclass(frozen=True)
class FleetDevice:
    """One controllable device and its current state.

    ``soc_pct``/``terminal_soc_pct``: batteries (terminal defaults to the initial state of charge).
    ``sessions``: EV chargers, at most one per connector in this horizon.
    V2G chargers (:mod:`vpp.scheduler.v2g`): at most one session (the car's arrival and
    departure; its ``energy_kwh`` is 0, the ask being a state of charge), ``soc_pct`` the car's
    state of charge now (at its arrival if later), ``terminal_soc_pct`` the driver's ask at
    departure (None: the kind's ``departure_soc_pct``).
    ``shed_used_kwh`` / ``debt_kwh``: buildings and industrial loads, energy already shed in this
    event (counts against the duration budget) and energy still owed (rebound / make-up).
    ``shed_history_kwh``: industrial loads, energy curtailed in each interval before ``now``
    (oldest first, the last is interval ``now - 1``; what the make-up window still covers is
    enough): the make-up of each must come within ``makeup_hours`` of *its* interval. Empty:
    the debt may be made up until ``now + makeup_hours``.
    ``preference_weight`` scales the owner's discomfort/curtailment penalty (> 1: protect me more).
    ``available=False`` (offline) pins the device at its baseline; ``flex_scale`` in [0, 1]
    derates its flexibility after under-delivery.
    ``discharge_cap_kw``: batteries and V2G chargers, the most each interval may discharge (kW >= 0, one per
    horizon interval; empty: the setpoint limits only), e.g. the host site's load where the
    programme does not count export (:mod:`vpp.scheduler.tou`).
    """

    device_id: int
    kind: DeviceKind
    rated_power_kw: float
    min_setpoint_kw: float
    max_setpoint_kw: float
    params: Params
    owner: str = ""
    soc_pct: float | None = None
    terminal_soc_pct: float | None = None
    sessions: tuple[EvSession, ...] = ()
    shed_used_kwh: float = 0.0
    debt_kwh: float = 0.0
    shed_history_kwh: tuple[float, ...] = ()
    preference_weight: float = 1.0
    available: bool = True
    flex_scale: float = 1.0
    discharge_cap_kw: tuple[float, ...] = ()


@dataclass(frozen=True)
class EventCall:
    """A grid call: deliver at least ``reduction_kw`` of response in every interval of
    ``[start, end)`` (horizon indices). ``reduction_kw`` is a scalar or one value per interval
    of the window. The response is ``direction_sign`` x (fleet baseline - fleet power):
    ``+1`` peak shaving (the fleet below its baseline), ``-1`` valley filling (the fleet above
    it); every bound below is on the response, so valley filling is peak shaving with the sign
    reversed.

    ``ceiling_kw`` (same shapes, ``>= reduction_kw``; None: no ceiling): the plan's reduction
    should not exceed it in the window (a programme pays nothing past its band's ceiling, and
    every kW shed beyond the call costs comfort and rebound). ``rebound_max_pct`` (None: no
    limit): after the window, the fleet's power should stay between the fleet baseline and
    baseline x ``(1 + rebound_max_pct / 100)`` in every interval (valley filling: between
    baseline x ``(1 - rebound_max_pct / 100)`` and the baseline, the batteries giving back what
    they took): devices come back, ramped. Both are
    soft (:class:`Weights` ``over_delivery_yuan_per_kwh`` / ``rebound_yuan_per_kwh``): a plan
    always exists, and the penalty is far above any energy price so they hold where they can.
    """

    start: int
    end: int
    reduction_kw: float | Sequence[float] | np.ndarray
    ceiling_kw: float | Sequence[float] | np.ndarray | None = None
    rebound_max_pct: float | None = None
    #: the call's first interval before a re-plan clipped it (None: ``start``): loads that
    #: cannot shed for the whole call are staggered over the whole call (vpp.scheduler.shed)
    origin: int | None = None
    #: +1 peak shaving (response = baseline - power), -1 valley filling (power - baseline)
    direction_sign: float = 1.0

    def _window(self, values: float | Sequence[float] | np.ndarray, n: int) -> np.ndarray:
        out = np.full(n, np.nan)
        lo, hi = max(self.start, 0), min(self.end, n)
        red = np.broadcast_to(np.asarray(values, dtype=float), (self.end - self.start,))
        out[lo:hi] = red[lo - self.start : hi - self.start]
        return out

    def target_kw(self, n: int) -> np.ndarray:
        """Per-interval requested reduction over the horizon; NaN outside the window."""
        return self._window(self.reduction_kw, n)

    def ceiling_over(self, n: int) -> np.ndarray:
        """Per-interval ceiling of the reduction (kW); NaN outside the window or without one."""
        if self.ceiling_kw is None:
            return np.full(n, np.nan)
        return self._window(self.ceiling_kw, n)

    @property
    def first(self) -> int:
        """The call's first interval, before any re-plan clipped it."""
        return self.start if self.origin is None else self.origin

    def from_interval(self, now: int) -> EventCall:
        """The call clipped to start at ``now`` (a re-plan); ceiling and rebound kept."""
        if self.start >= now:
            return self
        k = self.end - self.start

        def clip(v: float | Sequence[float] | np.ndarray) -> np.ndarray:
            return np.broadcast_to(np.asarray(v, dtype=float), (k,))[now - self.start :].copy()

        return replace(self, start=now, origin=self.first, reduction_kw=clip(self.reduction_kw),
                       ceiling_kw=None if self.ceiling_kw is None else clip(self.ceiling_kw))


@dataclass(frozen=True)
class Weights:
    """Objective weights, in yuan (per kWh, or per kWh at full per-unit depth for quadratics).

    The quadratic terms are per unit of each device's rating, so that minimising them spreads the
    burden in proportion to what each device (and so each owner) can give: that is the fairness
    rule. They also make the QP strictly convex.
    """

    shortfall_yuan_per_kwh: float = 100.0
    discomfort_yuan_per_kwh: float = 0.2  # building shed, quadratic at full depth
    comfort_debt_yuan_per_kwh: float = 0.05  # building energy owed, quadratic
    curtail_yuan_per_kwh: float = 0.3  # industrial lost production, linear
    curtail_quad_yuan_per_kwh: float = 0.1
    battery_wear_yuan_per_kwh: float = 0.05  # per kWh throughput, linear
    battery_quad_yuan_per_kwh: float = 0.5
    ev_quad_yuan_per_kwh: float = 0.01
    ev_late_yuan_per_kwh: float = 0.002  # small preference for charging early
    #: PV curtailed (vpp.scheduler.pv): the owner's lost generation beyond the energy price
    #: (ASSUMPTION, no source: about a tenth of a feed-in price), linear; and the quadratic
    #: that spreads curtailment over the inverters by rating
    pv_curtail_yuan_per_kwh: float = 0.03
    pv_curtail_quad_yuan_per_kwh: float = 0.05
    #: reduction past the call's ceiling, and fleet power past the rebound limit after the
    #: call: far above any energy price (so the plan never over-sheds to cut the bill), far
    #: below the shortfall (the call comes first when they conflict)
    over_delivery_yuan_per_kwh: float = 10.0
    rebound_yuan_per_kwh: float = 10.0


@dataclass(frozen=True)
class HorizonData:
    """Data of one solve: ``baseline_kw`` (devices x intervals), ``price_yuan_per_kwh``
    (intervals), the call, the first interval that may still change (``now_index``; earlier
    intervals are in the past and pinned at the baseline)."""

    baseline_kw: np.ndarray
    price_yuan_per_kwh: np.ndarray
    call: EventCall | None = None
    now_index: int = 0
    interval_minutes: int = field(kw_only=True)


def _bad(msg: str) -> ValidationError:
    return ValidationError(msg)


def validate_device(d: FleetDevice, n: int) -> None:
    """Check one device's limits, parameters and state; raise ``ValidationError``."""
    tag = f"device {d.device_id} ({d.kind.value})"
    want = _PARAMS_TYPE[d.kind]
    if not isinstance(d.params, want):
        raise _bad(f"{tag}: params must be {want.__name__}, got {type(d.params).__name__}")
    for name in ("rated_power_kw", "min_setpoint_kw", "max_setpoint_kw", "preference_weight",
                 "flex_scale", "shed_used_kwh", "debt_kwh"):
        if not np.isfinite(getattr(d, name)):
            raise _bad(f"{tag}: {name} is not a finite number")
    try:
        check_limits(d.kind, d.rated_power_kw, d.min_setpoint_kw, d.max_setpoint_kw, d.params)
    except ValueError as exc:
        raise _bad(f"{tag}: {exc}") from None
    if d.preference_weight <= 0:
        raise _bad(f"{tag}: preference_weight must be > 0")
    if not 0.0 <= d.flex_scale <= 1.0:
        raise _bad(f"{tag}: flex_scale must be in [0, 1], got {d.flex_scale}")
    if d.shed_used_kwh < 0 or d.debt_kwh < 0:
        raise _bad(f"{tag}: shed_used_kwh and debt_kwh must be >= 0")
    if not all(np.isfinite(v) and v >= 0 for v in d.shed_history_kwh):
        raise _bad(f"{tag}: shed_history_kwh must be finite and >= 0")
    if d.kind is DeviceKind.BATTERY:
        p = d.params
        assert isinstance(p, BatteryParams)
        if d.soc_pct is None or not np.isfinite(d.soc_pct):
            raise _bad(f"{tag}: battery needs a finite soc_pct")
        if not 0.0 <= d.soc_pct <= 100.0:
            raise _bad(f"{tag}: soc_pct={d.soc_pct} outside 0..100")
        term = d.terminal_soc_pct
        if term is not None and not (np.isfinite(term) and p.soc_min_pct <= term <= p.soc_max_pct):
            raise _bad(
                f"{tag}: terminal_soc_pct={term} outside [{p.soc_min_pct}, {p.soc_max_pct}]"
            )
    elif d.kind is DeviceKind.EV_CHARGER:
        p = d.params
        assert isinstance(p, EvChargerParams)
        if len(d.sessions) > p.connectors:
            raise _bad(f"{tag}: {len(d.sessions)} sessions but only {p.connectors} connectors")
        for s in d.sessions:
            if not (np.isfinite(s.energy_kwh) and s.energy_kwh >= 0):
                raise _bad(f"{tag}: session energy_kwh must be finite and >= 0")
            if not 0 <= s.arrival < s.departure:
                raise _bad(f"{tag}: session needs 0 <= arrival < departure, got "
                           f"{s.arrival}..{s.departure}")
    elif d.kind is DeviceKind.V2G_CHARGER:
        _validate_v2g(d, tag)
    if d.kind not in (DeviceKind.BATTERY, DeviceKind.V2G_CHARGER) and d.soc_pct is not None:
        raise _bad(f"{tag}: soc_pct is only for batteries and V2G chargers")
    if d.discharge_cap_kw and (d.kind not in (DeviceKind.BATTERY, DeviceKind.V2G_CHARGER)
                               or len(d.discharge_cap_kw) != n
                               or not all(np.isfinite(v) and v >= 0 for v in d.discharge_cap_kw)):
        raise _bad(f"{tag}: discharge_cap_kw must be a battery's or V2G charger's {n} finite "
                   "values >= 0")


def _validate_v2g(d: FleetDevice, tag: str) -> None:
    """A V2G charger's car: at most one session, with the car's state of charge and an ask
    within the car's range."""
    p = d.params
    assert isinstance(p, V2gChargerParams)
    if len(d.sessions) > 1:
        raise _bad(f"{tag}: {len(d.sessions)} sessions but a V2G charger has one connector")
    for s in d.sessions:
        if not 0 <= s.arrival < s.departure:
            raise _bad(f"{tag}: session needs 0 <= arrival < departure, got "
                       f"{s.arrival}..{s.departure}")
        if s.energy_kwh != 0:
            raise _bad(f"{tag}: a V2G session carries no energy_kwh (got {s.energy_kwh}); the "
                       "driver's ask is terminal_soc_pct, the state of charge at departure")
        if d.soc_pct is None or not (np.isfinite(d.soc_pct) and 0.0 <= d.soc_pct <= 100.0):
            raise _bad(f"{tag}: a connected car needs its state of charge soc_pct in 0..100, "
                       f"got {d.soc_pct}")
    ask = d.terminal_soc_pct
    if ask is not None and not (np.isfinite(ask) and p.soc_min_pct <= ask <= p.soc_max_pct):
        raise _bad(f"{tag}: the departure ask terminal_soc_pct={ask} is outside the car's "
                   f"range [{p.soc_min_pct}, {p.soc_max_pct}]")


def validate(devices: Sequence[FleetDevice], data: HorizonData, n: int) -> None:
    """Check a whole request; raise ``ValidationError`` with the first problem found."""
    if not devices:
        raise _bad("the fleet is empty")
    ids = [d.device_id for d in devices]
    if len(set(ids)) != len(ids):
        raise _bad("device ids are not unique")
    for d in devices:
        validate_device(d, n)
    base = np.asarray(data.baseline_kw, dtype=float)
    if base.shape != (len(devices), n):
        raise _bad(f"baseline_kw must have shape ({len(devices)}, {n}), got {base.shape}")
    bad = ~np.isfinite(base)
    if bad.any():
        i, t = np.argwhere(bad)[0]
        raise _bad(f"baseline_kw has NaN/inf (device {devices[i].device_id}, interval {t})")
    price = np.asarray(data.price_yuan_per_kwh, dtype=float)
    if price.shape != (n,):
        raise _bad(f"price_yuan_per_kwh must have {n} values, got shape {price.shape}")
    if not np.isfinite(price).all():
        raise _bad(f"price_yuan_per_kwh has NaN/inf at interval {int(np.argmin(np.isfinite(price)))}")
    if not 0 <= data.now_index < n:
        raise _bad(f"now_index={data.now_index} outside the horizon of {n} intervals")
    c = data.call
    if c is not None:
        if c.end <= c.start:
            raise _bad(f"event window is empty: start={c.start} end={c.end}")
        if c.start < data.now_index:
            raise _bad(
                f"call starts in the past (interval {c.start}, now is interval {data.now_index})"
            )
        if c.end > n:
            raise _bad(f"call ends after the horizon (interval {c.end} > {n})")
        red = np.asarray(c.reduction_kw, dtype=float)
        if red.ndim > 1 or (red.ndim == 1 and red.shape[0] != c.end - c.start):
            raise _bad(f"reduction_kw must be a scalar or {c.end - c.start} values")
        if not np.isfinite(red).all() or (red < 0).any():
            raise _bad("reduction_kw must be finite and >= 0")
        if c.ceiling_kw is not None:
            cap = np.asarray(c.ceiling_kw, dtype=float)
            if cap.ndim > 1 or (cap.ndim == 1 and cap.shape[0] != c.end - c.start):
                raise _bad(f"ceiling_kw must be a scalar or {c.end - c.start} values")
            if not np.isfinite(cap).all() or (cap < red).any():
                raise _bad("ceiling_kw must be finite and >= reduction_kw")
        if c.direction_sign not in (1.0, -1.0):
            raise _bad(f"direction_sign must be +1 or -1, got {c.direction_sign}")
        if c.rebound_max_pct is not None and not (
                np.isfinite(c.rebound_max_pct) and c.rebound_max_pct >= 0):
            raise _bad(f"rebound_max_pct must be finite and >= 0, got {c.rebound_max_pct}")
