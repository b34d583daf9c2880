"""The planner killed in the middle of an event (issue 19 item 1): a cluster of one poller and
two planners takes a call through the first planner, which plans it and has its setpoints
written by the poller (commands); the first planner is SIGKILLed; the standby takes the role and
resumes the event from the database without sending the interval's setpoints again or
re-planning, as a restarted single process does (tests/vpp/daemon/test_restart.py). Real
PostgreSQL, ``vpp serve`` subprocesses, pymodbus batteries."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
from sqlalchemy import Engine, text

from tests.vpp.cluster.harness import active_fleet, cluster_config, postgres_only, spawn, stop
from tests.vpp.daemon.harness import (
    call_now,
    get_json,
    is_up,
    port,
    room_in_interval,
    seed,
    send_json,
    wait_for,
)


def _state(engine: Engine) -> tuple[int, int, int, list[tuple[int, str]]]:
    """(setpoint audit rows, plans, commands, written setpoint rows)."""
    with engine.connect() as conn:
        one = conn.execute(text(
            "SELECT (SELECT count(*) FROM audit_log WHERE action = 'setpoint_written'), "
            "(SELECT count(*) FROM dispatch_plan), (SELECT count(*) FROM device_command)")).one()
        written = conn.execute(text(
            "SELECT id, status FROM setpoint WHERE status = 'written' ORDER BY id")).all()
    return int(one[0]), int(one[1]), int(one[2]), [(int(i), str(s)) for i, s in written]


async def test_the_standby_planner_resumes_the_event_without_resending(
        engine: Engine, tmp_path: Path) -> None:
    postgres_only(engine)
    tokens = seed(engine)
    gws, _ = await active_fleet(engine, 1)
    cfg = cluster_config(tmp_path, engine)
    p1_port, p2_port = port(), port()
    base1, base2 = f"http://127.0.0.1:{p1_port}", f"http://127.0.0.1:{p2_port}"
    procs = [await spawn(cfg, "poller", "poller-1", tmp_path / "poller.log")]
    procs.append(await spawn(cfg, "planner", "planner-1", tmp_path / "p1.log", http_port=p1_port))
    try:
        async with aiohttp.ClientSession() as c:
            await wait_for(lambda: is_up(c, base1), timeout_s=60, what="planner 1")

            async def seen() -> bool:
                devs = await get_json(c, f"{base1}/api/v1/devices", tokens.operator)
                return len(devs) == 2 and all(d["power_kw"] is not None for d in devs)
            await wait_for(seen, timeout_s=60, what="planner 1 seeing the poller's readings")
            procs.append(await spawn(cfg, "planner", "planner-2", tmp_path / "p2.log",
                                     http_port=p2_port))
            await wait_for(lambda: is_up(c, base2), timeout_s=60, what="planner 2 (standby)")
            await room_in_interval(90)  # the failover must not cross into a new interval
            decision = await send_json(c, "POST", f"{base1}/api/v1/grid/calls", tokens.grid,
                                       call_now("rt-failover", 6.0), 201)
            event_id = decision["event_id"]

            async def dispatched() -> bool:
                d = await get_json(c, f"{base1}/api/v1/events/{event_id}/delivery",
                                   tokens.grid)
                return d["setpoints"].get("written", 0) == 2
            await wait_for(dispatched, timeout_s=60, what="setpoints written through commands")
            before = _state(engine)
            held = [d.setpoint_kw for gw in gws for d in gw.devices.values()]
            assert all(kw is not None and kw < 0 for kw in held), held

            standby = await get_json(c, f"{base2}/api/v1/fleet/status", tokens.operator)
            assert not standby["active_event"]  # the standby's control loop does not step

            procs[1].kill()  # planner 1: SIGKILL mid-event
            assert await procs[1].wait() == -signal.SIGKILL

            async def resumed() -> bool:
                if "planner role taken" not in (tmp_path / "p2.log").read_text():
                    return False
                st = await get_json(c, f"{base2}/api/v1/fleet/status", tokens.operator)
                return bool(st["active_event"]) and st["active_event"]["id"] == event_id
            await wait_for(resumed, timeout_s=30, what="planner 2 resuming the event")
            await asyncio.sleep(2.0)  # several control cycles of the new planner
            assert _state(engine) == before  # nothing re-sent, re-planned or rewritten
            assert [d.setpoint_kw for gw in gws for d in gw.devices.values()] == held
            events = await get_json(c, f"{base2}/api/v1/events", tokens.grid)
            assert [(e["id"], e["status"]) for e in events] == [(event_id, "active")]
    finally:
        for p in procs:
            await stop(p)
        for gw in gws:
            await gw.stop()
