"""Poller workers over PostgreSQL (issue 19 item 1): two ``vpp serve --role poller`` processes
share a fleet of simulated gateways, each gateway polled by exactly one; a worker killed with
SIGKILL has its gateways taken over by the other within the lease, no reading doubled, and the
setpoints its devices held (confirmed commands) kept by their new owner."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from sqlalchemy import Engine, text

from sim.device import SimulatedDevice
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
from vpp.cluster.remote import RemoteSetpoints
from vpp.cluster.share import assign
from vpp.config_cluster import ClusterSettings
from vpp.daemon.dbexec import Db

GATEWAYS = 4
DISCHARGE_POWER = 47249  # huawei-luna2000 forced_discharge_power (a setpoint < 0 writes it)


def _units(engine: Engine, device_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Device -> (gateway id, unit id)."""
    with engine.connect() as conn:
        return {int(i): (int(g), int(u)) for i, g, u in conn.execute(text(
            "SELECT id, gateway_id, unit_id FROM device WHERE id = ANY(:d)"),
            {"d": device_ids}).all()}


def _record_writes(dev: SimulatedDevice) -> list[int]:
    """Register addresses written to a simulated device from now on (observing our
    simulator)."""
    seen: list[int] = []
    original = dev.write

    def write(address: int, words: list[int]) -> int | None:
        seen.append(address)
        return original(address, words)

    dev.write = write  # type: ignore[method-assign]
    return seen


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

        # a's devices hold setpoints it confirmed (commands, as the planner sends them)
        moved = sorted(g for g, w in want.items() if w == a)
        moved_devices = _devices_of(engine, moved)
        db = Db(engine)
        remote = RemoteSetpoints(db, ClusterSettings(heartbeat_s=HEARTBEAT_S, lease_s=LEASE_S,
                                                     command_timeout_s=20.0))
        try:
            for d in moved_devices:
                r = await remote.apply(d, -2.0)
                assert r.error is None and r.verified, r
        finally:
            await remote.close()
            db.close()

        # SIGKILL worker a: its gateways go to b within the lease, nothing doubled
        procs[a].kill()
        assert await procs[a].wait() == -signal.SIGKILL
        killed_at = time.monotonic()
        units = _units(engine, moved_devices)
        rewrites = {d: _record_writes(by_id[g].devices[u]) for d, (g, u) in units.items()}

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

        # b keeps the setpoints a confirmed: its heartbeats re-issue them (huawei-luna2000
        # heartbeats rewrite the forced command), with no new command
        async def kept() -> bool:
            return all(DISCHARGE_POWER in w for w in rewrites.values())
        await wait_for(kept, timeout_s=20, what="b holding the setpoints a confirmed")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM device_command")).scalar() == len(
                moved_devices)
        assert all(by_id[g].devices[u].setpoint_kw == -2.0 for g, u in units.values())
        with engine.connect() as conn:  # the killed worker's committed readings stay
            stored = int(conn.execute(text("SELECT count(*) FROM telemetry")).scalar() or 0)
        assert stored >= sum(grown.values())
        print(f"takeover after SIGKILL: {takeover_s:.1f} s (lease {LEASE_S} s, "
              f"heartbeat {HEARTBEAT_S} s)")
    finally:
        for p in procs.values():
            await stop(p)
        for gw in gws:
            await gw.stop()
