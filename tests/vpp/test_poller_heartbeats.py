"""``vpp poll`` (:meth:`vpp.poller.Poller.run`) feeds watchdogs on the daemon's heartbeat loop
(:class:`vpp.heartbeats.Heartbeats`), not after each poll cycle: a cycle held up by a silent
gateway (timeouts x retries) must not let another device's watchdog expire (issue 17).

Real parts: ``sim`` pymodbus gateways on 127.0.0.1 (industrial PLCs with a 60 s watchdog, on a
simulated clock 30x real time), one of them accepting connections and never answering; the
real poller and adapters. The test counts heartbeat writes that reached the answering PLCs
over each poll cycle, and reads their watchdog.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from device_adapters.factory import make_adapter
from device_adapters.modbus_client import GatewayClient
from sim.clock import SimClock
from sim.fleet import gateway_from_spec
from tests.conftest import free_port
from vpp.config import GatewaySpec, PollingSettings
from vpp.device_kinds import DeviceKind
from vpp.heartbeats import Heartbeats
from vpp.poller import CycleReport, Poller

#: simulated s per real s: a cycle held up >= 3 s by the silent gateway is >= 90 simulated s,
#: past the PLCs' 60 s watchdog; heartbeats every 0.3 s real are 9 simulated s apart
ACCEL = 30.0
PLC: dict[str, Any] = {"kind": "industrial_load", "profile": "industrial-plc", "rated_power_kw": 20.0,
       "min_setpoint_kw": 0.0, "max_setpoint_kw": 20.0, "params": {"max_curtail_kw": 10.0}}


def _spec(port: int, units: list[int]) -> GatewaySpec:
    return GatewaySpec.model_validate({"host": "127.0.0.1", "port": port, "devices": [
        {"name": f"plc-{port}-{u}", "unit_id": u, **PLC} for u in units]})


async def _adapters(client: GatewayClient, first_id: int, units: list[int],
                    clock: SimClock) -> list:
    return [await make_adapter(client, device_id=first_id + k, unit_id=u, kind=PLC["kind"],
                               profile=PLC["profile"], rated_power_kw=20.0, min_setpoint_kw=0.0,
                               max_setpoint_kw=20.0, params=PLC["params"],
                               clock=lambda: clock.now().astimezone(UTC))
            for k, u in enumerate(units)]


async def test_poll_run_feeds_watchdogs_while_a_cycle_is_held_up() -> None:
    clock = SimClock(accel=ACCEL, start=datetime(2026, 7, 1, 14, 0, tzinfo=UTC))
    ok_gw = gateway_from_spec(_spec(free_port(), [1, 2]), clock)
    silent_gw = gateway_from_spec(_spec(free_port(), [1]), clock)
    await ok_gw.start()
    await silent_gw.start()
    # each cycle polls the silent PLC (retried every cycle): >= 3 x 1 s (timeout x tries)
    # every device due at every tick (periods far below one tick)
    settings = PollingSettings(interval_s=0.3, timeout_s=1.0, retries=2, backoff_base_s=0.05,
                               watchdog_period_s=0.3, offline_retry_s=0.0,
                               period_s={k: 0.01 for k in DeviceKind}, event_period_s=0.01)
    poller = Poller(None, settings)
    ok_client = GatewayClient("127.0.0.1", ok_gw.port, timeout_s=1.0, retries=2,
                              backoff_base_s=0.05)
    silent_client = GatewayClient("127.0.0.1", silent_gw.port, timeout_s=1.0, retries=2,
                                  backoff_base_s=0.05)
    poller.add_gateway(1, ok_client, await _adapters(ok_client, 101, [1, 2], clock))
    poller.add_gateway(2, silent_client, await _adapters(silent_client, 201, [1], clock))
    plcs = [ok_gw.devices[1], ok_gw.devices[2]]
    try:
        for dev_id in (101, 102):  # cap both answering PLCs at 10 kW: their watchdog runs
            result = await poller.adapter(dev_id).apply_setpoint(10.0)
            assert result.verified, result.error
        silent_gw.silent = True  # accepts connections, never answers

        per_cycle: list[list[float]] = []
        seconds: list[float] = []
        poll_due = poller.poll_due  # what Poller.run calls each tick

        async def counted_poll_due() -> CycleReport:
            before = [float(d.values["heartbeat"]) for d in plcs]
            report = await poll_due()
            per_cycle.append([float(d.values["heartbeat"]) - b
                              for d, b in zip(plcs, before, strict=True)])
            seconds.append(report.seconds)
            return report

        poller.poll_due = counted_poll_due  # type: ignore[method-assign]
        await asyncio.wait_for(poller.run(asyncio.Event(), cycles=2), timeout=60.0)

        assert len(per_cycle) == 2
        assert all(s >= 3.0 for s in seconds), seconds  # each cycle held up by the silent PLC
        # each held-up cycle saw several heartbeats reach every answering PLC; before the fix
        # none (heartbeats were sent after the cycle)
        for n in per_cycle:
            assert all(k >= 2 for k in n), per_cycle
        for d in plcs:  # and they kept their cap: the watchdogs never tripped
            d.refresh()
            assert not d.watchdog_tripped
            assert d.setpoint_kw == pytest.approx(10.0)
    finally:
        await poller.close(release=False)
        await ok_gw.stop()
        await silent_gw.stop()


async def test_a_device_that_keeps_failing_its_heartbeat_is_logged_once_until_it_recovers(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = SimClock(accel=1.0, start=datetime(2026, 7, 1, 14, 0, tzinfo=UTC))
    gw = gateway_from_spec(_spec(free_port(), [1]), clock)
    await gw.start()
    settings = PollingSettings(interval_s=0.3, timeout_s=0.2, retries=0, backoff_base_s=0.05,
                               watchdog_period_s=0.3, offline_retry_s=0.0,
                               period_s={k: 0.01 for k in DeviceKind}, event_period_s=0.01)
    poller = Poller(None, settings)
    client = GatewayClient("127.0.0.1", gw.port, timeout_s=0.2, retries=0, backoff_base_s=0.05)
    poller.add_gateway(1, client, await _adapters(client, 101, [1], clock))
    hb = Heartbeats(poller, settings)
    caplog.set_level(logging.DEBUG, logger="vpp.heartbeats")
    try:
        gw.silent = True  # every heartbeat times out
        for _ in range(3):
            await hb.step()
        gw.silent = False
        await hb.step()
        await hb.step()
    finally:
        await poller.close(release=False)
        await gw.stop()
    lines = [(r.levelno, r.getMessage().split(":")[0]) for r in caplog.records
             if r.name == "vpp.heartbeats" and "heartbeat" in r.getMessage()
             and "period" not in r.getMessage()]
    assert hb.failures == 3  # every failure still counts (the daemon's metric)
    assert lines == [(logging.WARNING, "heartbeat failed"),
                     (logging.DEBUG, "heartbeat failed again"),
                     (logging.DEBUG, "heartbeat failed again"),
                     (logging.INFO, "heartbeat recovered")], lines
