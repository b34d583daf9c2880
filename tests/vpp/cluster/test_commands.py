"""Setpoint commands through the database (issue 19 item 1): the planner's path
(:class:`vpp.cluster.remote.RemoteSetpoints`, what ``FleetRuntime.apply`` uses in a planner)
sends a command, the poller worker owning the gateway writes it with read-back and confirms it;
the device sees one write. A worker SIGKILLed after writing and before confirming (failpoint
``command.written``): the gateway's new owner re-takes the command, reads the device, finds the
setpoint held and confirms it without writing: still one write. Real PostgreSQL, ``vpp serve
--role poller`` subprocesses, pymodbus gateways."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sqlalchemy import Engine, text

from sim.server import SimGateway
from tests.vpp.cluster.harness import (
    active_fleet,
    cluster_config,
    lease_owners,
    plc_spec,
    postgres_only,
    readings_after,
    spawn,
    split_names,
    stop,
)
from tests.vpp.daemon.harness import wait_for
from vpp.cluster.remote import RemoteSetpoints
from vpp.cluster.share import assign
from vpp.config_cluster import ClusterSettings
from vpp.daemon.dbexec import Db

POWER_CAP = 100  # industrial-plc power_cap: written by a setpoint only (heartbeats: 103)


def _device_on(engine: Engine, gateway_id: int) -> tuple[int, int]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT id, unit_id FROM device WHERE gateway_id = :g "
                                "ORDER BY unit_id LIMIT 1"), {"g": gateway_id}).one()
    return int(row[0]), int(row[1])


def _record_writes(gw: SimGateway, unit: int) -> list[int]:
    """The register addresses written to one simulated device, in order (observing the
    simulator, which is ours)."""
    dev = gw.devices[unit]
    seen: list[int] = []
    original = dev.write

    def write(address: int, words: list[int]) -> int | None:
        seen.append(address)
        return original(address, words)

    dev.write = write  # type: ignore[method-assign]
    return seen


def _command(engine: Engine, device_id: int) -> dict:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT status, claimed_by, written, readback_kw FROM "
                                "device_command WHERE device_id = :d"), {"d": device_id}).one()
    return dict(row._mapping)


async def test_a_setpoint_command_is_executed_exactly_once(engine: Engine,
                                                           tmp_path: Path) -> None:
    postgres_only(engine)
    gws, by_id = await active_fleet(engine, 2, plc_spec)
    a, b = split_names(by_id)
    want = assign(by_id, [a, b])
    ga = next(g for g, w in want.items() if w == a)
    gb = next(g for g, w in want.items() if w == b)
    cfg = cluster_config(tmp_path, engine)
    log_a = tmp_path / "a.log"
    procs = {a: await spawn(cfg, "poller", a, log_a,
                            env={"VPP_FAILPOINTS": "command.written=pause:60"}),
             b: await spawn(cfg, "poller", b, tmp_path / "b.log")}
    db = Db(engine)
    remote = RemoteSetpoints(db, ClusterSettings(heartbeat_s=0.5, lease_s=2.0,
                                                 command_timeout_s=20.0))
    try:
        dev_a, unit_a = _device_on(engine, ga)
        dev_b, unit_b = _device_on(engine, gb)

        async def ready() -> bool:
            n = readings_after(engine, [dev_a, dev_b])
            return lease_owners(engine) == want and len(n) == 2
        await wait_for(ready, timeout_s=60, what="both workers polling their gateways")

        # one command, one write, confirmed by the owner with its read-back
        writes_b = _record_writes(by_id[gb], unit_b)
        r = await remote.apply(dev_b, 12.0)
        assert r.error is None and r.verified and r.readback_kw == 12.0, r
        assert writes_b.count(POWER_CAP) == 1
        assert _command(engine, dev_b) == {"status": "confirmed", "claimed_by": b,
                                           "written": True, "readback_kw": 12.0}

        # the owner dies between writing and confirming: the new owner confirms, no rewrite
        writes_a = _record_writes(by_id[ga], unit_a)
        sent = asyncio.create_task(remote.apply(dev_a, 15.0))

        async def paused() -> bool:
            return "command.written" in log_a.read_text()
        await wait_for(paused, timeout_s=20, what="worker a written the setpoint, not confirmed")
        assert writes_a.count(POWER_CAP) == 1
        assert _command(engine, dev_a)["status"] == "claimed"
        procs[a].kill()
        assert await procs[a].wait() == -signal.SIGKILL
        r = await sent
        assert r.error is None and r.verified and r.readback_kw == 15.0, r
        assert _command(engine, dev_a) == {"status": "confirmed", "claimed_by": b,
                                           "written": False, "readback_kw": 15.0}
        await asyncio.sleep(1.0)  # b keeps polling and feeding it: still the one write
        assert writes_a.count(POWER_CAP) == 1
    finally:
        await remote.close()
        db.close()
        for p in procs.values():
            await stop(p)
        for gw in gws:
            await gw.stop()
