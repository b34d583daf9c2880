"""OCPP 2.0.1 handlers of the central system (on ``ocpp.v201.ChargePoint``): BootNotification,
Heartbeat, StatusNotification, MeterValues, TransactionEvent, Authorize; and the
SetChargingProfile / ClearChargingProfile calls the connector adapters send
(:mod:`device_adapters.ocpp.profiles`). A device's connector is the 2.0.1 EVSE id. Input rules:
:mod:`vpp.ocpp.station`; a TransactionEvent whose EVSE is neither given nor known from its
transaction's earlier events is refused (``OccurrenceConstraintViolation``)."""

from __future__ import annotations

from typing import Any

from ocpp.exceptions import OccurrenceConstraintViolationError
from ocpp.routing import on
from ocpp.v201 import ChargePoint as ChargePoint201Base
from ocpp.v201 import call_result
from ocpp.v201.enums import Action, AuthorizationStatusEnumType, RegistrationStatusEnumType

from device_adapters.ocpp.profiles import LimitRequest, clear_profile_201, set_profile_201
from vpp.ocpp.station import Station, check_timestamp, log
from vpp.ocpp.v16 import LIBRARY_LOG, answered_status

_ACCEPTED = {"status": AuthorizationStatusEnumType.accepted}


class ChargePoint201(ChargePoint201Base):  # type: ignore[misc]
    """One connected OCPP 2.0.1 charging station."""

    version = "2.0.1"

    def __init__(self, station: Station, connection: Any, timeout_s: float) -> None:
        super().__init__(station.identity, connection, response_timeout=timeout_s,
                         logger=LIBRARY_LOG)
        self.station = station

    # -- calls to the charging station (the adapters' ChargePointSession) ------------------
    async def set_limit(self, request: LimitRequest) -> str:
        return await answered_status(self, set_profile_201(request), "SetChargingProfile")

    async def clear_limit(self, connector_id: int) -> str:
        return await answered_status(self, clear_profile_201(connector_id),
                                     "ClearChargingProfile")

    # -- messages from the charging station -----------------------------------------------
    @on(Action.boot_notification)
    async def on_boot(self, charging_station: dict[str, Any], reason: str,
                      **kw: Any) -> call_result.BootNotification:
        await self.station.boot({"ocpp": "2.0.1", "vendor": charging_station.get("vendor_name"),
                                 "model": charging_station.get("model"),
                                 "firmware": charging_station.get("firmware_version"),
                                 "serial": charging_station.get("serial_number"),
                                 "reason": reason})
        return call_result.BootNotification(current_time=self.station.now(),
                                            interval=self.station.heartbeat_interval_s,
                                            status=RegistrationStatusEnumType.accepted)

    @on(Action.heartbeat)
    def on_heartbeat(self, **kw: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=self.station.now())

    @on(Action.status_notification)
    def on_status(self, timestamp: str, connector_status: str, evse_id: int,
                  connector_id: int, **kw: Any) -> call_result.StatusNotification:
        self.station.require_booted("StatusNotification")
        self.station.check_connector(evse_id, "StatusNotification", allow_zero=True)
        self.station.set_status(evse_id, connector_status)
        return call_result.StatusNotification()

    @on(Action.meter_values)
    def on_meter_values(self, evse_id: int, meter_value: list[dict[str, Any]],
                        **kw: Any) -> call_result.MeterValues:
        self.station.require_booted("MeterValues")
        self.station.check_connector(evse_id, "MeterValues")
        self.station.meter(evse_id, meter_value, "MeterValues")
        return call_result.MeterValues()

    @on(Action.transaction_event)
    def on_transaction_event(self, event_type: str, timestamp: str, trigger_reason: str,
                             seq_no: int, transaction_info: dict[str, Any],
                             **kw: Any) -> call_result.TransactionEvent:
        st = self.station
        st.require_booted("TransactionEvent")
        check_timestamp(timestamp)
        tx = str(transaction_info["transaction_id"])
        evse = kw.get("evse")
        cid = int(evse["id"]) if evse else st.connector_of(tx)
        if cid is None:
            log.warning("charge point %s: TransactionEvent %s for transaction %s names no EVSE "
                        "and none is known for it: refused", st.identity, event_type, tx)
            raise OccurrenceConstraintViolationError(
                description=f"evse is required: transaction {tx} is not known")
        st.check_connector(cid, "TransactionEvent")
        if event_type in ("Started", "Updated"):
            st.start_transaction(cid, tx)
        if kw.get("meter_value"):
            st.meter(cid, kw["meter_value"], "TransactionEvent")
        if event_type == "Ended":
            st.end_transaction(tx, "TransactionEvent")
        if kw.get("id_token"):
            return call_result.TransactionEvent(id_token_info=_ACCEPTED)
        return call_result.TransactionEvent()

    @on(Action.authorize)
    def on_authorize(self, id_token: dict[str, Any], **kw: Any) -> call_result.Authorize:
        """Every token is accepted: drivers are authorised by the charging operator's system."""
        self.station.require_booted("Authorize")
        return call_result.Authorize(id_token_info=_ACCEPTED)
