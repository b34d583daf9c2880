"""Fixtures of the OCPP tests: a migrated database (both backends), the daemon's parts on a
manual clock with the central system on a free loopback port, an owner, simulated charge
points."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from sim.clock import ManualClock
from sim.ocpp_chargepoint import SimChargePoint
from tests.vpp.daemon.harness import daemon_settings
from vpp import fleet
from vpp.daemon.dbexec import Db
from vpp.daemon.infra import Infra
from vpp.daemon.parts import DaemonParts, build_parts
from vpp.db import session_scope
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


@asynccontextmanager
async def open_world(engine: Engine, tmp_path: Path, **ocpp: Any) -> AsyncIterator[World]:
    """The daemon's parts and the central system (``ocpp``: settings beyond the tests')."""
    clock = ManualClock()
    base = daemon_settings(tmp_path, str(engine.url))
    settings = base.model_copy(update={
        # an offline connector is tried again at every poll (the test polls by hand)
        "polling": base.polling.model_copy(update={"offline_retry_s": 0.0}),
        "ocpp": base.ocpp.model_copy(
            update={"enabled": True, "port": 0, "call_timeout_s": 3.0,
                    "profile_validity_s": 600, "meter_stale_s": 60.0, **ocpp})})
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


@pytest.fixture
async def world(engine: Engine, tmp_path: Path) -> AsyncIterator[World]:
    async with open_world(engine, tmp_path) as w:
        yield w
