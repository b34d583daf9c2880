"""Grid calls and what becomes of them: the call as received, the intake's decision, the event
and bid views, the live delivery points.

Shared by :mod:`vpp.daemon` (which produces them) and :mod:`vpp.api` (which serves them); see
:mod:`vpp.domain` for the layering. kW, yuan/kWh, fen as the field names say; timestamps aware.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, Field, model_validator

from vpp.domain.base import InModel, OutModel


class EventStatus(StrEnum):
    """A grid event's status, in the order an event moves through them (``rejected`` and
    ``cancelled`` end it early; ``unsettled``: finished, but settlement could not be made)."""

    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ACTIVE = "active"
    COMPLETED = "completed"
    SETTLED = "settled"
    UNSETTLED = "unsettled"
    CANCELLED = "cancelled"


#: Events the control loop plans and dispatches (accepted, not yet finished).
OPEN_EVENT_STATUSES = (EventStatus.ACCEPTED, EventStatus.ACTIVE)


class GridCallIn(InModel):
    """A call from the grid: a day-ahead invitation or a real-time call.

    The window must be on market intervals; ``requested_kw`` is the reduction (peak shaving) or
    increase (valley filling) asked for; ``price_cap_yuan_per_kwh`` caps our bid price where the
    programme lets the grid set one. Notice is counted from when the call is received.
    """

    external_id: str = Field(..., min_length=1, max_length=200, pattern=r"^[\w.:\-/]+$",
                             description="the grid's own id for the call: resending it is safe")
    event_type: Literal["day_ahead", "real_time"] = Field(
        ..., description="the programme's product (its notice, windows, prices)")
    direction: Literal["peak_shaving", "valley_filling"] = Field(
        "peak_shaving", description="peak_shaving (reduce load below the baseline) or "
        "valley_filling (raise it above the baseline), where the programme has that product")
    start: AwareDatetime = Field(..., description="on a market interval, with its UTC offset")
    end: AwareDatetime = Field(..., description="on a market interval, after start")
    requested_kw: float = Field(..., gt=0, le=10_000_000,
                                description="kW asked for; the declared offer never exceeds it")
    price_cap_yuan_per_kwh: Decimal | None = Field(
        None, ge=0, le=1000, max_digits=12, decimal_places=4,
        description="yuan/kWh; the bid is at most the lower of this and the programme's cap")
    programme: str | None = Field(None, min_length=1, max_length=100,
                                  description="programme name (default: [bidding] programme)")

    @model_validator(mode="after")
    def _window(self) -> GridCallIn:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) must be after start "
                             f"({self.start.isoformat()})")
        return self


class CallDecision(OutModel):
    """What intake made of a call: the event's status and, when accepted, the offer (kW at
    yuan/kWh); ``reason`` says why not; ``duplicate``: the stored decision for a resent call."""

    event_id: int
    external_id: str
    accepted: bool
    status: EventStatus
    declared_kw: float
    price_yuan_per_kwh: Decimal | None
    reason: str | None = None
    duplicate: bool = False


class ExcludedDeviceOut(OutModel):
    """A device taken out of an event's plan for the rest of the event (it overrode its
    setpoint): powers in kW, times aware."""

    device_id: int
    reason: str
    at: datetime
    kind: str
    setpoint_kw: float
    limit_kw: float
    measured_kw: float
    tolerance_kw: float
    reading_at: datetime


class BatteryReserveOut(OutModel):
    """What one battery holds for a day-ahead call (:mod:`vpp.scheduler.tou`): its state of
    charge at the call's start (%) and the energy above its floor (kWh stored)."""

    device_id: int
    target_soc_pct: float
    reserve_kwh: float


class EventOut(OutModel):
    """A grid event as stored, with its offer, delivery and revenue once known, and the
    batteries' reserve held for it (``battery_reserve``, day-ahead calls)."""

    id: int
    external_id: str
    source: str
    event_type: str
    direction: str
    programme: str
    start: datetime
    end: datetime
    requested_kw: float
    price_cap_yuan_per_kwh: Decimal | None
    status: EventStatus
    received_at: datetime
    declared_kw: float | None = None
    delivered_kw: float | None = None
    revenue_fen: int | None = None
    revenue_yuan: str | None = None
    excluded_devices: list[ExcludedDeviceOut] = Field(default_factory=list)
    battery_reserve: list[BatteryReserveOut] = Field(default_factory=list)


class BidOwnerShareOut(OutModel):
    """One owner's part of a bid (``bid_owner_share``): the kW it is held to, its fraction of
    the bid (0..1), the offer rule's binding limit and figures (None where the rule set none)."""

    owner_id: int
    declared_kw: float
    share_fraction: float
    limited_by: str
    expected_response_kw: float | None
    penalty_probability: float | None
    envelope_kw: float | None


class BidOut(OutModel):
    """Our offer for an event (declared kW at yuan/kWh), its owners' shares (``owners``) and how
    it was made (``detail``)."""

    id: int
    event_id: int
    declared_kw: float
    price_yuan_per_kwh: Decimal
    status: str
    created_at: datetime
    detail: dict[str, Any]
    owners: list[BidOwnerShareOut] = Field(default_factory=list)


class LivePoint(OutModel):
    """One control-loop sample: the fleet's measured kW beside the event's baseline and target."""

    ts: datetime
    fleet_kw: float
    baseline_kw: float | None
    target_kw: float | None
