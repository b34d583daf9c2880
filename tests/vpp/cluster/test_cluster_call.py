"""A grid call through a whole cluster (issue 19 item 1): one ``vpp serve --role planner`` and
two ``--role poller`` over PostgreSQL. The call reaches the planner's API; it plans from the
states the pollers stored, and its dispatch (the one path, ``FleetRuntime.apply``) sends the
setpoints as commands, each executed by the poller that owns the device's gateway, confirmed
with its read-back and recorded as written in the plan. Real processes, real pymodbus
batteries; nothing mocked."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from sqlalchemy import Engine, text

from tests.vpp.cluster.harness import (
    active_fleet,
    cluster_config,
    lease_owners,
    postgres_only,
    spawn,
    split_names,
    stop,
)
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
from vpp.cluster.share import assign


def _commands(engine: Engine) -> list[tuple[int, str, str, int]]:
    """(device, status, claimed_by, gateway) of every command."""
    with engine.connect() as conn:
        return [(int(d), str(s), str(c), int(g)) for d, s, c, g in conn.execute(text(
            "SELECT device_id, status, claimed_by, gateway_id FROM device_command "
            "ORDER BY id")).all()]


async def test_a_call_is_planned_by_the_planner_and_written_by_the_pollers(
        engine: Engine, tmp_path: Path) -> None:
    postgres_only(engine)
    tokens = seed(engine)
    gws, by_id = await active_fleet(engine, 2)
    a, b = split_names(by_id)
    want = assign(by_id, [a, b])
    cfg = cluster_config(tmp_path, engine)
    http_port = port()
    base = f"http://127.0.0.1:{http_port}"
    procs = [await spawn(cfg, "poller", a, tmp_path / "a.log"),
             await spawn(cfg, "poller", b, tmp_path / "b.log"),
             await spawn(cfg, "planner", "planner-1", tmp_path / "planner.log",
                         http_port=http_port)]
    try:
        async with aiohttp.ClientSession() as c:
            await wait_for(lambda: is_up(c, base), timeout_s=60, what="the planner's API")

            async def ready() -> bool:
                devs = await get_json(c, f"{base}/api/v1/devices", tokens.operator)
                polled = len(devs) == 4 and all(d["power_kw"] is not None for d in devs)
                return polled and lease_owners(engine) == want
            await wait_for(ready, timeout_s=60, what="the planner seeing the pollers' readings")
            await room_in_interval(60)
            decision = await send_json(c, "POST", f"{base}/api/v1/grid/calls", tokens.grid,
                                       call_now("rt-cluster", 12.0), 201)
            event_id = decision["event_id"]

            async def dispatched() -> dict | None:
                d = await get_json(c, f"{base}/api/v1/events/{event_id}/delivery", tokens.grid)
                return d if d["setpoints"].get("written", 0) == 4 else None
            await wait_for(dispatched, timeout_s=60, what="the setpoints written")
        cmds = _commands(engine)
        assert {d for d, *_ in cmds} and all(s == "confirmed" for _, s, _, _ in cmds), cmds
        assert all(w == want[g] for _, _, w, g in cmds)  # each by its gateway's owner
        held = [dev.setpoint_kw for gw in gws for dev in gw.devices.values()]
        assert all(kw is not None and kw < 0 for kw in held), held  # all four discharging
    finally:
        for p in procs:
            await stop(p)
        for gw in gws:
            await gw.stop()
