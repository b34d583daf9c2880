"""Poller workers over PostgreSQL (issue 19 item 1): two ``vpp serve --role poller`` processes
share a fleet of simulated gateways, each gateway polled by exactly one; a worker killed with
SIGKILL has its gateways taken over by the other within the lease, no reading doubled."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from sqlalchemy import Engine, text

from tests.vpp.cluster.harness import (
    HEARTBEAT_S,
    LEASE_S,
    active_fleet,
    cluster_config,
    doubled_readings,
    lease_owners,
    postgres_only,
    readings_after,
    spawn,
    split_names,
    stop,
)
from tests.vpp.daemon.harness import wait_for
from vpp.cluster.share import assign

GATEWAYS = 4


def _devices_of(engine: Engine, gateway_ids: list[int]) -> list[int]:
    with engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(text(
            "SELECT id FROM device WHERE gateway_id = ANY(:g) ORDER BY id"),
            {"g": gateway_ids}).all()]


async def _connections_per_gateway(by_id: dict, seconds: float) -> int:  # noqa: ANN001
    """The most client connections any gateway had at once, sampled over ``seconds``."""
    most = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for gw in by_id.values():
            most = max(most, len(gw._server.active_connections))
        await asyncio.sleep(0.05)
    return most


async def test_two_pollers_share_the_fleet_and_take_over_a_killed_one(
        engine: Engine, tmp_path: Path) -> None:
    postgres_only(engine)
    gws, by_id = await active_fleet(engine, GATEWAYS)
    a, b = split_names(by_id)
    want = assign(by_id, [a, b])
    cfg = cluster_config(tmp_path, engine)
    procs = {a: await spawn(cfg, "poller", a, tmp_path / "a.log"),
             b: await spawn(cfg, "poller", b, tmp_path / "b.log")}
    try:
        async def split() -> bool:
            return lease_owners(engine) == want
        await wait_for(split, timeout_s=60, what="the gateways split between the workers")
        all_devices = _devices_of(engine, list(by_id))
        before = readings_after(engine, all_devices)
        # each gateway polled by exactly one: one client connection at a time, all along
        assert await _connections_per_gateway(by_id, 3.0) == 1
        assert lease_owners(engine) == want
        grown = readings_after(engine, all_devices)
        assert all(grown[d] > before.get(d, 0) for d in all_devices), "every device is read"

        # SIGKILL worker a: its gateways go to b within the lease, nothing doubled
        moved = sorted(g for g, w in want.items() if w == a)
        moved_devices = _devices_of(engine, moved)
        procs[a].kill()
        assert await procs[a].wait() == -signal.SIGKILL
        killed_at = time.monotonic()

        async def taken() -> bool:
            return set(lease_owners(engine).values()) == {b}
        await wait_for(taken, timeout_s=30, what="the killed worker's gateways taken over")
        takeover_s = time.monotonic() - killed_at
        assert takeover_s < LEASE_S + 2 * HEARTBEAT_S + 10.0, takeover_s  # the stated bound
        at_takeover = readings_after(engine, moved_devices)

        async def polled_again() -> bool:
            now = readings_after(engine, moved_devices)
            return all(now.get(d, 0) > at_takeover.get(d, 0) for d in moved_devices)
        await wait_for(polled_again, timeout_s=20, what="the moved devices read by b")
        assert await _connections_per_gateway(by_id, 1.0) == 1
        assert doubled_readings(engine) == 0
        with engine.connect() as conn:  # the killed worker's committed readings stay
            kept = int(conn.execute(text("SELECT count(*) FROM telemetry")).scalar() or 0)
        assert kept >= sum(grown.values())
        print(f"takeover after SIGKILL: {takeover_s:.1f} s (lease {LEASE_S} s, "
              f"heartbeat {HEARTBEAT_S} s)")
    finally:
        for p in procs.values():
            await stop(p)
        for gw in gws:
            await gw.stop()
