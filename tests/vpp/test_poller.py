"""The poller against simulated gateways: telemetry in the database, offline detection and
recovery, one bad device never stops the others, heartbeats and release on close."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine, func, select
from sqlmodel import select as sm_select

from sim.clock import ManualClock
from sim.server import SimGateway
from tests.conftest import free_port
from tests.sim.helpers import BY_PROFILE, sim_device
from vpp import fleet
from vpp.config import PollingSettings
from vpp.db import session_scope
from vpp.enrolment import probe_gateway
from vpp.models import Device, TelemetryReading, table_of
from vpp.poller import Poller

FAST = PollingSettings(timeout_s=0.2, retries=0, backoff_base_s=0.01, offline_after_failures=2,
                       offline_retry_s=0.0,  # retried every cycle: recovery within a test
                       interval_s=0.05, watchdog_period_s=0.01, telemetry_batch_size=3)


def _dev(profile: str, unit: int) -> dict:
    c = BY_PROFILE[profile]
    return {"name": f"{profile}-{unit}", "kind": c.kind.value, "unit_id": unit,
            "profile": profile, "rated_power_kw": c.rated_kw, "min_setpoint_kw": c.min_kw,
            "max_setpoint_kw": c.max_kw, "params": c.params}


async def _fleet(engine: Engine, clock: ManualClock) -> list[SimGateway]:
    gws = [
        SimGateway({1: sim_device(BY_PROFILE["keba-p30"], clock, 1),
                    2: sim_device(BY_PROFILE["keba-p30"], clock, 2)}, port=free_port()),
        SimGateway({1: sim_device(BY_PROFILE["sungrow-sh"], clock, 1),
                    2: sim_device(BY_PROFILE["coolmaster-vrf"], clock, 2)}, port=free_port()),
    ]
    specs = [[_dev("keba-p30", 1), _dev("keba-p30", 2)],
             [_dev("sungrow-sh", 1), _dev("coolmaster-vrf", 2)]]
    with session_scope(engine) as s:
        o = fleet.add_owner(s, "owner")
        ids = [fleet.add_gateway(s, o, f"site{i}", {"host": "127.0.0.1", "port": g.port,
                                                    "devices": spec}).gateway.id
               for i, (g, spec) in enumerate(zip(gws, specs, strict=True))]
    for g in gws:
        await g.start()
    for gid in ids:
        assert (await probe_gateway(engine, gid or 0, FAST)).ok
    return gws


def _status(engine: Engine) -> dict[str, str]:
    with session_scope(engine) as s:
        return {d.name: d.status for d in s.exec(sm_select(Device)).all()}


async def test_poll_cycle_offline_and_recovery(engine: Engine) -> None:
    clock = ManualClock()
    gws = await _fleet(engine, clock)
    poller = Poller(engine, FAST)
    try:
        assert await poller.load() == 4
        report = await poller.poll_once()
        assert report.ok == 4 and report.failed == 0 and report.requests >= 5
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(TelemetryReading)).scalar() == 4
        assert all(st.last_latency_ms is not None for st in poller.stats.values())
        # one device goes silent: an error on it alone, offline after 2 cycles
        gws[0].devices[2].faults.silent = True
        for _ in range(2):
            report = await poller.poll_once()
            assert report.failed == 1 and report.ok == 3
        assert _status(engine)["keba-p30-2"] == "offline"
        assert _status(engine)["keba-p30-1"] == "active"
        gws[0].devices[2].faults.silent = False
        await asyncio.sleep(0.25)
        report = await poller.poll_once()
        assert report.failed == 0
        assert _status(engine)["keba-p30-2"] == "active"
        with engine.connect() as conn:
            t = table_of(TelemetryReading)
            unavailable = conn.execute(
                select(func.count()).select_from(t).where(t.c.available.is_(False))).scalar()
            assert unavailable == 2  # the gaps are recorded, not lost
    finally:
        await poller.close()
        for g in gws:
            await g.stop()


async def test_run_heartbeats_and_release_on_close(sqlite_engine: Engine) -> None:
    clock = ManualClock()
    gws = await _fleet(sqlite_engine, clock)
    poller = Poller(sqlite_engine, FAST)
    try:
        await poller.load()
        keba = poller.adapter(1)
        sungrow = poller.adapter(3)
        assert (await keba.apply_setpoint(11.0)).verified
        assert (await sungrow.apply_setpoint(-2.0)).verified
        await poller.run(asyncio.Event(), cycles=3)
        # the KEBA heartbeat wrote its failsafe timeout (read back through 1602)
        assert gws[0].devices[1].values["failsafe_timeout"] == 60
        clock.advance(45)
        await poller.heartbeat_all()
        clock.advance(45)  # 90 s since the setpoint, but fed 45 s ago
        await poller.poll_once()
        assert not gws[0].devices[1].watchdog_tripped
        assert gws[1].devices[1].setpoint_kw == -2.0
    finally:
        await poller.close(release=True)
        for g in gws:
            await g.stop()
    assert gws[1].devices[1].setpoint_kw is None  # Sungrow restored to self-consumption


async def test_stuck_values_are_detected_and_cleared() -> None:
    """A charger drawing 22 kW whose energy counter stops moving is reported as stuck; an idle
    battery with a constant counter is not."""
    from sim.clock import SimClock
    from tests.sim.helpers import adapter_for, client_for, serve

    clock = SimClock()  # real time: the counters move as they would on a device
    devs = {1: sim_device(BY_PROFILE["keba-p30"], clock, 1),
            2: sim_device(BY_PROFILE["huawei-luna2000"], clock, 2)}
    async with serve(devs) as gw:
        client = client_for(gw)
        keba = await adapter_for(BY_PROFILE["keba-p30"], client, 1, 1)
        battery = await adapter_for(BY_PROFILE["huawei-luna2000"], client, 2, 2)
        poller = Poller(None, PollingSettings(stuck_after_s=0.3, offline_after_failures=2))
        poller.add_gateway(1, client, [keba, battery])
        assert (await poller.poll_once()).failed == 0
        devs[1].faults.stuck = True
        await poller.poll_once()
        await asyncio.sleep(0.4)
        report = await poller.poll_once()
        assert list(report.errors) == [1]
        assert "stuck values" in report.errors[1] and "22.00 kW" in report.errors[1]
        devs[1].faults.stuck = False
        await asyncio.sleep(0.1)
        assert (await poller.poll_once()).failed == 0
        await poller.close(release=False)


async def test_unreachable_gateway_takes_all_its_devices_offline_together(engine: Engine) -> None:
    """A gateway that goes away fails its devices with one connect attempt per cycle, and its
    devices go offline in the same step even when their failure counts differ (here the
    VRF unit was already silent for one cycle): a re-plan never sees half a gateway."""
    clock = ManualClock()
    gws = await _fleet(engine, clock)
    poller = Poller(engine, FAST)
    try:
        await poller.load()
        assert (await poller.poll_once()).ok == 4
        gws[1].devices[2].faults.silent = True  # VRF (device 4): one failure on its own
        report = await poller.poll_once()
        assert list(report.errors) == [4] and poller.stats[3].consecutive_failures == 0
        gws[1].devices[2].faults.silent = False
        await gws[1].stop()  # the second gateway (devices 3 and 4) is gone
        client = poller.gateways[1].client
        reconnects = client.stats.reconnects
        report = await poller.poll_once()
        assert sorted(report.errors) == [3, 4]
        assert all("unreachable" in e for e in report.errors.values())
        assert client.stats.reconnects == reconnects  # never connected again
        # device 4 reached 2 failures (offline_after_failures) first; 3 goes with it
        assert not poller.stats[3].online and not poller.stats[4].online
        assert poller.stats[3].consecutive_failures == 1
        status = _status(engine)
        assert status["sungrow-sh-1"] == status["coolmaster-vrf-2"] == "offline"
        assert status["keba-p30-1"] == status["keba-p30-2"] == "active"
        assert report.ok == 2
    finally:
        await poller.close()
        for g in gws:
            await g.stop()
