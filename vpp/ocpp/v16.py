"""OCPP 1.6J handlers of the central system (on ``ocpp.v16.ChargePoint``): BootNotification,
Heartbeat, StatusNotification, MeterValues, Start/StopTransaction, Authorize; and the
SetChargingProfile / ClearChargingProfile calls the connector adapters send
(:mod:`device_adapters.ocpp.profiles`). Input rules: :mod:`vpp.ocpp.station`."""

from __future__ import annotations

import logging
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16Base
from ocpp.v16 import call_result, datatypes
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus

from device_adapters.ocpp.profiles import LimitRequest, clear_profile_16, set_profile_16
from vpp.errors import DeviceError
from vpp.ocpp.station import Station, check_timestamp

#: the ``ocpp`` library logs every message at INFO: kept at WARNING (its errors still show)
LIBRARY_LOG = logging.getLogger("vpp.ocpp.wire")

_ACCEPTED = datatypes.IdTagInfo(status=AuthorizationStatus.accepted)


async def answered_status(cp: Any, payload: Any, action: str) -> str:
    """Send ``payload`` to charge point ``cp`` (either protocol version) and return the status
    it answered; a CALLERROR becomes a :class:`DeviceError` naming ``action``."""
    try:
        result = await cp.call(payload, suppress=False)
    except OCPPError as exc:
        raise DeviceError(f"charge point {cp.id} answered {action} with "
                          f"{type(exc).__name__}: {exc.description}") from None
    return str(result.status)


class ChargePoint16(ChargePoint16Base):  # type: ignore[misc]
    """One connected OCPP 1.6J charge point."""

    version = "1.6"

    def __init__(self, station: Station, connection: Any, timeout_s: float) -> None:
        super().__init__(station.identity, connection, response_timeout=timeout_s,
                         logger=LIBRARY_LOG)
        self.station = station

    # -- calls to the charge point (the adapters' ChargePointSession) ----------------------
    async def set_limit(self, request: LimitRequest) -> str:
        return await answered_status(self, set_profile_16(request), "SetChargingProfile")

    async def clear_limit(self, connector_id: int) -> str:
        return await answered_status(self, clear_profile_16(connector_id),
                                     "ClearChargingProfile")

    # -- messages from the charge point ---------------------------------------------------
    @on(Action.boot_notification)
    async def on_boot(self, charge_point_vendor: str, charge_point_model: str,
                      **kw: Any) -> call_result.BootNotification:
        await self.station.boot({"ocpp": "1.6", "vendor": charge_point_vendor,
                                 "model": charge_point_model,
                                 "firmware": kw.get("firmware_version"),
                                 "serial": kw.get("charge_point_serial_number")})
        return call_result.BootNotification(current_time=self.station.now(),
                                            interval=self.station.heartbeat_interval_s,
                                            status=RegistrationStatus.accepted)

    @on(Action.heartbeat)
    def on_heartbeat(self) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=self.station.now())

    @on(Action.status_notification)
    def on_status(self, connector_id: int, error_code: str, status: str,
                  **kw: Any) -> call_result.StatusNotification:
        self.station.require_booted("StatusNotification")
        self.station.check_connector(connector_id, "StatusNotification", allow_zero=True)
        self.station.set_status(connector_id, status)
        return call_result.StatusNotification()

    @on(Action.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list[dict[str, Any]],
                        transaction_id: int | None = None, **kw: Any) -> call_result.MeterValues:
        st = self.station
        st.require_booted("MeterValues")
        st.check_connector(connector_id, "MeterValues")
        if transaction_id is not None and st.connector_of(str(transaction_id)) is None:
            st.start_transaction(connector_id, str(transaction_id))  # learnt after a restart
        st.meter(connector_id, meter_value, "MeterValues")
        return call_result.MeterValues()

    @on(Action.start_transaction)
    def on_start_transaction(self, connector_id: int, id_tag: str, meter_start: int,
                             timestamp: str, **kw: Any) -> call_result.StartTransaction:
        self.station.require_booted("StartTransaction")
        self.station.check_connector(connector_id, "StartTransaction")
        check_timestamp(timestamp)
        tx = self.station.start_transaction(connector_id)
        return call_result.StartTransaction(transaction_id=int(tx), id_tag_info=_ACCEPTED)

    @on(Action.stop_transaction)
    def on_stop_transaction(self, meter_stop: int, timestamp: str, transaction_id: int,
                            **kw: Any) -> call_result.StopTransaction:
        st = self.station
        st.require_booted("StopTransaction")
        check_timestamp(timestamp)
        cid = st.end_transaction(str(transaction_id), "StopTransaction")
        if cid is not None and kw.get("transaction_data"):
            st.meter(cid, kw["transaction_data"], "StopTransaction")
        return call_result.StopTransaction(id_tag_info=_ACCEPTED)

    @on(Action.authorize)
    def on_authorize(self, id_tag: str) -> call_result.Authorize:
        """The aggregator controls power, not access: the charging operator's own system
        authorises drivers, so every tag is accepted here."""
        self.station.require_booted("Authorize")
        return call_result.Authorize(id_tag_info=_ACCEPTED)
