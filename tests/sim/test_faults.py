"""Injected faults and bad input: each gives a clear error on that device; the others keep
answering; nothing crashes; the connection recovers when the fault clears."""

from __future__ import annotations

import asyncio

import pytest

from device_adapters.errors import (
    ExceptionReply,
    GatewayUnreachable,
    ImplausibleValue,
    MalformedReply,
    RequestTimeout,
)
from sim.clock import ManualClock
from tests.conftest import free_port
from tests.sim.helpers import BY_PROFILE, adapter_for, client_for, serve, sim_device
from vpp.errors import DeviceError

KEBA = BY_PROFILE["keba-p30"]
HUAWEI = BY_PROFILE["huawei-luna2000"]


async def _pair():
    clock = ManualClock()
    devs = {1: sim_device(KEBA, clock, 1), 2: sim_device(HUAWEI, clock, 2)}
    return clock, devs


async def test_exception_reply_then_recovery() -> None:
    _, devs = await _pair()
    async with serve(devs) as gw:
        client = client_for(gw)
        bad, good = await adapter_for(KEBA, client, 1), await adapter_for(HUAWEI, client, 2, 2)
        devs[1].faults.exception_code = 4
        with pytest.raises(ExceptionReply, match=r"exception 4 \(device failure\)") as ei:
            await bad.read_state()
        assert ei.value.exception_code == 4
        assert (await good.read_state()).available
        res = await bad.apply_setpoint(10.0)
        assert not res.verified and "exception 4" in (res.error or "")
        devs[1].faults.clear()
        assert (await bad.read_state()).available
        await client.close()


async def test_slow_replies_time_out_without_blocking_other_gateways() -> None:
    _, devs = await _pair()
    _, devs2 = await _pair()
    async with serve(devs) as gw, serve(devs2) as gw2:
        slow_client, fast_client = client_for(gw, timeout_s=0.2), client_for(gw2, timeout_s=0.2)
        slow = await adapter_for(KEBA, slow_client, 1)
        fast = await adapter_for(KEBA, fast_client, 1)
        devs[1].faults.delay_s = 0.5
        results = await asyncio.gather(slow.read_state(), fast.read_state(),
                                       return_exceptions=True)
        assert isinstance(results[0], RequestTimeout)
        assert "no reply" in str(results[0]) and "0.2 s" in str(results[0])
        assert not isinstance(results[1], Exception)
        assert slow_client.stats.retries >= 1
        devs[1].faults.delay_s = 0.0
        await asyncio.sleep(0.6)  # let the late replies drain
        assert (await slow.read_state()).available  # reconnected, in step again
        await slow_client.close()
        await fast_client.close()


async def test_stuck_values_freeze_the_registers() -> None:
    clock, devs = await _pair()
    async with serve(devs) as gw:
        client = client_for(gw)
        a = await adapter_for(HUAWEI, client, 2, 2)
        before = await a.read_state()
        devs[2].faults.stuck = True
        assert (await a.apply_setpoint(-3.0)).verified  # control registers still work
        clock.advance(60)
        stuck = await a.read_state()
        assert stuck.power_kw == before.power_kw and stuck.soc_pct == before.soc_pct
        assert devs[2].physics.power_kw == pytest.approx(-3.0)  # the device did move
        devs[2].faults.stuck = False
        clock.advance(1)
        assert (await a.read_state()).power_kw == pytest.approx(-3.0)
        await client.close()


async def test_garbage_frames_are_an_error_on_that_device_only() -> None:
    _, devs = await _pair()
    async with serve(devs) as gw:
        client = client_for(gw, timeout_s=0.3)
        bad, good = await adapter_for(KEBA, client, 1), await adapter_for(HUAWEI, client, 2, 2)
        devs[1].faults.garbage = True
        with pytest.raises((MalformedReply, RequestTimeout)):
            await bad.read_state()
        assert (await good.read_state()).available
        devs[1].faults.garbage = False
        assert (await bad.read_state()).available
        await client.close()


async def test_wrong_word_order_is_implausible() -> None:
    _, devs = await _pair()
    async with serve(devs) as gw:
        client = client_for(gw)
        a = await adapter_for(KEBA, client, 1)
        devs[1].faults.word_swap = True  # 22 kW in mW with swapped words: ~2,978 kW
        with pytest.raises(ImplausibleValue, match="power.*(outside plausible range|beyond)"):
            await a.read_state()
        await client.close()


async def test_silent_gateway_and_dropped_connections() -> None:
    _, devs = await _pair()
    async with serve(devs) as gw:
        client = client_for(gw, timeout_s=0.2)
        a = await adapter_for(KEBA, client, 1)
        assert (await a.read_state()).available
        dropped = gw.drop_connections()
        assert dropped == 1
        await asyncio.sleep(0.05)
        assert (await a.read_state()).available  # reconnects on the retry
        gw.silent = True  # accepts and never answers
        with pytest.raises(RequestTimeout):
            await a.read_state()
        gw.silent = False
        await asyncio.sleep(0.3)
        assert (await a.read_state()).available
        await client.close()


async def test_unreachable_wrong_unit_and_refused_writes() -> None:
    _, devs = await _pair()
    async with serve(devs) as gw:
        client = client_for(gw)
        with pytest.raises(ExceptionReply, match="wrong unit id") as ei:
            await client.read(9, "holding", 1020, 2)
        assert ei.value.exception_code == 11
        with pytest.raises(ExceptionReply, match="illegal data address"):
            await client.write(1, 1020, [0, 1])  # a measurement is not writable
        with pytest.raises(ExceptionReply, match="illegal data value"):
            await client.write(1, 5004, [40000])  # 40 A above the declared 32 A
        with pytest.raises(ExceptionReply, match="illegal data address"):
            await client.read(1, "holding", 5004, 1)  # write-only register
        await client.close()
    nobody = client_for(gw)
    nobody.port = free_port()
    with pytest.raises(GatewayUnreachable, match="unreachable"):
        await nobody.read(1, "holding", 0, 1)
    assert issubclass(GatewayUnreachable, DeviceError)


def test_fault_commands() -> None:
    from sim.control import CommandError, apply_command
    from sim.server import SimGateway

    clock = ManualClock()
    g = SimGateway({1: sim_device(KEBA, clock, 1)}, port=15000)
    gws = {15000: g}
    assert "slow 0.5" in apply_command(gws, "fault 15000 1 slow 0.5")
    assert g.devices[1].faults.delay_s == 0.5
    apply_command(gws, "fault 15000 1 exception 6")
    apply_command(gws, "fault 15000 1 swap")
    assert g.devices[1].faults.exception_code == 6 and g.devices[1].faults.word_swap
    assert "delay_s" in apply_command(gws, "status")
    apply_command(gws, "clear 15000 1")
    assert g.devices[1].faults.delay_s == 0 and g.devices[1].faults.exception_code is None
    apply_command(gws, "silent 15000 on")
    assert g.silent
    assert apply_command(gws, "drop 15000") == "dropped 0 connection(s) on 15000"
    for bad, msg in [("fault 15000 2 stuck", "no unit 2"), ("fault 1 1 stuck", "no simulated"),
                     ("fault 15000 1 melt", "unknown fault"), ("explode 15000", "unknown command"),
                     ("fault x 1 stuck", "PORT must be an integer"),
                     ("fault 15000 1 exception 99", "1..11")]:
        with pytest.raises(CommandError, match=msg):
            apply_command(gws, bad)
