"""Charging profiles for OCPP 1.6J and 2.0.1 (pure): the daemon's power limit on one connector
as a ``SetChargingProfile`` payload, and the ``ClearChargingProfile`` that removes it.

A limit is one schedule period in W (``chargingRateUnit = W``), ``Absolute`` from the moment it
is sent, ending after ``validity_s`` twice over: the schedule's ``duration`` and the profile's
``validTo``. Past either the charger is back to its own default, so a charger the daemon stops
talking to falls back by itself (the OCPP counterpart of a Modbus watchdog).

Purpose: ``TxProfile`` (bound to the running transaction) while one runs on the connector, else
``TxDefaultProfile`` (applies to the connector's next transactions); both versions name them
alike (1.6J ``ChargingProfilePurposeType``, 2.0.1 ``ChargingProfilePurposeEnumType``). The same
profile id per connector, so each new limit replaces the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ocpp.v16 import call as call16
from ocpp.v16 import datatypes as dt16
from ocpp.v16 import enums as en16
from ocpp.v201 import call as call201
from ocpp.v201 import datatypes as dt201
from ocpp.v201 import enums as en201

#: profile ids of the daemon's limits: this plus the connector id (distinct from a charger's own)
PROFILE_ID_BASE = 7_340_000


@dataclass(frozen=True)
class LimitRequest:
    """The daemon's limit for one connector: W (>= 0), from ``start`` for ``validity_s``."""

    connector_id: int
    limit_w: float
    start: datetime
    validity_s: int
    stack_level: int
    transaction_id: str | None

    @property
    def profile_id(self) -> int:
        return PROFILE_ID_BASE + self.connector_id

    @property
    def valid_to(self) -> datetime:
        return self.start + timedelta(seconds=self.validity_s)


def ocpp_time(ts: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, to the second (as chargers expect)."""
    return ts.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def set_profile_16(req: LimitRequest) -> call16.SetChargingProfile:
    tx = req.transaction_id
    purpose = (en16.ChargingProfilePurposeType.tx_profile if tx is not None
               else en16.ChargingProfilePurposeType.tx_default_profile)
    return call16.SetChargingProfile(
        connector_id=req.connector_id,
        cs_charging_profiles=dt16.ChargingProfile(
            charging_profile_id=req.profile_id, stack_level=req.stack_level,
            charging_profile_purpose=purpose,
            charging_profile_kind=en16.ChargingProfileKindType.absolute,
            transaction_id=int(tx) if tx is not None else None,
            valid_to=ocpp_time(req.valid_to),
            charging_schedule=dt16.ChargingSchedule(
                charging_rate_unit=en16.ChargingRateUnitType.watts,
                duration=req.validity_s, start_schedule=ocpp_time(req.start),
                charging_schedule_period=[dt16.ChargingSchedulePeriod(
                    start_period=0, limit=round(req.limit_w, 1))])))


def clear_profile_16(connector_id: int) -> call16.ClearChargingProfile:
    return call16.ClearChargingProfile(id=PROFILE_ID_BASE + connector_id)


def set_profile_201(req: LimitRequest) -> call201.SetChargingProfile:
    tx = req.transaction_id
    purpose = (en201.ChargingProfilePurposeEnumType.tx_profile if tx is not None
               else en201.ChargingProfilePurposeEnumType.tx_default_profile)
    return call201.SetChargingProfile(
        evse_id=req.connector_id,
        charging_profile=dt201.ChargingProfileType(
            id=req.profile_id, stack_level=req.stack_level, charging_profile_purpose=purpose,
            charging_profile_kind=en201.ChargingProfileKindEnumType.absolute,
            transaction_id=tx, valid_to=ocpp_time(req.valid_to),
            charging_schedule=[dt201.ChargingScheduleType(
                id=req.profile_id, charging_rate_unit=en201.ChargingRateUnitEnumType.watts,
                duration=req.validity_s, start_schedule=ocpp_time(req.start),
                charging_schedule_period=[dt201.ChargingSchedulePeriodType(
                    start_period=0, limit=round(req.limit_w, 1))])]))


def clear_profile_201(connector_id: int) -> call201.ClearChargingProfile:
    return call201.ClearChargingProfile(charging_profile_id=PROFILE_ID_BASE + connector_id)
