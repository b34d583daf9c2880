"""A simulated charge point that loses its connection reconnects and meters again (the
full-stack run's charge points live through a daemon that is slow to answer: a call that
times out drops the connection). A bare OCPP 1.6J central system on a loopback WebSocket, built
on the ``ocpp`` library, counts the meter values per connection and closes the first one after
its first meter value."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call_result
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from sim.clock import ManualClock
from sim.ocpp_chargepoint import SimChargePoint
from sim.ocpp_fleet import keep_connected


class Central(Cp16):  # type: ignore[misc]
    def __init__(self, ws: ServerConnection, meters: list[int]) -> None:
        super().__init__("CP-1", ws)
        self.meters = meters
        self.meters.append(0)

    @on("BootNotification")
    def on_boot(self, **kw: Any) -> call_result.BootNotification:
        return call_result.BootNotification(current_time=datetime.now(UTC).isoformat(),
                                            interval=300, status="Accepted")

    @on("StatusNotification")
    def on_status(self, **kw: Any) -> call_result.StatusNotification:
        return call_result.StatusNotification()

    @on("StartTransaction")
    def on_start(self, **kw: Any) -> call_result.StartTransaction:
        return call_result.StartTransaction(transaction_id=1, id_tag_info={"status": "Accepted"})

    @on("MeterValues")
    def on_meter(self, **kw: Any) -> call_result.MeterValues:
        self.meters[-1] += 1
        return call_result.MeterValues()


async def test_a_dropped_charge_point_reconnects_and_meters_again() -> None:
    meters: list[int] = []  # meter values received, one entry per connection

    async def handler(ws: ServerConnection) -> None:
        cs = Central(ws, meters)
        task = asyncio.create_task(cs.start())
        if len(meters) == 1:  # the first connection: dropped after its first meter value
            while meters[0] == 0:
                await asyncio.sleep(0.01)
            await ws.close()
        await asyncio.gather(task, return_exceptions=True)

    async with serve(handler, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp1.6")]) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        cp = SimChargePoint("CP-1", "x" * 16, "1.6", connectors=1, rated_kw=7.0,
                            clock=ManualClock(), meter_period_s=0.05)
        task = asyncio.create_task(keep_connected(cp, f"ws://127.0.0.1:{port}", retry_s=0.05))
        try:
            for _ in range(500):
                if len(meters) >= 2 and meters[1] >= 2:
                    break
                await asyncio.sleep(0.01)
        finally:
            await cp.close()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert len(meters) >= 2 and meters[0] >= 1, meters
    assert meters[1] >= 2, meters  # the second connection meters, not only boots
