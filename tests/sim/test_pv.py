"""The simulated PV inverter (sim.physics.pv) and the SunSpec PV map (models 1, 103, 121,
123): output under the clear sky, curtailment, and, over real Modbus TCP on 127.0.0.1 through
the adapter, the limit written and read back, released, and dropped by the inverter's revert
timer when the aggregator goes silent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from device_adapters.registers import encode_raw
from device_adapters.sunspec import build_profile, scan
from sim.clock import ManualClock
from sim.fleet import sunspec_pv_sim_profile
from sim.physics.factory import make_physics
from sim.physics.pv import PvModel
from tests.sim.helpers import Case, adapter_for, client_for, serve, sim_device
from vpp.device_kinds import DeviceKind
from vpp.errors import DeviceError

NOON = datetime(2025, 7, 15, 4, 30, tzinfo=UTC)  # 12:30 in Zhuzhou (UTC+8)
MIDNIGHT = datetime(2025, 7, 15, 16, 0, tzinfo=UTC)
PARAMS = {"dc_capacity_kwp": 110.0}
CASE = Case("sunspec", DeviceKind.PV_INVERTER, 100.0, -100.0, 0.0, PARAMS)


def model(ts: datetime = NOON) -> PvModel:
    m = make_physics(DeviceKind.PV_INVERTER, 100.0, PARAMS)
    assert isinstance(m, PvModel)
    m.set_time(ts)
    m.step(0, None)
    return m


def test_clear_noon_generates_and_midnight_does_not() -> None:
    noon, night = model(), model(MIDNIGHT)
    assert 50.0 < noon.available_kw <= 100.0  # 110 kWp on a clear July noon, after losses
    assert noon.power_kw == pytest.approx(-noon.available_kw)  # generation is export
    assert night.available_kw == 0.0 and night.power_kw == 0.0


def test_the_ceiling_curtails_and_release_restores() -> None:
    m = model()
    free = m.output_kw
    m.step(0, -30.0)
    assert m.power_kw == pytest.approx(-30.0) and m.curtailed_kw == pytest.approx(free - 30.0)
    m.step(0, 0.0)
    assert m.power_kw == 0.0
    m.step(0, -500.0)  # a ceiling above what the sky gives holds nothing back
    assert m.output_kw == pytest.approx(free) and m.curtailed_kw == 0.0
    m.step(0, None)
    assert m.output_kw == pytest.approx(free)


def test_energy_counts_what_was_generated_under_the_ceiling() -> None:
    m = model()
    m.step(3600, -20.0)
    assert m.generated_kwh == pytest.approx(20.0, rel=1e-6)  # held at 20 kW all hour
    m.clear_sky_index = 0.5
    assert m.available_kw == pytest.approx(0.5 * model(m.ts).available_kw, rel=1e-6)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        model().set_time(datetime(2025, 7, 15, 12))


def test_scan_picks_the_pv_map_and_refuses_a_chain_without_controls() -> None:
    prof = sunspec_pv_sim_profile(100.0)
    chain = [(1, 40002), (103, 40070), (121, 40122), (123, 40156)]
    assert build_profile(chain).kind is DeviceKind.PV_INVERTER
    assert build_profile(chain, kind=DeviceKind.PV_INVERTER).measure.power_kw.sign == -1
    assert prof.points["123.WMaxLimPct"].percent_of == "121.WMax"
    assert prof.watchdog.timeout_point == "123.WMaxLimPct_RvrtTms"
    with pytest.raises(DeviceError, match="lacks model 123"):
        build_profile([(1, 40002), (103, 40070), (121, 40122)], kind=DeviceKind.PV_INVERTER)


async def test_the_served_map_scans_as_a_pv_inverter() -> None:
    clock = ManualClock(NOON)
    async with serve({1: sim_device(CASE, clock)}) as gw:
        client = client_for(gw)

        async def read(address: int, count: int) -> list[int]:
            return await client.read(1, "holding", address, count)

        chain, end = await scan(read)
        assert [m for m, _ in chain] == [1, 103, 121, 123] and end > chain[-1][1]
        await client.close()


async def test_curtailment_over_modbus_is_written_read_back_and_released() -> None:
    clock = ManualClock(NOON)
    dev = sim_device(CASE, clock)
    async with serve({1: dev}) as gw:
        client = client_for(gw)
        a = await adapter_for(CASE, client)
        assert a.profile.kind is DeviceKind.PV_INVERTER
        before = await a.read_state()
        assert before.power_kw < -50.0  # generating
        assert before.flex_up_kw == pytest.approx(-before.power_kw)  # curtailable to 0
        res = await a.apply_setpoint(-30.0)
        assert res.error is None and res.verified and not res.clamped
        assert res.readback_kw == pytest.approx(-30.0)
        assert dev.values["123.WMaxLimPct"] == pytest.approx(30.0)  # % of WMax 100 kW
        assert dev.values["123.WMaxLim_Ena"] == 1.0
        clock.advance(10)
        assert (await a.read_state()).power_kw == pytest.approx(-30.0)
        res = await a.apply_setpoint(25.0)  # a PV inverter cannot consume: clamped to 0
        assert res.clamped and res.verified and res.written_kw == 0.0
        assert (await a.read_state()).power_kw == 0.0
        await a.release()
        assert dev.setpoint_kw is None and dev.values["123.WMaxLim_Ena"] == 0.0
        clock.advance(1)
        assert (await a.read_state()).power_kw == pytest.approx(before.power_kw, abs=0.5)
        await client.close()


async def test_the_revert_timer_lifts_the_limit_when_the_aggregator_goes_silent() -> None:
    clock = ManualClock(NOON)
    dev = sim_device(CASE, clock)
    async with serve({1: dev}) as gw:
        client = client_for(gw)
        a = await adapter_for(CASE, client)
        assert (await a.apply_setpoint(-20.0)).verified
        for _ in range(4):  # heartbeats within the 60 s revert time keep the limit
            clock.advance(20)
            await a.heartbeat()
            assert (await a.read_state()).power_kw == pytest.approx(-20.0)
        clock.advance(61)
        state = await a.read_state()
        assert dev.watchdog_tripped and dev.setpoint_kw is None
        assert state.power_kw < -50.0  # unlimited again
        assert await a.holds_setpoint() is False  # the adapter sees it fell back
        await client.close()


async def test_a_limit_outside_the_register_range_is_refused_by_the_device() -> None:
    clock = ManualClock(NOON)
    dev = sim_device(CASE, clock)
    async with serve({1: dev}) as gw:
        client = client_for(gw)
        a = await adapter_for(CASE, client)
        addr = a.profile.points["123.WMaxLimPct"].address
        with pytest.raises(DeviceError):
            await client.write(1, addr, encode_raw(2000, a.profile.points["123.WMaxLimPct"].type,
                                                   "big", "big"))  # 200.0%
        assert dev.setpoint_kw is None
        await client.close()


HUAWEI = Case("huawei-sun2000", DeviceKind.PV_INVERTER, 100.0, -100.0, 0.0, PARAMS)


async def test_huawei_derating_is_written_read_back_and_released_by_our_lease() -> None:
    """No watchdog on the SUN2000's derating: released to P_max, by us or by our lease."""
    clock = ManualClock(NOON)
    dev = sim_device(HUAWEI, clock)
    mono = [0.0]
    async with serve({1: dev}) as gw:
        client = client_for(gw)
        a = await adapter_for(HUAWEI, client)
        a._monotonic = lambda: mono[0]
        free = -(await a.read_state()).power_kw
        res = await a.apply_setpoint(-40.0)
        assert res.verified and res.readback_kw == pytest.approx(-40.0)
        assert dev.values["derating_w"] == 40000.0
        clock.advance(3600)
        assert (await a.read_state()).power_kw == pytest.approx(-40.0)  # never reverts itself
        await a.release()
        assert dev.values["derating_w"] == 110000.0  # P_max: no ceiling
        assert (await a.read_state()).power_kw < -40.0
        assert (await a.apply_setpoint(-10.0)).verified
        mono[0] = a.profile.heartbeat.lease_s + 1
        await a.heartbeat()  # our lease ran out without a new setpoint: released
        assert a.active_setpoint_kw is None and dev.values["derating_w"] == 110000.0
        clock.advance(1)
        assert -(await a.read_state()).power_kw == pytest.approx(free, rel=0.2)  # later sun
        await client.close()
