"""The OCPP central system end to end over real WebSockets on loopback, OCPP 1.6J and 2.0.1:
an owner registers a charge point, the simulated charge point (:mod:`sim.ocpp_chargepoint`,
the Modbus chargers' EV physics) connects with its credentials, boots and is enrolled; its meter
values become telemetry through the poller's store; a setpoint from the fleet (the path dispatch
takes) is a charging profile the charger accepts and the metered power follows; release clears
it; a profile's validity ends by itself (the fallback). Both databases. Nothing is mocked."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import Session, select

from tests.vpp.ocpp.conftest import RATED_KW, World, wait_until
from vpp.db import session_scope
from vpp.models import Device, Gateway, TelemetryReading


def _device(s: Session, device_id: int) -> Device:
    """The stored device ``device_id`` (registered, so present)."""
    dev = s.get(Device, device_id)
    assert dev is not None, f"device {device_id} is stored"
    return dev


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_enrol_meter_curtail_release_fallback(world: World, version: str) -> None:
    ids = world.register("CP-A")
    cp = world.sim("CP-A", version)
    task = asyncio.create_task(cp.run(world.central.url))
    try:
        await asyncio.wait_for(cp.booted.wait(), 10)
        with session_scope(world.engine) as s:  # enrolled by its accepted boot
            gw = s.get(Gateway, _device(s, ids[0]).gateway_id)
            assert gw is not None and gw.enrolment_state == "active"
            assert {_device(s, i).status for i in ids} == {"active"}
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
