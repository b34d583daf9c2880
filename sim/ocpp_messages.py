"""What a simulated charge point (:mod:`sim.ocpp_chargepoint`) says and answers, per OCPP
version, on the ``ocpp`` library's charge-point side: the calls it makes (boot, status,
transactions, meter values) and its handlers for SetChargingProfile / ClearChargingProfile."""

from __future__ import annotations

import itertools
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as res16
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as res201

from device_adapters.ocpp.profiles import ocpp_time

if TYPE_CHECKING:
    from sim.ocpp_chargepoint import SimChargePoint

WIRE_LOG = logging.getLogger("sim.ocpp.wire")
WIRE_LOG.setLevel(logging.WARNING)
_TX = itertools.count(1)


class SimCp16(Cp16):  # type: ignore[misc]
    def __init__(self, sim: SimChargePoint, ws: Any) -> None:
        super().__init__(sim.identity, ws, response_timeout=30, logger=WIRE_LOG)
        self.sim = sim

    @on("SetChargingProfile")
    def on_set(self, connector_id: int, cs_charging_profiles: dict[str, Any]
               ) -> res16.SetChargingProfile:
        status = self.sim.accept_profile(connector_id, cs_charging_profiles,
                                         cs_charging_profiles["charging_schedule"])
        return res16.SetChargingProfile(status=status)

    @on("ClearChargingProfile")
    def on_clear(self, id: int | None = None, **kw: Any) -> res16.ClearChargingProfile:
        return res16.ClearChargingProfile(status=self.sim.clear_profile(id))


class SimCp201(Cp201):  # type: ignore[misc]
    def __init__(self, sim: SimChargePoint, ws: Any) -> None:
        super().__init__(sim.identity, ws, response_timeout=30, logger=WIRE_LOG)
        self.sim = sim

    @on("SetChargingProfile")
    def on_set(self, evse_id: int, charging_profile: dict[str, Any],
               **kw: Any) -> res201.SetChargingProfile:
        status = self.sim.accept_profile(evse_id, charging_profile,
                                         charging_profile["charging_schedule"][0])
        return res201.SetChargingProfile(status=status)

    @on("ClearChargingProfile")
    def on_clear(self, charging_profile_id: int | None = None,
                 **kw: Any) -> res201.ClearChargingProfile:
        return res201.ClearChargingProfile(status=self.sim.clear_profile(charging_profile_id))


def client_class(version: str) -> type[SimCp16] | type[SimCp201]:
    return SimCp201 if version == "2.0.1" else SimCp16


def _sampled(power_kw: float, energy_kwh: float, v201: bool) -> list[dict[str, Any]]:
    if v201:
        return [{"value": round(power_kw * 1000.0, 1), "measurand": "Power.Active.Import",
                 "unitOfMeasure": {"unit": "W"}},
                {"value": round(energy_kwh * 1000.0, 1),
                 "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}]
    return [{"value": f"{power_kw * 1000.0:.1f}", "measurand": "Power.Active.Import",
             "unit": "W"},
            {"value": f"{energy_kwh * 1000.0:.1f}", "measurand": "Energy.Active.Import.Register",
             "unit": "Wh"}]


class Messages:
    """The calls of one simulated charge point (``cp``: its ``ocpp`` client object)."""

    def __init__(self, sim: SimChargePoint, cp: Any) -> None:
        self.sim = sim
        self.cp = cp
        self.v201 = sim.version == "2.0.1"

    async def boot(self) -> None:
        if self.v201:
            await self.cp.call(call201.BootNotification(
                charging_station={"vendor_name": "XiangSim", "model": "AC-2.0.1"},
                reason="PowerUp"))
        else:
            await self.cp.call(call16.BootNotification(charge_point_vendor="XiangSim",
                                                       charge_point_model="AC-1.6"))
        for cid, c in self.sim.connectors.items():
            status = "Occupied" if self.v201 else "Charging"
            if not c.car_present:
                status = "Available"
            if self.v201:
                await self.cp.call(call201.StatusNotification(
                    timestamp=self.sim.now_text, connector_status=status, evse_id=cid,
                    connector_id=1))
            else:
                await self.cp.call(call16.StatusNotification(
                    connector_id=cid, error_code="NoError", status=status))

    async def transactions(self, now: datetime) -> None:
        """Start or end a transaction where a car arrived or left."""
        for cid, c in self.sim.connectors.items():
            if c.car_present and c.transaction_id is None:
                await self._start(cid, now)
            elif not c.car_present and c.transaction_id is not None:
                await self._end(cid, now)

    async def _start(self, cid: int, now: datetime) -> None:
        c = self.sim.connectors[cid]
        if self.v201:
            c.transaction_id, c.tx_seq = f"{self.sim.identity}-{next(_TX)}", 0
            await self.cp.call(call201.TransactionEvent(
                event_type="Started", timestamp=ocpp_time(now), trigger_reason="CablePluggedIn",
                seq_no=0, transaction_info={"transaction_id": c.transaction_id},
                evse={"id": cid, "connector_id": 1}))
            return
        result = await self.cp.call(call16.StartTransaction(
            connector_id=cid, id_tag="SIMTAG", meter_start=int(c.physics.energy_kwh * 1000),
            timestamp=ocpp_time(now)))
        c.transaction_id = str(result.transaction_id)

    async def _end(self, cid: int, now: datetime) -> None:
        c = self.sim.connectors[cid]
        tx, c.transaction_id = c.transaction_id, None
        assert tx is not None
        if self.v201:
            c.tx_seq += 1
            await self.cp.call(call201.TransactionEvent(
                event_type="Ended", timestamp=ocpp_time(now), trigger_reason="EVDeparted",
                seq_no=c.tx_seq, transaction_info={"transaction_id": tx}))
            return
        await self.cp.call(call16.StopTransaction(
            meter_stop=int(c.physics.energy_kwh * 1000), timestamp=ocpp_time(now),
            transaction_id=int(tx)))

    async def meter(self, now: datetime) -> None:
        for cid, c in self.sim.connectors.items():
            mv = [{"timestamp": ocpp_time(now),
                   "sampledValue": _sampled(c.physics.power_kw, c.physics.energy_kwh,
                                            self.v201)}]
            if self.v201 and c.transaction_id is not None:
                c.tx_seq += 1
                await self.cp.call(call201.TransactionEvent(
                    event_type="Updated", timestamp=ocpp_time(now),
                    trigger_reason="MeterValuePeriodic", seq_no=c.tx_seq,
                    transaction_info={"transaction_id": c.transaction_id}, meter_value=mv))
            elif self.v201:
                await self.cp.call(call201.MeterValues(evse_id=cid, meter_value=mv))
            else:
                await self.cp.call(call16.MeterValues(
                    connector_id=cid, meter_value=mv,
                    transaction_id=int(c.transaction_id) if c.transaction_id else None))
