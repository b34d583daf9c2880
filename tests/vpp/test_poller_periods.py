"""Poll rates that fit the job: each device kind is read at its own telemetry period, a device
holding our setpoint (an event and its tail) at ``polling.event_period_s``, and heartbeats keep
device watchdogs fed whatever the poll period.

Real parts: one ``sim`` pymodbus gateway per device on 127.0.0.1 (so the gateway's request
counter is the device's), the real poller and adapters. The first test steps a manual clock one
tick at a time and counts exactly; the second runs the poll loop in real time with shortened
periods and checks only generous bounds; the third runs long periods against a PLC whose 60 s
watchdog runs on a clock 30x real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest

from device_adapters.adapter import ProfileAdapter
from device_adapters.factory import make_adapter
from device_adapters.modbus_client import GatewayClient
from sim.clock import ManualClock, SimClock
from sim.device import Clock
from sim.server import SimGateway
from tests.conftest import free_port
from tests.sim.helpers import BY_PROFILE, sim_device
from vpp.config import PollingSettings
from vpp.device_kinds import DeviceKind
from vpp.poller import Poller
from vpp.timeutil import now as tz_now

#: device id -> profile; 5 is a second battery that takes part in an event
PROFILES = {1: "sungrow-sh", 2: "keba-p30", 3: "coolmaster-vrf", 4: "industrial-plc",
            5: "sungrow-sh"}
EVENT_DEVICE = 5


def _periods(battery: float, charger: float, building: float,
             industrial: float) -> dict[DeviceKind, float]:
    return {DeviceKind.BATTERY: battery, DeviceKind.EV_CHARGER: charger,
            DeviceKind.COMMERCIAL_BUILDING: building, DeviceKind.INDUSTRIAL_LOAD: industrial,
            DeviceKind.V2G_CHARGER: battery,  # a car's state of charge, as fast as a battery's
            DeviceKind.PV_INVERTER: charger}


@asynccontextmanager
async def _fleet(settings: PollingSettings, clock: Clock,
                 now: Callable[[], datetime] | None = None,
                 ) -> AsyncIterator[tuple[Poller, dict[int, SimGateway]]]:
    """Five devices, each behind its own simulated gateway, in one poller."""
    gws = {i: SimGateway({1: sim_device(BY_PROFILE[p], clock, 1)}, port=free_port())
           for i, p in PROFILES.items()}
    poller = Poller(None, settings)
    try:
        for i, gw in gws.items():
            await gw.start()
            c = BY_PROFILE[PROFILES[i]]
            client = GatewayClient("127.0.0.1", gw.port, timeout_s=settings.timeout_s,
                                   retries=settings.retries)
            a: ProfileAdapter = await make_adapter(
                client, device_id=i, unit_id=1, kind=c.kind, profile=c.profile,
                rated_power_kw=c.rated_kw, min_setpoint_kw=c.min_kw, max_setpoint_kw=c.max_kw,
                params=c.params, clock=now or tz_now)
            poller.add_gateway(i, client, [a])
        yield poller, gws
    finally:
        await poller.close(release=False)
        for gw in gws.values():
            await gw.stop()


async def test_each_kind_at_its_period_and_an_event_device_at_the_fast_one() -> None:
    clock = ManualClock(datetime(2026, 7, 1, 14, 0, tzinfo=UTC))
    settings = PollingSettings(interval_s=1.0, period_s=_periods(5.0, 10.0, 15.0, 15.0),
                               event_period_s=2.0, timeout_s=1.0, retries=0)
    async with _fleet(settings, clock, clock.now) as (poller, gws):
        assert (await poller.adapter(EVENT_DEVICE).apply_setpoint(-2.0)).verified
        first = {i: gw.requests for i, gw in gws.items()}
        assert (await poller.poll_once()).ok == 5  # every device once: the period starts
        per_poll = {i: gw.requests - first[i] for i, gw in gws.items()}
        assert all(n >= 1 for n in per_poll.values()), per_poll

        async def ticks(n: int) -> dict[int, float]:
            """``n`` ticks of one second on the devices' clock: server requests per device,
            in polls."""
            before = {i: gw.requests for i, gw in gws.items()}
            for _ in range(n):
                clock.advance(1.0)
                report = await poller.poll_due()
                assert report.failed == 0, report.errors
            return {i: (gw.requests - before[i]) / per_poll[i] for i, gw in gws.items()}

        # 60 s: battery every 5 s, charger 10 s, building and plant 15 s, the event device 2 s
        assert await ticks(60) == {1: 12, 2: 6, 3: 4, 4: 4, 5: 30}
        # released (the event's tail is over): back to its kind's period
        await poller.adapter(EVENT_DEVICE).release()
        assert (await ticks(30))[EVENT_DEVICE] == 6
        # a device that takes a setpoint is due at the fast period from its last poll
        assert (await poller.adapter(2).apply_setpoint(11.0)).verified
        assert (await ticks(10))[2] == 5


async def test_the_poll_loop_in_real_time_keeps_the_periods() -> None:
    """Shortened periods, a real clock and :meth:`Poller.run`: no device is read more often
    than its period allows (+2 for the window's edges), and the event device far more often
    than the slow kinds (generous: 2x where the periods differ 10x)."""
    settings = PollingSettings(interval_s=0.05, period_s=_periods(0.5, 1.0, 1.0, 1.0),
                               event_period_s=0.1, timeout_s=1.0, retries=0)
    window_s = 3.0
    async with _fleet(settings, ManualClock()) as (poller, _):
        assert (await poller.adapter(EVENT_DEVICE).apply_setpoint(-2.0)).verified
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        await asyncio.sleep(window_s)
        stop.set()
        await asyncio.wait_for(task, 30.0)
        polls = {i: poller.stats[i].polls for i in PROFILES}
        errors = {i: poller.stats[i].errors for i in PROFILES}
    assert not any(errors.values()), errors
    for i, n in polls.items():
        period = settings.event_period_s if i == EVENT_DEVICE else settings.period_s[
            BY_PROFILE[PROFILES[i]].kind]
        assert 1 <= n <= window_s / period + 2, (i, polls)
    assert polls[EVENT_DEVICE] >= 2 * max(polls[2], polls[3], polls[4]), polls


PLC = BY_PROFILE["industrial-plc"]


async def test_a_long_poll_period_never_lets_a_watchdog_expire() -> None:
    """The PLC's 60 s watchdog (on a clock 30x real time) and poll periods of an hour: after
    the first poll it is not read again, yet the heartbeat loop keeps feeding it for two
    watchdog timeouts, and it keeps the setpoint."""
    clock = SimClock(accel=30.0, start=datetime(2026, 7, 1, 14, 0, tzinfo=UTC))
    settings = PollingSettings(interval_s=0.2, period_s=_periods(3600.0, 3600.0, 3600.0, 3600.0),
                               event_period_s=3600.0, watchdog_period_s=0.3, timeout_s=1.0,
                               retries=1, backoff_base_s=0.05)
    gw = SimGateway({1: sim_device(PLC, clock, 1)}, port=free_port())
    await gw.start()
    client = GatewayClient("127.0.0.1", gw.port, timeout_s=1.0, retries=1)
    poller = Poller(None, settings)
    plc = gw.devices[1]
    try:
        a = await make_adapter(client, device_id=1, unit_id=1, kind=PLC.kind,
                               profile=PLC.profile, rated_power_kw=PLC.rated_kw,
                               min_setpoint_kw=PLC.min_kw, max_setpoint_kw=PLC.max_kw,
                               params=PLC.params, clock=lambda: clock.now().astimezone(UTC))
        poller.add_gateway(1, client, [a])
        assert (await a.apply_setpoint(1000.0)).verified
        fed0 = float(plc.values["heartbeat"])
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        await asyncio.sleep(4.0)  # 120 simulated s: twice the watchdog
        stop.set()
        await asyncio.wait_for(task, 30.0)
        assert poller.stats[1].polls == 1  # read once, at the first tick
        assert float(plc.values["heartbeat"]) - fed0 >= 3  # fed on its own loop meanwhile
        plc.refresh()
        assert not plc.watchdog_tripped
        assert plc.setpoint_kw == pytest.approx(1000.0)
    finally:
        await poller.close(release=False)
        await gw.stop()


def test_poll_periods_are_validated_once() -> None:
    """Every kind needs a period, > 0, none shorter than the event period (the shipped file's
    values are the models' defaults: tests/vpp/test_config_defaults.py)."""
    from pydantic import ValidationError

    ok = PollingSettings()
    assert set(ok.period_s) == set(DeviceKind)
    assert all(v >= ok.event_period_s for v in ok.period_s.values())
    bad: list[dict[str, object]] = [
        {"period_s": {"battery": 5.0}},
        {"period_s": {**{k.value: 5.0 for k in DeviceKind}, "battery": 0.0}},
        {"event_period_s": 30.0},
        {"event_period_s": 0.0},
        {"period_s": {**{k.value: 5.0 for k in DeviceKind}, "heat_pump": 5.0}},
    ]
    for update in bad:
        with pytest.raises(ValidationError):
            PollingSettings.model_validate(update)
