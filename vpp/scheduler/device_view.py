"""The scheduler's view of one device (:class:`FleetDevice`): one rule for the daemon's planner
and the season simulator.

From what is enrolled (kind, parameters, limits, owner), the device's live state and its
owner's preferences:

- buildings: the owner's comfort band and a shorter shed time narrow the parameters, and a
  full-depth shed (``max_shed_kw``) lasts no longer than the comfort band allows
  (:func:`comfort_limited`: the first-order RC estimate of
  :func:`forecasting.flexibility.comfort_shed_minutes` over half the band, whole minutes; R and
  C as the owner declared them, else sized from the rated power:
  :meth:`vpp.device_kinds.CommercialBuildingParams.thermal`), so
  the duration budget ``max_shed_kw x minutes`` of :mod:`vpp.scheduler.shed` and the
  envelope, and the rotation of sheds, shrink with a narrower band;
  industrial loads: a shorter curtailment time;
- batteries: the state of charge read now (clamped into the planning range; a battery without
  a reading cannot be planned), the owner's reserve raising the floor (never above the charge
  it has), and the same charge again at the horizon's end;
- EV chargers: the edge says which car is connected (the daemon from the owner's declared
  need and departure, :func:`ev_session_from_preferences`; the simulator from the cars it
  models); one session per charger, asking no more than the charger can deliver before the
  car leaves (98% of rated power over the intervals it stays within the horizon).
- V2G chargers: the car the charger reads (its state of charge) leaving as its owner declared,
  the ask its state of charge plus the declared need (:func:`vpp.scheduler.v2g.with_car`).

Powers in kW, energy in kWh, state of charge in percent, horizon indices in market intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from device_adapters.protocol import DeviceState
from forecasting.flexibility import comfort_headroom_c, comfort_shed_minutes
from vpp.device_kinds import (
    BatteryParams,
    CommercialBuildingParams,
    DeviceKind,
    IndustrialLoadParams,
)
from vpp.errors import ValidationError
from vpp.scheduler import v2g
from vpp.scheduler.inputs import EvSession, FleetDevice, Params

#: the share of a charger's rated power a session may be planned at (losses, ramping)
EV_REACH_SHARE = 0.98


def _narrowed(params: Params, prefs: Mapping[str, Any]) -> Params:
    """Buildings' and industrial loads' parameters narrowed by the owner's preferences."""
    if isinstance(params, CommercialBuildingParams):
        upd: dict[str, Any] = {k: prefs[k] for k in ("comfort_min_c", "comfort_max_c")
                               if k in prefs}
        if "max_shed_minutes" in prefs:
            upd["max_shed_minutes"] = min(params.max_shed_minutes, prefs["max_shed_minutes"])
        if upd:
            return CommercialBuildingParams.model_validate({**params.model_dump(), **upd})
    elif isinstance(params, IndustrialLoadParams) and "max_shed_minutes" in prefs:
        return IndustrialLoadParams.model_validate(
            {**params.model_dump(),
             "max_curtail_minutes": min(params.max_curtail_minutes, prefs["max_shed_minutes"])})
    return params


def comfort_limited(params: CommercialBuildingParams,
                    rated_power_kw: float) -> CommercialBuildingParams:
    """The parameters of a building of ``rated_power_kw`` with ``max_shed_minutes`` cut to the
    whole minutes a shed of ``max_shed_kw`` keeps the indoor temperature inside the comfort
    band (module docstring); a building whose band holds no full minute of it sheds nothing
    (``max_shed_kw`` 0)."""
    minutes = comfort_shed_minutes(params.thermal(rated_power_kw), params.max_shed_kw,
                                   comfort_headroom_c(params))
    if minutes >= params.max_shed_minutes:
        return params
    upd: dict[str, Any] = ({"max_shed_minutes": int(minutes)} if minutes >= 1
                           else {"max_shed_kw": 0.0})
    return CommercialBuildingParams.model_validate({**params.model_dump(), **upd})


def _battery(device_id: int, params: BatteryParams, state: DeviceState,
             prefs: Mapping[str, Any]) -> tuple[BatteryParams, float]:
    """The battery's parameters with the owner's reserve, and its state of charge (%)."""
    if state.soc_pct is None:
        raise ValidationError(f"device {device_id}: battery without a state of charge reading")
    soc = min(max(float(state.soc_pct), params.soc_min_pct), params.soc_max_pct)
    reserve = prefs.get("reserve_soc_pct")
    if reserve is not None:
        floor = min(float(reserve), soc)  # never plan below the owner's reserve
        if floor > params.soc_min_pct:
            params = BatteryParams.model_validate({**params.model_dump(), "soc_min_pct": floor})
    return params, soc


def _reachable(sessions: Sequence[EvSession], rated_power_kw: float, horizon_intervals: int,
               interval_minutes: int) -> tuple[EvSession, ...]:
    """The first session, its energy capped at what the charger can deliver in time."""
    for s in sessions:
        stay = min(s.departure, horizon_intervals) - s.arrival
        reach = rated_power_kw * max(stay, 0) * interval_minutes / 60 * EV_REACH_SHARE
        energy = min(s.energy_kwh, reach)
        if energy > 1e-3:
            return (EvSession(s.arrival, s.departure, float(energy)),)
    return ()


def scheduler_device(device_id: int, kind: DeviceKind, params: Params, *,
                     rated_power_kw: float, min_setpoint_kw: float, max_setpoint_kw: float,
                     owner: str, state: DeviceState, preferences: Mapping[str, Any],
                     sessions: Sequence[EvSession], horizon_intervals: int,
                     interval_minutes: int) -> FleetDevice:
    """The scheduler's view of one device (module docstring). Raises
    :class:`~vpp.errors.ValidationError` when the device cannot be planned."""
    params = _narrowed(params, preferences)
    if isinstance(params, CommercialBuildingParams):
        params = comfort_limited(params, rated_power_kw)
    soc = None
    if isinstance(params, BatteryParams):
        params, soc = _battery(device_id, params, state, preferences)
    ev: tuple[EvSession, ...] = ()
    if kind is DeviceKind.EV_CHARGER:
        ev = _reachable(sessions, rated_power_kw, horizon_intervals, interval_minutes)
    fd = FleetDevice(
        device_id=device_id, kind=kind, rated_power_kw=rated_power_kw,
        min_setpoint_kw=min_setpoint_kw, max_setpoint_kw=max_setpoint_kw, params=params,
        owner=owner, soc_pct=soc, terminal_soc_pct=soc, sessions=ev,
        available=bool(state.available))
    if kind is DeviceKind.V2G_CHARGER:  # the car the charger reads, leaving as declared
        fd = v2g.with_car(fd, state.soc_pct, sessions, horizon_intervals, interval_minutes)
    return fd


def ev_session_from_preferences(prefs: Mapping[str, Any], h0_local: datetime,
                                step: timedelta, offset: int) -> tuple[EvSession, ...]:
    """The car an owner declared (``ev_energy_needed_kwh``, ``ev_departure`` "HH:MM" local,
    the next such time after ``h0_local``), from horizon interval ``offset`` (the current one)."""
    need = prefs.get("ev_energy_needed_kwh")
    if not need:
        return ()
    hh, mm = (int(x) for x in str(prefs.get("ev_departure", "23:59")).split(":"))
    dep = h0_local.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if dep <= h0_local:
        dep += timedelta(days=1)
    departure = max(1, math.ceil((dep - h0_local) / step))
    return (EvSession(offset, offset + departure, float(need)),)
