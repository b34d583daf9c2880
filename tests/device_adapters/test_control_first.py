"""Control goes first on a gateway's one connection: a watchdog feed or setpoint write made
while a poll cycle's reads queue is served before the waiting reads (first run at 60x: the
PLC gateway's 120 heartbeats queued behind 240 reads a cycle, arrived past the PLCs' watchdog
and the plants fell back). Real parts: a simulated pymodbus gateway on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from device_adapters.modbus_client import GatewayClient, control_requests
from sim.clock import SimClock
from sim.server import SimGateway
from tests.sim.helpers import BY_PROFILE, serve, sim_device

READS = 40


def _clock() -> SimClock:
    return SimClock(accel=1.0, start=datetime(2026, 7, 15, 6, tzinfo=UTC))


async def _order(gw: SimGateway, control: bool) -> list[str]:
    """The order in which READS queued reads and one heartbeat write (made inside
    ``control_requests`` when ``control``) complete on a fresh connection."""
    client = GatewayClient("127.0.0.1", gw.port, timeout_s=2.0)
    done: list[str] = []

    async def read(i: int) -> None:
        await client.read(1, "holding", 8210, 2)
        done.append(f"read-{i}")

    async def write() -> None:
        with control_requests() if control else contextlib.nullcontext():
            await client.write(1, 103, [7])  # the PLC's heartbeat counter
        done.append("write")

    try:
        reads = [asyncio.create_task(read(i)) for i in range(READS)]
        await asyncio.sleep(0)  # the reads are queued (one in flight)
        await asyncio.gather(write(), *reads)
    finally:
        await client.close()
    assert sorted(x for x in done if x != "write") == sorted(f"read-{i}" for i in range(READS))
    return done


async def test_a_control_request_jumps_the_queue_of_reads() -> None:
    async with serve({1: sim_device(BY_PROFILE["industrial-plc"], _clock())}) as gw:
        # at most the read in flight (and one handed its slot meanwhile) went before it
        assert (await _order(gw, control=True)).index("write") <= 2
        # without control_requests the same write waits its turn
        assert (await _order(gw, control=False)).index("write") >= READS - 1


async def test_a_cancelled_waiter_passes_its_slot_on() -> None:
    async with serve({1: sim_device(BY_PROFILE["industrial-plc"], _clock())}) as gw:
        client = GatewayClient("127.0.0.1", gw.port, timeout_s=2.0)
        try:
            tasks = [asyncio.create_task(client.read(1, "holding", 8210, 2)) for _ in range(10)]
            await asyncio.sleep(0)
            for t in tasks[1:6]:
                t.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert sum(isinstance(r, asyncio.CancelledError) for r in results) == 5
            # the gate is whole again: the next requests go through at once
            async with asyncio.timeout(2.0):
                assert len(await client.read(1, "holding", 8210, 2)) == 2
        finally:
            await client.close()
