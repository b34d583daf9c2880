"""Heartbeats run on their own supervised loop (issues #8/#10): a poll cycle held up by a
silent gateway (long timeouts) must not starve the other devices' watchdogs.

Real parts: ``sim`` pymodbus gateways on 127.0.0.1 (industrial PLCs with a 60 s watchdog, on an
accelerated simulated clock), the real :class:`vpp.server.Daemon` and its loops. No
timing assertion: the test counts heartbeat writes that reached the devices per poll step.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from device_adapters.factory import make_adapter
from device_adapters.modbus_client import GatewayClient
from sim.clock import SimClock
from sim.fleet import gateway_from_spec
from tests.conftest import free_port
from tests.vpp.daemon.harness import daemon_settings, gateway_spec, wait_for
from vpp.config import GatewaySpec, PollingSettings
from vpp.daemon.fleet_runtime import HEARTBEAT_LOOP
from vpp.poller import Poller
from vpp.server import Daemon

#: simulated seconds per real second: a poll step held up >= 3 s by the silent gateway is
#: >= 60 simulated s, the PLCs' watchdog; heartbeats every 0.3 s are 6 simulated s apart
ACCEL = 20.0
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


def test_heartbeat_fraction_is_validated() -> None:
    for bad in (0.0, -0.1, 0.6):
        with pytest.raises(ValidationError, match="heartbeat_fraction"):
            PollingSettings(heartbeat_fraction=bad)


async def test_heartbeats_reach_devices_while_a_poll_step_is_blocked(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    clock = SimClock(accel=ACCEL, start=datetime(2026, 7, 1, 14, 0, tzinfo=UTC))
    ok_gw = gateway_from_spec(_spec(free_port(), [1, 2]), clock)
    silent_gw = gateway_from_spec(_spec(free_port(), [1]), clock)
    await ok_gw.start()
    await silent_gw.start()
    settings = daemon_settings(tmp_path, str(sqlite_engine.url))
    # long timeouts: each poll of the silent PLC costs >= 3 x 1 s (timeout x (retries + 1))
    settings.polling = PollingSettings(interval_s=0.3, timeout_s=1.0, retries=2,
                                       backoff_base_s=0.05, watchdog_period_s=0.3,
                                       period_s=settings.polling.period_s,
                                       event_period_s=settings.polling.event_period_s)
    poller = Poller(None, settings.polling)
    ok_client = GatewayClient("127.0.0.1", ok_gw.port, timeout_s=1.0, retries=2,
                              backoff_base_s=0.05)
    silent_client = GatewayClient("127.0.0.1", silent_gw.port, timeout_s=1.0, retries=2,
                                  backoff_base_s=0.05)
    poller.add_gateway(1, ok_client, await _adapters(ok_client, 101, [1, 2], clock))
    poller.add_gateway(2, silent_client, await _adapters(silent_client, 201, [1], clock))
    daemon = Daemon(settings, sqlite_engine, poller=poller, host="127.0.0.1", port=0,
                    clock=lambda: clock.now().astimezone(UTC))
    fleet = daemon.parts.fleet
    assert fleet is not None
    plcs = [ok_gw.devices[1], ok_gw.devices[2]]
    try:
        for dev_id in (101, 102):  # cap both answering PLCs at 10 kW (fed by this write)
            result = await fleet.apply(dev_id, 10.0)
            assert result.verified, result.error
        silent_gw.silent = True  # accepts connections, never answers

        # count heartbeat writes (the PLC's counter register) over each whole poll step
        per_step: list[list[float]] = []
        poll_step = fleet.poll_step

        async def counted_poll_step() -> None:
            before = [float(d.values["heartbeat"]) for d in plcs]
            await poll_step()
            per_step.append([float(d.values["heartbeat"]) - b
                             for d, b in zip(plcs, before, strict=True)])

        fleet.poll_step = counted_poll_step  # type: ignore[method-assign]
        await daemon.start()
        sup = daemon.parts.supervisor
        assert sup.has(HEARTBEAT_LOOP)

        async def two_blocked_steps() -> bool:
            return len(per_step) >= 2 and fleet.heartbeat_failures >= 1

        await wait_for(two_blocked_steps, timeout_s=60.0, what="two poll steps")
        status = {s.name: s for s in sup.statuses()}
        # heartbeat period: min(watchdog_period_s, 1/3 x the 60 s watchdog read from the PLCs)
        assert fleet.watchdog_s[101] == fleet.watchdog_s[102] == 60.0
        assert fleet.heartbeat_period_s() == 0.3
        assert status[HEARTBEAT_LOOP].period_s == 0.3
        assert status[HEARTBEAT_LOOP].iterations > status["poll"].iterations
        # each whole poll step (>= 3 s, held up by the silent gateway) saw several heartbeats
        # reach every answering PLC; before issue #8's fix: at most one, after the step
        for step in per_step:
            assert all(n >= 2 for n in step), per_step
        # the silent PLC's failed heartbeats are logged and counted
        assert fleet.heartbeat_failures >= 1
        metric = daemon.parts.metrics.heartbeat_errors._value.get()  # noqa: SLF001
        assert metric == fleet.heartbeat_failures
        # and the answering PLCs kept their cap: watchdogs never tripped
        for d in plcs:
            d.refresh()
            assert not d.watchdog_tripped
            assert d.setpoint_kw == pytest.approx(10.0)
    finally:
        await daemon.stop() if daemon.url else await fleet.close()
        await ok_gw.stop()
        await silent_gw.stop()


async def test_heartbeat_skips_a_device_being_written(sqlite_engine: Engine,
                                                      tmp_path: Path) -> None:
    """A heartbeat never runs beside a setpoint write to the same device: the device whose
    write lock is held is skipped (the write feeds its watchdog), the others are fed."""
    clock = SimClock()
    gw = gateway_from_spec(_spec(free_port(), [1, 2]), clock)
    await gw.start()
    settings = daemon_settings(tmp_path, str(sqlite_engine.url))
    poller = Poller(None, settings.polling)
    client = GatewayClient("127.0.0.1", gw.port, timeout_s=1.0, retries=1)
    poller.add_gateway(1, client, await _adapters(client, 1, [1, 2], clock))
    daemon = Daemon(settings, sqlite_engine, poller=poller)
    fleet = daemon.parts.fleet
    assert fleet is not None
    try:
        before = [float(gw.devices[u].values["heartbeat"]) for u in (1, 2)]
        async with fleet.device_lock(1):  # as apply() holds it while writing device 1
            await fleet.heartbeat_step()
        after = [float(gw.devices[u].values["heartbeat"]) for u in (1, 2)]
        assert after[0] == before[0]
        assert after[1] == before[1] + 1
        await fleet.heartbeat_step()
        assert float(gw.devices[1].values["heartbeat"]) == before[0] + 1
        assert fleet.heartbeat_failures == 0
        await asyncio.sleep(0)
    finally:
        await fleet.close()
        await gw.stop()


async def test_watchdog_timeout_read_in_its_unit(sqlite_engine: Engine, tmp_path: Path) -> None:
    """Huawei's forced-mode duration register is in minutes (30 min): 1800 s, not 30 s."""
    spec = GatewaySpec.model_validate(gateway_spec(free_port()))
    gw = gateway_from_spec(spec, SimClock())
    await gw.start()
    settings = daemon_settings(tmp_path, str(sqlite_engine.url))
    settings.polling = PollingSettings(watchdog_period_s=3600.0)
    poller = Poller(None, settings.polling)
    client = GatewayClient("127.0.0.1", gw.port, timeout_s=1.0, retries=1)
    d = spec.devices[0]
    poller.add_gateway(1, client, [await make_adapter(
        client, device_id=1, unit_id=d.unit_id, kind=d.kind, profile=d.profile,
        rated_power_kw=d.rated_power_kw, min_setpoint_kw=d.min_setpoint_kw,
        max_setpoint_kw=d.max_setpoint_kw, params=d.params)])
    daemon = Daemon(settings, sqlite_engine, poller=poller)
    fleet = daemon.parts.fleet
    assert fleet is not None
    try:
        await fleet.heartbeat_step()
        assert fleet.watchdog_s == {1: 1800.0}
        assert fleet.heartbeat_period_s() == pytest.approx(600.0)
    finally:
        await fleet.close()
        await gw.stop()
