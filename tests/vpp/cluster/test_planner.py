"""The planner/settlement role of a cluster (issue 19 item 1): two ``vpp serve --role
planner`` processes, one holds the PostgreSQL advisory lock and plans/settles, the other waits;
the holder SIGKILLed, the standby takes the role and does the work (it settles an event that
ended). Real PostgreSQL, real subprocesses; the holder is read from ``pg_locks`` /
``pg_stat_activity`` (the lock connection's application name), not from the processes."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from tests.vpp.cluster.harness import (
    active_fleet,
    cluster_config,
    postgres_only,
    spawn,
    stop,
)
from tests.vpp.daemon.harness import add_completed_event, wait_for
from vpp.db import session_scope
from vpp.models import GridEvent


def _holders(engine: Engine, names: list[str]) -> list[str]:
    """Which of ``names`` hold an advisory lock now (granted)."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = ANY(:n)"),
            {"n": [f"vpp-planner:{n}" for n in names]}).all()
    return sorted(str(r[0]).removeprefix("vpp-planner:") for r in rows)


def _waiting(engine: Engine, name: str) -> bool:
    """Whether ``name`` has its lock connection open (a standby trying the lock)."""
    with engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :n"),
            {"n": f"vpp-planner:{name}"}).scalar())


async def test_killing_the_planner_moves_the_role(engine: Engine, tmp_path: Path) -> None:
    postgres_only(engine)
    gws, by_id = await active_fleet(engine, 1)
    tag = uuid.uuid4().hex[:6]
    p1, p2 = f"planner-1-{tag}", f"planner-2-{tag}"
    cfg = cluster_config(tmp_path, engine)
    log2 = tmp_path / "p2.log"
    procs = {p1: await spawn(cfg, "planner", p1, tmp_path / "p1.log")}
    try:
        await wait_for(lambda: _async(_holders(engine, [p1, p2]) == [p1]), timeout_s=60,
                       what="the first planner holding the lock")
        procs[p2] = await spawn(cfg, "planner", p2, log2)
        await wait_for(lambda: _async(_waiting(engine, p2)), timeout_s=60,
                       what="the second planner trying the lock")
        await asyncio.sleep(1.5)  # three of its tries (planner_retry_s 0.5)
        assert _holders(engine, [p1, p2]) == [p1]  # one planner at a time
        assert "planner role taken" not in log2.read_text()

        procs[p1].kill()
        assert await procs[p1].wait() == -signal.SIGKILL
        killed = time.monotonic()
        await wait_for(lambda: _async(_holders(engine, [p1, p2]) == [p2]), timeout_s=30,
                       what="the standby taking the planner role")
        print(f"planner role moved in {time.monotonic() - killed:.1f} s (retry 0.5 s)")
        assert "planner role taken" in log2.read_text()

        # the new planner does the role's work: it settles an event that ended
        with engine.connect() as conn:
            devices = [int(r[0]) for r in conn.execute(text("SELECT id FROM device")).all()]
            owner = int(conn.execute(text("SELECT id FROM owner")).scalar() or 0)
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
        with session_scope(engine) as s:
            event_id = add_completed_event(s, "after-failover", start, devices, owner, 5.0, 4.0)

        async def settled() -> str | None:
            with session_scope(engine) as s:
                ev = s.get(GridEvent, event_id)
                return ev.status if ev is not None and ev.status != "completed" else None
        status = await wait_for(settled, timeout_s=30, what="the event settled by p2")
        assert status in ("settled", "unsettled")  # unmetered devices: unsettled, with why
    finally:
        for p in procs.values():
            await stop(p)
        for gw in gws:
            await gw.stop()


async def _async(value: bool) -> bool:
    return value
