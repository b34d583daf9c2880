"""Request and response models of the JSON API (pydantic; requests forbid unknown fields).

The grid-call, event, bid and probe models live in the domain layer (:mod:`vpp.domain`, which
the daemon uses too) and are re-exported here, so the API's models are all found in one place.

Units are in the field names (``_kw``, ``_kwh``, ``_yuan``, ``_fen``); timestamps are ISO 8601
with an offset (naive timestamps are refused); money is integer fen plus a display string.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BeforeValidator, Field, field_validator, model_validator

from vpp.config import DeviceSpec
from vpp.domain.base import InModel as _In
from vpp.domain.base import OutModel as _Out
from vpp.domain.grid_calls import BidOut as BidOut
from vpp.domain.grid_calls import BidOwnerShareOut as BidOwnerShareOut
from vpp.domain.grid_calls import CallDecision as CallDecision
from vpp.domain.grid_calls import EventOut as EventOut
from vpp.domain.grid_calls import EventStatus
from vpp.domain.grid_calls import ExcludedDeviceOut as ExcludedDeviceOut
from vpp.domain.grid_calls import GridCallIn as GridCallIn
from vpp.domain.grid_calls import LivePoint as LivePoint
from vpp.domain.probes import ProbeProgress as ProbeProgress


# ---------------------------------------------------------------------------------- generic
class Health(_Out):
    status: Literal["ok", "degraded"]
    version: str
    database: str
    loops: dict[str, str]


class Me(_Out):
    role: str
    owner_id: int | None
    owner_name: str | None
    token_id: int


class LoopOut(_Out):
    name: str
    period_s: float
    state: str
    iterations: int
    failures: int
    consecutive_failures: int
    last_error: str | None
    last_ok_at: datetime | None
    last_step_seconds: float | None


class ErrorBody(_Out):
    code: str
    message: str


class ErrorOut(_Out):
    error: ErrorBody


# ---------------------------------------------------------------------------------- owners
class OwnerCreate(_In):
    name: str = Field(..., min_length=1, max_length=200)
    contact: str = Field("", max_length=200)


class OwnerOut(_Out):
    id: int
    name: str
    contact: str
    created_at: datetime


# ---------------------------------------------------------------------------------- gateways
class GatewayEnrol(_In):
    """Register a Modbus TCP gateway and the devices behind it, then probe it in the background.
    ``owner_id`` is for operators enrolling on an owner's behalf; owners enrol for themselves."""

    owner_id: int | None = Field(None, ge=1, le=2**31 - 1)
    site: str = Field(..., min_length=1, max_length=200)
    region: str = Field("", max_length=100)
    host: str = Field(..., min_length=1, max_length=255)
    port: int = Field(502, ge=1, le=65535)
    devices: list[DeviceSpec] = Field(..., min_length=1, max_length=255)


class GatewayOut(_Out):
    id: int
    owner_id: int
    site_id: int
    host: str
    port: int
    enrolment_state: str
    last_probe_at: datetime | None
    last_error: str | None
    created_at: datetime
    device_ids: list[int] = Field(default_factory=list)
    probe: ProbeProgress | None = None


# ---------------------------------------------------------------------------------- devices
class DeviceOut(_Out):
    id: int
    name: str
    kind: str
    owner_id: int
    site_id: int
    gateway_id: int
    unit_id: int
    profile: str
    rated_power_kw: float
    min_setpoint_kw: float
    max_setpoint_kw: float
    params: dict[str, Any]
    preferences: dict[str, Any]
    status: str
    status_detail: str | None
    power_kw: float | None = None
    soc_pct: float | None = None
    last_seen_at: datetime | None = None
    setpoint_kw: float | None = None


class Preferences(_In):
    """The owner's preferences; only the fields for the device's kind are accepted.

    ``participate=false`` keeps the device out of every plan, until the owner sets it back;
    ``opt_out_until`` (ISO 8601 with its offset, after now and at most 7 days ahead) keeps it out
    of the events that start before then, and it takes part again by itself (``null`` ends the
    opt-out now). Comfort band (commercial buildings) must lie inside the device's declared band;
    EV departure is local ``HH:MM`` with the energy or state of charge needed by then; batteries
    keep ``reserve_soc_pct`` in reserve.
    """

    participate: bool | None = None
    opt_out_until: AwareDatetime | None = Field(
        None, description="leave the device out of events starting before this time (aware, "
                          "after now, at most 7 days ahead; 400 otherwise)")
    comfort_min_c: float | None = Field(None, ge=10, le=35)
    comfort_max_c: float | None = Field(None, ge=10, le=35)
    ev_departure: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    ev_energy_needed_kwh: float | None = Field(None, ge=0, le=10_000)
    reserve_soc_pct: float | None = Field(None, ge=0, le=100)
    max_shed_minutes: int | None = Field(None, gt=0, le=24 * 60)

    @model_validator(mode="after")
    def _band(self) -> Preferences:
        if (self.comfort_min_c is not None and self.comfort_max_c is not None
                and self.comfort_min_c >= self.comfort_max_c):
            raise ValueError(f"comfort band inverted: {self.comfort_min_c} >= {self.comfort_max_c}")
        return self


# ---------------------------------------------------------------------------------- telemetry
def _iso_timestamp(v: Any) -> Any:
    """A query timestamp is ISO 8601 (``format: date-time``); pydantic alone would also read
    ``0.5`` as seconds since 1970."""
    if isinstance(v, str):
        try:
            return datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(f"not an ISO 8601 timestamp: {v[:40]!r}") from None
    return v


QueryTimestamp = Annotated[AwareDatetime, BeforeValidator(_iso_timestamp)]

#: the longest telemetry window one request may ask for
TELEMETRY_MAX_SPAN = timedelta(days=31)


class TelemetryQuery(_In):
    """A window ``[start, end)`` of readings, newest ``limit`` of them. ``end`` defaults to now,
    ``start`` to an hour before ``end``; ``start`` must be before ``end`` and the window at most
    31 days (400 otherwise: JSON Schema cannot compare two parameters)."""

    start: QueryTimestamp | None = Field(None, description="window start (default: end - 1 h)")
    end: QueryTimestamp | None = Field(
        None, description="window end, after start and at most 31 days after it (default: now)")
    limit: int = Field(2000, ge=1, le=20_000)


class TelemetryPoint(_Out):
    ts: datetime
    power_kw: float | None
    energy_kwh: float | None
    soc_pct: float | None
    available: bool


# ---------------------------------------------------------------------------------- grid calls
class EventsQuery(_In):
    status: EventStatus | None = None
    limit: int = Field(100, ge=1, le=1000)


class DeliveryInterval(_Out):
    interval_start: datetime
    requested_kw: float
    declared_kw: float
    target_kw: float | None
    baseline_kw: float | None
    metered_kw: float | None
    delivered_kw: float | None


class DeliveryOut(_Out):
    event_id: int
    status: str
    requested_kw: float
    declared_kw: float
    delivered_kw: float | None  # mean over the intervals measured so far
    performance_pct: float | None
    measured_by: str  # "settlement vN (...)" once settled, else live against the fixed baselines
    setpoints: dict[str, int]  # status -> count, of the current plan
    intervals: list[DeliveryInterval]  # every interval of the event, start to end


class PlanOut(_Out):
    id: int
    event_id: int | None
    created_at: datetime
    horizon_start: datetime
    interval_minutes: int
    status: str
    objective: float | None
    shortfall_kw: float
    solve_seconds: float | None
    reason: str | None = None
    devices: int = 0


class SettlementOut(_Out):
    id: int
    event_id: int
    version: int
    created_at: datetime
    baseline_kwh: float
    metered_kwh: float
    response_kwh: float
    declared_kw: float
    performance_ratio: float
    revenue_fen: int
    penalty_fen: int
    fee_fen: int
    status: str


class PayoutOut(_Out):
    id: int
    settlement_id: int
    event_id: int
    owner_id: int
    amount_fen: int
    amount_yuan: str
    contribution_kwh: float
    created_at: datetime


# ---------------------------------------------------------------------------------- fleet view
class FleetStatus(_Out):
    now: datetime
    devices_total: int
    devices_online: int
    by_status: dict[str, int]
    fleet_power_kw: float | None
    active_event: EventOut | None
    baseline_kw: float | None
    target_kw: float | None
    delivered_kw: float | None
    series: list[LivePoint]


class SeriesQuery(_In):
    points: int = Field(300, ge=1, le=5000)

    @field_validator("points", mode="before")
    @classmethod
    def _int(cls, v: Any) -> Any:
        return int(v) if isinstance(v, str) and v.isdigit() else v
