"""Adapters against simulated devices over real Modbus TCP on 127.0.0.1: every profile reads,
takes setpoints that the physics follow, clamps, verifies by read-back, and falls back by its
watchdog (or our lease) when the aggregator goes silent."""

from __future__ import annotations

import pytest

from device_adapters.protocol import DeviceAdapter
from sim.clock import ManualClock
from tests.sim.helpers import BY_PROFILE, CASES, Case, adapter_for, client_for, serve, sim_device
from vpp.device_kinds import DeviceKind


def _target(case: Case) -> float:
    if case.kind is DeviceKind.BATTERY:
        return -0.6 * case.rated_kw  # discharge
    return case.min_kw + 0.5 * (case.max_kw - case.min_kw) * 0.5


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_setpoint_moves_the_physics(case: Case) -> None:
    clock = ManualClock()
    dev = sim_device(case, clock)
    async with serve({1: dev}) as gw:
        client = client_for(gw)
        a = await adapter_for(case, client)
        assert isinstance(a, DeviceAdapter)
        before = await a.read_state()
        assert before.available and abs(before.power_kw) <= case.rated_kw * 1.01
        target = _target(case)
        res = await a.apply_setpoint(target)
        assert res.error is None and res.verified and not res.clamped
        assert res.readback_kw == pytest.approx(target, rel=1e-3, abs=0.01)
        assert dev.setpoint_kw == pytest.approx(target, rel=1e-3, abs=0.01)
        # within every watchdog timeout; the building's room needs longer to warm visibly
        clock.advance(600 if case.kind is DeviceKind.COMMERCIAL_BUILDING else 50)
        after = await a.read_state()
        if case.kind is DeviceKind.BATTERY:
            assert after.power_kw == pytest.approx(target, rel=1e-3)  # discharging as told
            assert after.soc_pct is not None and after.soc_pct < before.soc_pct  # type: ignore[operator]
        else:
            assert after.power_kw <= target + 1e-3 < before.power_kw  # the cap bites
        if case.kind is DeviceKind.COMMERCIAL_BUILDING:
            assert after.indoor_temp_c is not None and after.indoor_temp_c > before.indoor_temp_c  # type: ignore[operator]
        await a.release()
        assert dev.setpoint_kw is None or dev.setpoint_kw >= case.max_kw - 1
        clock.advance(1)
        released = await a.read_state()
        assert released.power_kw >= after.power_kw - 1e-6 or case.kind is DeviceKind.BATTERY
        await client.close()


@pytest.mark.parametrize("profile", ["huawei-luna2000", "alfen-ng9xx", "sunspec"])
async def test_setpoints_outside_limits_are_clamped(profile: str) -> None:
    case = BY_PROFILE[profile]
    clock = ManualClock()
    dev = sim_device(case, clock)
    async with serve({1: dev}) as gw:
        client = client_for(gw)
        a = await adapter_for(case, client)
        res = await a.apply_setpoint(case.max_kw * 10)
        assert res.clamped and res.verified
        assert res.written_kw == pytest.approx(case.max_kw, rel=1e-3)
        assert dev.setpoint_kw == pytest.approx(case.max_kw, rel=1e-3)
        res = await a.apply_setpoint(-1e6)
        assert res.clamped and res.written_kw == pytest.approx(case.min_kw, rel=1e-3)
        nan = await a.apply_setpoint(float("nan"))
        assert nan.error and not nan.verified
        await client.close()


async def test_register_limits_clamp_even_within_device_limits() -> None:
    """A device declared at 8 kW behind a profile whose registers allow 5 kW: 5 kW is written."""
    case = BY_PROFILE["huawei-luna2000"]
    clock = ManualClock()
    dev = sim_device(case, clock)
    async with serve({1: dev}) as gw:
        client = client_for(gw)
        a = await adapter_for(case, client, rated_power_kw=8.0, min_setpoint_kw=-8.0,
                              max_setpoint_kw=8.0)
        res = await a.apply_setpoint(7.0)
        assert res.clamped and res.written_kw == pytest.approx(5.0)
        assert res.verified and res.readback_kw == pytest.approx(5.0)
        await client.close()


@pytest.mark.parametrize("profile", ["sungrow-sh", "keba-p30", "coolmaster-vrf"])
async def test_readback_mismatch_is_an_error(profile: str) -> None:
    case = BY_PROFILE[profile]
    clock = ManualClock()
    dev = sim_device(case, clock)
    async with serve({1: dev}) as gw:
        client = client_for(gw)
        a = await adapter_for(case, client)
        dev.faults.ignore_writes = True  # acknowledges, changes nothing
        res = await a.apply_setpoint(_target(case))
        assert not res.verified
        assert res.error is not None and "read-back mismatch" in res.error
        await client.close()


# profile, seconds of silence that trip the device's own watchdog, setpoint it falls back to
WATCHDOGS = [
    ("alfen-ng9xx", 301, 6.0 * 230 * 3 / 1000),  # safe current 6 A
    ("keba-p30", 61, 0.0),  # failsafe current 0 mA
    ("huawei-luna2000", 30 * 60 + 1, None),  # forced mode ends after its duration
    ("industrial-plc", 61, None),  # PLC drops the cap
    ("sunspec", 61, None),  # InOutWRte_RvrtTms
]


@pytest.mark.parametrize(("profile", "silence_s", "fallback_kw"), WATCHDOGS)
async def test_watchdog_fallback_when_aggregator_goes_silent(
    profile: str, silence_s: float, fallback_kw: float | None
) -> None:
    case = BY_PROFILE[profile]
    clock = ManualClock()
    dev = sim_device(case, clock)
    async with serve({1: dev}) as gw:
        client = client_for(gw)
        a = await adapter_for(case, client)
        target = _target(case)
        assert (await a.apply_setpoint(target)).verified
        await a.heartbeat()
        # heartbeats at a third of the timeout keep the setpoint alive
        for _ in range(4):
            clock.advance(silence_s / 3)
            await a.heartbeat()
            await a.read_state()
            assert not dev.watchdog_tripped
            assert dev.setpoint_kw == pytest.approx(target, rel=1e-3)
        clock.advance(silence_s)  # silence
        await a.read_state()
        assert dev.watchdog_tripped
        if fallback_kw is None:
            assert dev.setpoint_kw is None
        else:
            assert dev.setpoint_kw == pytest.approx(fallback_kw, rel=1e-3)
        await client.close()


@pytest.mark.parametrize("profile", ["sungrow-sh", "coolmaster-vrf"])
async def test_lease_restores_devices_without_watchdog(profile: str) -> None:
    case = BY_PROFILE[profile]
    clock = ManualClock()
    dev = sim_device(case, clock)
    mono = [0.0]
    async with serve({1: dev}) as gw:
        client = client_for(gw)
        a = await adapter_for(case, client)
        a._monotonic = lambda: mono[0]
        assert (await a.apply_setpoint(_target(case))).verified
        clock.advance(3600)
        await a.read_state()
        assert dev.setpoint_kw is not None  # the device never reverts by itself
        mono[0] = a.profile.heartbeat.lease_s / 2
        await a.heartbeat()
        assert dev.setpoint_kw is not None
        mono[0] = a.profile.heartbeat.lease_s + 1
        await a.heartbeat()  # our lease expired: restore the device
        assert dev.setpoint_kw is None and a.active_setpoint_kw is None
        await client.close()
