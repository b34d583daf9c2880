"""PostgreSQL unreachable mid-run (through a loopback proxy the test cuts; the real server is
never stopped): polling goes on, devices keep their setpoints and heartbeats, telemetry is
buffered, the outage is reported in the log, and once the database is back every reading
reaches it exactly once."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from sim.clock import ManualClock
from tests.reliability.proxy import CuttableProxy
from tests.sim.helpers import BY_PROFILE, adapter_for, client_for, serve, sim_device
from vpp import fleet
from vpp.config import PollingSettings
from vpp.db import make_engine, session_scope, upgrade
from vpp.models import Device, TelemetryReading, table_of
from vpp.poller import Poller


@pytest.mark.postgres
async def test_database_outage_loses_no_telemetry(pg_schema: tuple[str, str],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    url, schema = pg_schema
    direct = make_engine(url, search_path=schema)
    upgrade(direct)
    proxy = CuttableProxy("127.0.0.1", 5432)
    await proxy.start()
    proxied_url = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert proxied_url != url
    engine = make_engine(proxied_url, search_path=schema, pool_pre_ping=True)
    case = BY_PROFILE["huawei-luna2000"]
    clock = ManualClock()
    devs = {u: sim_device(case, clock, u) for u in (1, 2, 3)}
    caplog.set_level(logging.WARNING)
    async with serve(devs) as gw:
        with session_scope(direct) as s:
            owner = fleet.add_owner(s, "o")
            e = fleet.add_gateway(s, owner, "site", {"host": "127.0.0.1", "port": gw.port,
                                                     "devices": [
                {"name": f"b{u}", "kind": "battery", "unit_id": u, "profile": case.profile,
                 "rated_power_kw": 5.0, "min_setpoint_kw": -5.0, "max_setpoint_kw": 5.0,
                 "params": case.params} for u in devs]})
            ids = [int(d.id or 0) for d in e.devices]
        client = client_for(gw)
        adapters = [await adapter_for(case, client, u, i) for u, i in zip(devs, ids, strict=True)]
        poller = Poller(engine, PollingSettings(telemetry_batch_size=1000))
        assert poller.buffer is not None  # an engine, so readings are buffered
        poller.add_gateway(1, client, adapters)
        polled = 0
        for _ in range(3):
            r = await poller.poll_once()
            polled += r.devices
        assert (await adapters[0].apply_setpoint(-3.0)).verified
        await proxy.cut()  # ------------------------------------------ the database goes away
        for _ in range(6):
            clock.advance(1)
            r = await poller.poll_once()
            assert r.ok == r.devices == 3  # polling goes on
            polled += r.devices
            await poller.heartbeat_all()  # devices keep what they were told
        assert len(poller.buffer) >= 18  # buffered, not lost
        assert devs[1].setpoint_kw == pytest.approx(-3.0, abs=0.01)
        assert "telemetry flush failed" in caplog.text  # the outage is reported
        await proxy.restore()  # ---------------------------------------- and comes back
        for _ in range(3):
            clock.advance(1)
            r = await poller.poll_once()
            polled += r.devices
        await poller.flush()
        assert len(poller.buffer) == 0
        await poller.close(release=True)
    with direct.connect() as conn:
        t = table_of(TelemetryReading)
        stored = conn.execute(select(func.count()).select_from(t)).scalar_one()
        distinct = conn.execute(select(func.count()).select_from(
            select(t.c.device_id, t.c.ts).distinct().subquery())).scalar_one()
        assert conn.execute(select(func.count()).select_from(table_of(Device))).scalar_one() == 3
    assert stored == polled == distinct, (stored, polled, distinct)  # nothing lost or doubled
    assert poller.buffer.dropped == 0
    engine.dispose()
    direct.dispose()
    await proxy.close()
