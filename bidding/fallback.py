"""The offer of a fleet without the history an offer is normally made from: a declared share of
what it can deliver on average over the event, with the rule and the reason in the bid.

:func:`bidding.workflow.bid_event` needs load quantiles (the daemon's forecast or metered
days); a fleet enrolled today has neither. Declaring its nameplate then is what cost the
first-run owner 2,375.98 yuan: 15 MW declared for 100 buildings that could hold about a tenth
of it, comfort protection took over within minutes, delivery fell to 34%, below the band. So:

* **Dependable envelope** (:func:`held_kw`), per device, its average reduction over the event
  (the hunan-2026 band settles on the event basis: response = energy over the window /
  duration) -- :func:`bidding.capability.device_capability_kw` (battery energy at full usable
  charge); a building or industrial load that can shed for ``h`` of the event's ``H`` minutes
  (``max_shed_minutes``, ``max_curtail_minutes``) counts its shed x ``h/H``, the average a fleet
  of them delivers when the plan staggers their sheds (the scheduler's duration limit is the
  same energy, ``max_kw x minutes``: :mod:`vpp.scheduler.shed`); further limited by
  - buildings: the comfort band. With no indoor temperature known the building is taken at
    the middle of its band, so it may drift half the band; the shed held for the whole event
    that keeps it there is the planner's first-order RC estimate
    (:func:`forecasting.flexibility.comfort_shed_kw`: ``P <= band/2 / (COP R (1 - e^(-h/RC)))``,
    R and C as declared, else sized from the rated power,
    :meth:`vpp.device_kinds.CommercialBuildingParams.thermal`; :data:`ASSUMED_COP` = 3, a
    typical VRF/chiller figure: a higher true COP makes the building hold less, which the
    declared fraction absorbs);
  - batteries: the energy above the minimum state of charge at the latest reading
    (``soc_pct``), or, unknown, half the usable window;
  - EV chargers: a charger sheds only while a vehicle charges: its charge (and V2G) power
    times the share of posts in use (:data:`bidding.capability.DEFAULT_AVAILABILITY`, 0.5);
  and each kind times its season's availability (air conditioning sheds little in spring);
  per owner, at most ``owner_cap_kw`` (the export rule, :mod:`bidding.export_rule`, from the
  owner's last metered interval: what its site imports, else its own load).
  A valley-filling product counts each device's rise instead (:func:`raise_kw`: a battery's
  charge into the room below its maximum state of charge; the other kinds declare none).
* **Declared**: ``fraction_pct`` (``[bidding] no_history_fraction_pct``, default 40%) of that
  envelope per owner, capped at the grid's request, then the programme's minimum (a small
  fleet's call is declined with that reason, never padded to nameplate). With the hunan-2026
  band (paid 50-120% of declared), 40% of the envelope is penalised only if the fleet delivers
  less than 20% of what it is estimated to hold, and is paid in full up to 48% of it.

Pure computation: no database; the daemon's intake reads the rows and writes the bid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from bidding.capability import DEFAULT_AVAILABILITY, device_capability_kw
from bidding.offer import CapacityChoice, OwnerOffer, aggregate_offers, cap_owner_offers
from bidding.programme import Product, Programme
from forecasting.baselines import BaselineSpec, day_type_name
from forecasting.flexibility import ASSUMED_HVAC_COP, comfort_headroom_c, comfort_shed_kw
from vpp.calendar import Season
from vpp.device_kinds import (
    BatteryParams,
    CommercialBuildingParams,
    DeviceKind,
    EvChargerParams,
    IndustrialLoadParams,
    parse_params,
)

#: Electric-to-thermal ratio assumed for a building's HVAC (kW of heat per kW electric): the
#: planner's (:data:`forecasting.flexibility.ASSUMED_HVAC_COP`).
ASSUMED_COP = ASSUMED_HVAC_COP

#: Share of a battery's usable window assumed charged when no reading says otherwise.
UNKNOWN_SOC_SHARE = 0.5


class OwnedDevice(Protocol):
    id: int | None
    owner_id: int
    kind: str
    params: dict[str, Any]
    rated_power_kw: float
    min_setpoint_kw: float
    max_setpoint_kw: float


@dataclass(frozen=True)
class HistoryGap:
    """Why there is no offer from history: days the programme's baseline needs (``needed``) of
    the event day's type (``day_type``), days of metered history held, and the message of
    :class:`vpp.errors.NoHistoryError`."""

    needed_days: int
    held_days: int
    day_type: str
    reason: str


@dataclass(frozen=True)
class NoHistoryOffer:
    declared_kw: float
    price_yuan_per_kwh: Decimal
    owner_declared_kw: dict[int, float]
    detail: dict[str, Any] = field(default_factory=dict)  # for Bid.detail (JSON)


def needed_days(spec: BaselineSpec, working_day: bool) -> int:
    """Days of history the programme's baseline method uses for an event on such a day."""
    if spec.method == "similar_days":
        return spec.n_working_days if working_day else spec.n_nonworking_days
    if spec.method == "x_of_y":
        return spec.y
    return spec.lookback_days


def history_gap(spec: BaselineSpec, working_day: bool, event_start: datetime,
                first_reading: datetime | None, reason: str) -> HistoryGap:
    """The gap for an event starting at ``event_start`` on a (non-)working day: whole days of
    metered history since the fleet's ``first_reading`` (None: none at all)."""
    held = 0 if first_reading is None else max((event_start - first_reading).days, 0)
    return HistoryGap(needed_days(spec, working_day), held, day_type_name(working_day), reason)


def _shed_minutes(p: object) -> float | None:
    """How long a building or industrial load may shed (minutes); None for other kinds."""
    if isinstance(p, CommercialBuildingParams):
        return float(p.max_shed_minutes)
    if isinstance(p, IndustrialLoadParams):
        return float(p.max_curtail_minutes)
    return None


def raise_kw(device: OwnedDevice, duration_h: float, soc_pct: float | None = None) -> float:
    """Dependable kW the device can hold ABOVE its load for ``duration_h`` hours (valley
    filling): a battery's charge (up to its maximum setpoint) into the room below its maximum
    state of charge at ``soc_pct`` (unknown: the uncharged share of the window,
    :data:`UNKNOWN_SOC_SHARE`); nothing for the other kinds, whose parameters declare no rise
    (an EV charger's cars are not known here; a load rises only to make up a shed)."""
    if duration_h <= 0:
        raise ValueError("duration_h must be positive")
    p = parse_params(DeviceKind(device.kind), device.params)
    if not isinstance(p, BatteryParams):
        return 0.0
    window = (p.soc_max_pct - p.soc_min_pct) / 100
    room = (window * (1 - UNKNOWN_SOC_SHARE) if soc_pct is None
            else max(p.soc_max_pct - max(soc_pct, p.soc_min_pct), 0.0) / 100)
    return min(max(device.max_setpoint_kw, 0.0),
               p.capacity_kwh * room / p.charge_efficiency / duration_h)


def held_kw(device: OwnedDevice, duration_h: float, season: Season,
            soc_pct: float | None = None, direction: str = "peak_shaving") -> float:
    """Dependable kW the device delivers on average over an event of ``duration_h`` hours in
    ``season`` (module docstring: a shed shorter than the event counts pro rata; valley
    filling: :func:`raise_kw`)."""
    if duration_h <= 0:
        raise ValueError("duration_h must be positive")
    kind = DeviceKind(device.kind)
    if direction == "valley_filling":
        return raise_kw(device, duration_h, soc_pct) * DEFAULT_AVAILABILITY[season].get(kind, 1.0)
    p = parse_params(kind, device.params)
    shed_minutes = _shed_minutes(p)
    hold_h = duration_h if shed_minutes is None else min(duration_h, shed_minutes / 60)
    kw = device_capability_kw(device, hold_h) * hold_h / duration_h  # type: ignore[arg-type]
    if isinstance(p, CommercialBuildingParams):
        kw = min(kw, comfort_shed_kw(p.thermal(device.rated_power_kw), duration_h,
                                     comfort_headroom_c(p), ASSUMED_COP))
    elif isinstance(p, BatteryParams):
        window = (p.soc_max_pct - p.soc_min_pct) / 100
        above_min = (window * UNKNOWN_SOC_SHARE if soc_pct is None
                     else max(min(soc_pct, p.soc_max_pct) - p.soc_min_pct, 0.0) / 100)
        kw = min(kw, p.capacity_kwh * above_min * p.discharge_efficiency / duration_h)
    elif isinstance(p, EvChargerParams):
        pass  # in use for part of the time only: the availability factor below
    return max(kw, 0.0) * DEFAULT_AVAILABILITY[season].get(kind, 1.0)


def rule_text(gap: HistoryGap, fraction_pct: float) -> str:
    return (f"no history: {gap.needed_days} {gap.day_type}s needed, {gap.held_days} held; "
            f"declared {fraction_pct:g}% of the dependable envelope")


def no_history_offer(
    devices: Sequence[OwnedDevice], programme: Programme, product: Product, *,
    start: datetime, end: datetime, season: Season, requested_kw: float,
    price_yuan_per_kwh: Decimal, fraction_pct: float, gap: HistoryGap,
    soc_pct: Mapping[int, float] | None = None,
    owner_cap_kw: Mapping[int, float] | None = None,
) -> NoHistoryOffer:
    """The offer for ``devices`` (participating ones, the caller's filter) over ``start..end``
    (aware) in ``season`` (the market calendar's, :meth:`vpp.calendar.MarketCalendar.season_of`
    of the event's day). Raises :class:`vpp.errors.ValidationError`
    with the reason when it is not admissible (nothing to offer, below the programme's
    minimum)."""
    if not 0 < fraction_pct <= 100:
        raise ValueError(f"fraction_pct must be in (0, 100], got {fraction_pct}")
    hours = (end - start).total_seconds() / 3600
    soc = soc_pct or {}
    envelope: dict[int, float] = {}
    by_kind: dict[str, float] = {}
    for d in devices:
        kw = held_kw(d, hours, season, soc.get(int(d.id or 0)), product.direction.value)
        envelope[d.owner_id] = envelope.get(d.owner_id, 0.0) + kw
        by_kind[d.kind] = by_kind.get(d.kind, 0.0) + kw
    for o, cap in (owner_cap_kw or {}).items():
        if o in envelope:
            envelope[o] = min(envelope[o], max(cap, 0.0))
    f = fraction_pct / 100
    rule = rule_text(gap, fraction_pct)
    offers = [OwnerOffer(o, round(env * f, 3), CapacityChoice(
        declared_kw=round(env * f, 3), expected_value_yuan_per_h=0.0, expected_response_kw=env,
        p_penalty=0.0, limited_by="no history"))
        for o, env in sorted(envelope.items())]
    offers, capped_from = cap_owner_offers(offers, requested_kw)
    vpp = aggregate_offers(offers, product, price_yuan_per_kwh,
                           min_declared_kw=programme.rules.min_declared_kw)
    detail = {
        "rule": rule, "reason": gap.reason, "event_type": vpp.event_type,
        "direction": vpp.direction, "fraction_pct": fraction_pct,
        "history": {"needed_days": gap.needed_days, "held_days": gap.held_days,
                    "day_type": gap.day_type},
        "owners": [{"owner_id": o.owner_id, "declared_kw": o.declared_kw,
                    "share": vpp.shares.get(o.owner_id, 0.0),
                    "envelope_kw": round(envelope[o.owner_id], 3), "limited_by": rule}
                   for o in vpp.owners],
        "envelope_kw": round(sum(envelope.values()), 3),
        "envelope_by_kind_kw": {k: round(v, 3) for k, v in sorted(by_kind.items())},
        "season": season, "assumed_cop": ASSUMED_COP,
        "requested_kw": requested_kw, "capped_from_kw": capped_from,
    }
    return NoHistoryOffer(declared_kw=vpp.declared_kw, price_yuan_per_kwh=vpp.price_yuan_per_kwh,
                          owner_declared_kw=vpp.owner_declared_kw(), detail=detail)
