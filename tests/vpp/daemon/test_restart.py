"""Restart safety: ``vpp serve`` as a subprocess is killed with SIGKILL in the middle of an
event, started again, and resumes the event from the database without sending the interval's
setpoints again or re-planning; SIGTERM then drains it and it exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
from sqlalchemy import Engine
from sqlmodel import select

from tests.conftest import REPO_ROOT
from tests.vpp.daemon.harness import (
    PROGRAMME,
    call_now,
    gateway_spec,
    get_json,
    port,
    seed,
    send_json,
    start_gateway,
    wait_for,
    write_test_programme,
)
from vpp.db import session_scope
from vpp.models import AuditLog, DispatchPlan, Setpoint


def _config(tmp: Path, db_url: str) -> Path:
    write_test_programme(tmp / "programmes")
    cfg = tmp / "daemon.toml"
    cfg.write_text(f"""
database_url = "{db_url}"
[service]
data_dir = "{tmp}"
[polling]
interval_s = 0.3
timeout_s = 0.5
retries = 1
watchdog_period_s = 1.0
[bidding]
programme = "{PROGRAMME}"
programmes_dir = "{tmp / 'programmes'}"
[daemon]
control_period_s = 0.3
min_replan_interval_s = 3600.0
accept_short_notice = true
drain_timeout_s = 5.0
""")
    return cfg


async def _spawn(cfg: Path, http_port: int, log: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("VPP_CONFIG", None)
    with log.open("ab") as fh:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vpp.cli.main", "--config", str(cfg), "serve",
            "--port", str(http_port), cwd=str(cfg.parent), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=fh,
        )


async def _up(c: aiohttp.ClientSession, base: str) -> bool:
    try:
        async with c.get(f"{base}/api/v1/health") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


def _state(engine: Engine) -> tuple[int, int, dict[int, str]]:
    with session_scope(engine) as s:
        audits = len(s.exec(select(AuditLog).where(AuditLog.action == "setpoint_written")).all())
        plans = len(s.exec(select(DispatchPlan)).all())
        written = {int(r.id or 0): r.written_at.isoformat() for r in s.exec(
            select(Setpoint).where(Setpoint.status == "written"))}
    return audits, plans, written


async def test_kill_9_mid_event_then_resume(sqlite_engine: Engine, tmp_path: Path) -> None:
    engine = sqlite_engine
    tokens = seed(engine)
    cfg = _config(tmp_path, str(engine.url))
    gspec = gateway_spec(port())
    gw = await start_gateway(gspec)
    http_port = port()
    base = f"http://127.0.0.1:{http_port}"
    log = tmp_path / "daemon.log"
    proc = await _spawn(cfg, http_port, log)
    try:
        async with aiohttp.ClientSession() as c:
            await wait_for(lambda: _up(c, base), timeout_s=60, what="the daemon")
            await send_json(c, "POST", f"{base}/api/v1/gateways", tokens.owner,
                            {"site": "mall", **gspec}, 202)

            async def polled() -> bool:
                devs = await get_json(c, f"{base}/api/v1/devices", tokens.operator)
                return bool(devs) and all(d["power_kw"] is not None for d in devs)

            await wait_for(polled, what="devices polled")
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

            proc = await _spawn(cfg, http_port, log)
            await wait_for(lambda: _up(c, base), timeout_s=60, what="the restarted daemon")

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
