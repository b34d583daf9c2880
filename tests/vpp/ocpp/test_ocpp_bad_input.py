"""Bad input to the OCPP central system, over real WebSockets on loopback: each gets the
protocol's answer (an HTTP refusal at the handshake, a CALLERROR, a charge point's status) and
one clear log line, and nothing is lost (the connector keeps its newest meter value, a setpoint
not accepted is not recorded as held, a dropped charge point comes back)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging

import pytest
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from tests.vpp.ocpp.conftest import PASSWORD, World, wait_until


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def handshake_status(url: str, headers: dict[str, str]) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, subprotocols=[Subprotocol("ocpp1.6")],
                           additional_headers=headers):
            pass
    return int(refused.value.response.status_code)


async def test_unknown_identity_and_wrong_credentials_are_refused_at_the_handshake(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.register("CP-K")
    base = world.central.url
    with caplog.at_level(logging.WARNING, logger="vpp.ocpp"):
        assert await handshake_status(f"{base}/CP-NOBODY", basic("CP-NOBODY", PASSWORD)) == 404
        assert await handshake_status(f"{base}/CP-K", basic("CP-K", "wrong-password-123456")) == 401
        assert await handshake_status(f"{base}/CP-K", {}) == 401
        assert await handshake_status(f"{base}/CP-K", basic("CP-OTHER", PASSWORD)) == 401
    text = caplog.text
    assert "unknown charge point identity (identity 'CP-NOBODY'" in text
    assert "wrong password (identity 'CP-K'" in text
    assert "no credentials" in text and "is not the charge point's identity" in text
    assert world.central.refused == 4 and "CP-K" not in world.central.connections


async def raw_cp(world: World, identity: str) -> tuple[Cp16, asyncio.Task[None], object]:
    ws = await connect(f"{world.central.url}/{identity}", subprotocols=[Subprotocol("ocpp1.6")],
                       additional_headers=basic(identity, PASSWORD))
    cp = Cp16(identity, ws, response_timeout=5)
    return cp, asyncio.create_task(cp.start()), ws


async def test_out_of_order_and_malformed_messages_get_callerrors(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.register("CP-M")
    cp, serving, ws = await raw_cp(world, "CP-M")
    try:
        mv = [{"timestamp": "2026-01-01T00:00:00Z",
               "sampled_value": [{"value": "7000", "measurand": "Power.Active.Import",
                                  "unit": "W"}]}]
        with caplog.at_level(logging.WARNING, logger="vpp.ocpp"):
            with pytest.raises(Exception, match="SecurityError|BootNotification"):
                await cp.call(call16.MeterValues(connector_id=1, meter_value=mv), suppress=False)
            assert "before an accepted BootNotification" in caplog.text
            await cp.call(call16.BootNotification(charge_point_vendor="V",
                                                  charge_point_model="M"))
            with pytest.raises(Exception, match="not registered"):
                await cp.call(call16.MeterValues(connector_id=9, meter_value=mv), suppress=False)
            bad = [{"timestamp": "2026-01-01T00:00:01Z",
                    "sampled_value": [{"value": "lots", "measurand": "Power.Active.Import"}]}]
            with pytest.raises(Exception, match="not a number"):
                await cp.call(call16.MeterValues(connector_id=1, meter_value=bad), suppress=False)
            await cp.call(call16.MeterValues(connector_id=1, meter_value=mv), suppress=False)
            late = [{"timestamp": "2025-12-31T23:00:00Z",
                     "sampled_value": [{"value": "10", "measurand": "Power.Active.Import",
                                        "unit": "W"}]}]
            await cp.call(call16.MeterValues(connector_id=1, meter_value=late), suppress=False)
        live = world.central.links["CP-M"].connector(1)
        assert live.sample is not None and live.sample.power_kw == pytest.approx(7.0)  # newest kept
        assert "connector 9, which is not registered" in caplog.text
        assert "unreadable meter value" in caplog.text
        # a frame that is not OCPP at all: the connection stays usable
        await ws.send("this is not json")  # type: ignore[attr-defined]
        await ws.send(json.dumps([2, "x1", "NoSuchAction", {}]))  # type: ignore[attr-defined]
        result = await cp.call(call16.Heartbeat())
        assert result.current_time
    finally:
        serving.cancel()
        await ws.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_rejected_profile_and_dropped_connection(world: World, version: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    ids = world.register("CP-R")
    cp = world.sim("CP-R", version)
    task = asyncio.create_task(cp.run(world.central.url))
    fleet_rt = world.parts.fleet
    try:
        await asyncio.wait_for(cp.booted.wait(), 10)
        await wait_until(lambda: fleet_rt.has_adapter(ids[0]))
        cp.reject_profiles = True
        with caplog.at_level(logging.WARNING):
            result = await fleet_rt.apply(ids[0], 2.0)
        assert not result.verified and "answered Rejected" in (result.error or "")
        assert fleet_rt.last_setpoint(ids[0]) is None  # not held: dispatch sees the failure
        assert "answered Rejected to the charging profile" in caplog.text

        cp.reject_profiles = False
        assert (await fleet_rt.apply(ids[0], 2.0)).verified
        await cp.drop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await wait_until(lambda: world.central.links["CP-R"].session is None)
        lost = await fleet_rt.apply(ids[0], 1.0)
        assert not lost.verified and "not connected" in (lost.error or "")
        assert fleet_rt.last_setpoint(ids[0]) == 2.0  # what it still holds until validTo

        for _ in range(world.parts.settings.polling.offline_after_failures):
            await fleet_rt.poller.poll_once()
        assert fleet_rt.known_offline(ids[0])

        again = world.sim("CP-R", version)  # it comes back: no new boot needed
        task = asyncio.create_task(again.run(world.central.url))
        await asyncio.wait_for(again.booted.wait(), 10)

        async def online() -> bool:
            await fleet_rt.poller.poll_once()
            return fleet_rt.is_online(ids[0])

        await wait_until(online)
        assert (await fleet_rt.apply(ids[0], 1.0)).verified
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
