"""The OCPP central system end to end over real WebSockets on loopback, OCPP 1.6J and 2.0.1:
an owner registers a charge point, the simulated charge point (:mod:`sim.ocpp_chargepoint`,
the Modbus chargers' EV physics) connects with its credentials, boots and is enrolled; its meter
values become telemetry through the poller's store; a setpoint from the fleet (the path dispatch
takes) is a charging profile the charger accepts and the metered power follows; release clears
it; a profile's validity ends by itself (the fallback). Both databases. Nothing is mocked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from sim.clock import ManualClock
from sim.ocpp_chargepoint import SimChargePoint
from tests.vpp.daemon.harness import daemon_settings
from vpp import fleet
from vpp.daemon.dbexec import Db
from vpp.daemon.infra import Infra
from vpp.daemon.parts import DaemonParts, build_parts
from vpp.db import session_scope
from vpp.models import Device, Gateway, TelemetryReading
from vpp.ocpp.central import OcppCentral
from vpp.ocpp_gateways import add_ocpp_gateway

PASSWORD = "correct-horse-battery-staple-1"
RATED_KW = 7.0


async def wait_until(check: Callable[[], Any | Awaitable[Any]], timeout_s: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@dataclass
class World:
    engine: Engine
    parts: DaemonParts
    central: OcppCentral
    clock: ManualClock
    owner_id: int

    def register(self, identity: str, connectors: int = 2) -> list[int]:
        with session_scope(self.engine) as s:
            owner = fleet.get_owner(s, self.owner_id)
            enrolled = add_ocpp_gateway(s, owner, "depot", {
                "identity": identity, "password": PASSWORD,
                "devices": [{"name": f"{identity}/c{c}", "kind": "ev_charger", "unit_id": c,
                             "profile": "ocpp", "rated_power_kw": RATED_KW,
                             "min_setpoint_kw": 0.0, "max_setpoint_kw": RATED_KW}
                            for c in range(1, connectors + 1)]})
            return [int(d.id or 0) for d in enrolled.devices]

    def sim(self, identity: str, version: str, password: str = PASSWORD) -> SimChargePoint:
        return SimChargePoint(identity, password, version, connectors=2, rated_kw=RATED_KW,
                              clock=self.clock, seed=3, meter_period_s=0.2)


@pytest.fixture
async def world(engine: Engine, tmp_path: Path) -> AsyncIterator[World]:
    clock = ManualClock()
    settings = daemon_settings(tmp_path, str(engine.url)).model_copy(update={
        "ocpp": daemon_settings(tmp_path, str(engine.url)).ocpp.model_copy(
            update={"enabled": True, "port": 0, "call_timeout_s": 3.0,
                    "profile_validity_s": 600, "meter_stale_s": 60.0})})
    infra = Infra.create(settings, Db(engine), clock=clock.now)
    parts = build_parts(infra)
    central = OcppCentral(infra, parts.fleet, settings.ocpp)
    with session_scope(engine) as s:
        owner_id = int(fleet.add_owner(s, "Depot Co").id or 0)
    await central.start()
    try:
        yield World(engine, parts, central, clock, owner_id)
    finally:
        await central.stop()
        await parts.close()


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_enrol_meter_curtail_release_fallback(world: World, version: str) -> None:
    ids = world.register("CP-A")
    cp = world.sim("CP-A", version)
    task = asyncio.create_task(cp.run(world.central.url))
    try:
        await asyncio.wait_for(cp.booted.wait(), 10)
        with session_scope(world.engine) as s:  # enrolled by its accepted boot
            assert s.get(Gateway, s.get(Device, ids[0]).gateway_id).enrolment_state == "active"
            assert {s.get(Device, i).status for i in ids} == {"active"}
        fleet_rt = world.parts.fleet
        await wait_until(lambda: all(fleet_rt.has_adapter(i) for i in ids))

        async def polled() -> bool:
            await fleet_rt.poller.poll_once()
            return all(fleet_rt.is_online(i) for i in ids)

        await wait_until(polled)
        before = fleet_rt.latest(ids[0])
        assert before is not None and before.power_kw == pytest.approx(cp.power_kw(1), abs=0.05)
        assert before.power_kw > 1.0  # the simulated car charges at full power by default

        result = await fleet_rt.apply(ids[0], 2.5)  # curtail: the path dispatch takes
        assert result.verified and result.error is None and result.readback_kw == 2.5
        assert cp.power_kw(1) == pytest.approx(2.5)

        async def follows() -> bool:
            await fleet_rt.poller.poll_once()
            st = fleet_rt.latest(ids[0])
            return st is not None and abs(st.power_kw - 2.5) < 0.05

        await wait_until(follows)  # confirmed by the metered power
        clamped = await fleet_rt.apply(ids[1], 50.0)  # beyond the connector's limits
        assert clamped.clamped and clamped.written_kw == RATED_KW

        errors = await fleet_rt.release([ids[0]])
        assert errors == {} and fleet_rt.last_setpoint(ids[0]) is None
        assert cp.connectors[1].limit_kw(world.clock.now()) is None

        # fallback: the daemon goes silent; past its validity the profile is gone by itself
        assert (await fleet_rt.apply(ids[0], 1.0)).verified
        world.clock.advance(601)
        assert cp.connectors[1].limit_kw(world.clock.now()) is None

        await fleet_rt.poller.flush()
        with session_scope(world.engine) as s:
            rows = s.exec(select(TelemetryReading).where(TelemetryReading.device_id == ids[0],
                                                         TelemetryReading.available)).all()
        assert rows and any(abs((r.power_kw or 0) - 2.5) < 0.05 for r in rows)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
