"""A heartbeat that comes after the device's watchdog expired finds the device fallen back: the
setpoint it held is written again at once (:meth:`vpp.heartbeats.Heartbeats.step`), without
renewing the aggregator's lease, rather than waiting for its power to show the loss (first run
at 60x: hundreds of feeds came late during re-plans and the plants ran uncapped until the
control loop noticed).

Real parts: a ``sim`` pymodbus gateway on 127.0.0.1 with industrial PLCs (60 s watchdog) on a
simulated clock 30x real time, the real poller, adapters and heartbeat loop. The late feed is
made by holding the heartbeat loop for 3 s real (90 simulated s)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from device_adapters.modbus_client import GatewayClient
from sim.clock import SimClock
from sim.fleet import gateway_from_spec
from tests.conftest import free_port
from tests.vpp.test_poller_heartbeats import ACCEL, _adapters, _spec
from vpp.config import PollingSettings
from vpp.device_kinds import DeviceKind
from vpp.heartbeats import Heartbeats
from vpp.poller import Poller


async def test_a_late_feed_writes_the_held_setpoint_again() -> None:
    clock = SimClock(accel=ACCEL, start=datetime(2026, 7, 1, 14, 0, tzinfo=UTC))
    gw = gateway_from_spec(_spec(free_port(), [1, 2]), clock)
    await gw.start()
    settings = PollingSettings(interval_s=0.3, timeout_s=1.0, retries=1, backoff_base_s=0.05,
                               watchdog_period_s=0.3, offline_retry_s=0.0,
                               period_s={k: 0.01 for k in DeviceKind}, event_period_s=0.01)
    poller = Poller(None, settings)
    client = GatewayClient("127.0.0.1", gw.port, timeout_s=1.0, retries=1, backoff_base_s=0.05)
    poller.add_gateway(1, client, await _adapters(client, 101, [1, 2], clock))
    hb = Heartbeats(poller, settings, clock_rate=lambda: ACCEL)
    capped, free = gw.devices[1], gw.devices[2]
    try:
        assert (await poller.adapter(101).apply_setpoint(10.0)).verified
        for _ in range(3):  # fed on time: the timeout is read, nothing is written again
            await hb.step()
            await asyncio.sleep(0.1)
        assert hb.watchdog_s == {101: 60.0, 102: 60.0} and hb.late == 0
        lease = poller.adapter(101)._lease_started
        await asyncio.sleep(3.0)  # the loop held up: 90 simulated s, past the 60 s watchdog
        capped.refresh()
        assert capped.watchdog_tripped and capped.setpoint_kw is None  # fell back
        await hb.step()
        assert hb.late == 2  # both PLCs were fed late
        assert hb.reasserted == 1  # the one holding a setpoint got it again
        assert capped.setpoint_kw == pytest.approx(10.0) and free.setpoint_kw is None
        assert poller.adapter(101)._lease_started == lease  # the lease was not renewed
    finally:
        await hb.close()
        await poller.close(release=False)
        await gw.stop()
