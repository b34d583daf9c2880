"""Restart safety: ``vpp serve`` as a subprocess is killed with SIGKILL in the middle of an
event, started again, and resumes the event from the database without sending the interval's
setpoints again or re-planning; SIGTERM then drains it and it exits 0."""

from __future__ import annotations

import asyncio
import signal
from datetime import datetime
from pathlib import Path

import aiohttp
from sqlalchemy import Engine, text
from sqlmodel import select

from tests.vpp.daemon.harness import (
    call_now,
    gateway_spec,
    get_json,
    is_up,
    port,
    room_in_interval,
    seed,
    send_json,
    serve_config,
    spawn_serve,
    start_gateway,
    stored_id,
    wait_for,
)
from vpp.db import session_scope
from vpp.models import AuditLog, DispatchPlan, Setpoint


def process_url(engine: Engine) -> str:
    """The URL another process (``vpp serve``) opens the same database with: on PostgreSQL the
    test's schema goes in the URL (``options=-csearch_path=...``, passed on to libpq)."""
    url = engine.url
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            schema = str(conn.execute(text("SELECT current_schema()")).scalar())
        url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def _iso(written_at: datetime | None) -> str:
    """A written setpoint's ``written_at`` (set whenever its status is "written")."""
    assert written_at is not None, "a written setpoint has its time"
    return written_at.isoformat()


def _state(engine: Engine) -> tuple[int, int, dict[int, str]]:
    with session_scope(engine) as s:
        audits = len(s.exec(select(AuditLog).where(AuditLog.action == "setpoint_written")).all())
        plans = len(s.exec(select(DispatchPlan)).all())
        written = {stored_id(r.id): _iso(r.written_at) for r in s.exec(
            select(Setpoint).where(Setpoint.status == "written"))}
    return audits, plans, written


async def test_kill_9_mid_event_then_resume(engine: Engine, tmp_path: Path) -> None:
    tokens = seed(engine)
    cfg = serve_config(tmp_path, process_url(engine))
    gspec = gateway_spec(port())
    gw = await start_gateway(gspec)
    http_port = port()
    base = f"http://127.0.0.1:{http_port}"
    log = tmp_path / "daemon.log"
    proc = await spawn_serve(cfg, http_port, log)
    try:
        async with aiohttp.ClientSession() as c:
            await wait_for(lambda: is_up(c, base), timeout_s=60, what="the daemon")
            await send_json(c, "POST", f"{base}/api/v1/gateways", tokens.owner,
                            {"site": "mall", **gspec}, 202)

            async def polled() -> bool:
                devs = await get_json(c, f"{base}/api/v1/devices", tokens.operator)
                return bool(devs) and all(d["power_kw"] is not None for d in devs)

            await wait_for(polled, what="devices polled")
            await room_in_interval(90)  # the restart below must not cross into a new interval
            decision = await send_json(c, "POST", f"{base}/api/v1/grid/calls", tokens.grid,
                                       call_now("rt-kill", 6.0), 201)
            event_id = decision["event_id"]

            async def dispatched() -> bool:
                d = await get_json(c, f"{base}/api/v1/events/{event_id}/delivery", tokens.grid)
                return d["setpoints"].get("written", 0) == 2

            await wait_for(dispatched, what="setpoints written")
            before = _state(engine)
            held = {u: d.setpoint_kw for u, d in gw.devices.items()}
            assert all(v is not None and v < 0 for v in held.values())

            proc.kill()  # SIGKILL: no drain, no release
            assert await proc.wait() == -signal.SIGKILL
            assert {u: d.setpoint_kw for u, d in gw.devices.items()} == held

            proc = await spawn_serve(cfg, http_port, log)
            await wait_for(lambda: is_up(c, base), timeout_s=60, what="the restarted daemon")

            async def resumed() -> dict | None:
                st = await get_json(c, f"{base}/api/v1/fleet/status", tokens.operator)
                return st if st["active_event"] and st["delivered_kw"] is not None else None

            status = await wait_for(resumed, what="the event resumed")
            assert status["active_event"]["id"] == event_id
            assert status["delivered_kw"] > 0
            await asyncio.sleep(2.0)  # several control cycles after the restart
            after = _state(engine)
            assert after == before  # nothing re-sent, nothing re-planned, no row rewritten
            assert {u: d.setpoint_kw for u, d in gw.devices.items()} == held
            events = await get_json(c, f"{base}/api/v1/events", tokens.grid)
            assert [(e["id"], e["status"]) for e in events] == [(event_id, "active")]

            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            assert "daemon stopped" in log.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await gw.stop()
