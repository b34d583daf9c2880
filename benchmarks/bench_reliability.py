"""Crash and restart: ``vpp serve`` (a real subprocess, SQLite, one simulated Modbus gateway on
loopback) is killed with SIGKILL at random points of an event, N times, and restarted each
time. After every kill the database is checked:

* telemetry stored before the kill is all still there, with no (device, timestamp) twice;
* no setpoint is written twice for the same device and interval (across plans and restarts);
* every ledger transaction balances to zero fen and no idempotency key is used twice;
* the simulated devices still hold exactly the setpoint the database says was written;
* settlement (``--settle-kills`` more kills): finished events are put in the database and the
  daemon is killed *while settling them*: at a fault-injection point (``VPP_FAILPOINTS``, see
  :mod:`vpp.failpoints`: before an event is settled, inside the ledger transaction with every
  row written but nothing committed, right after the commit) or at a random moment of the
  settle loop. After every kill each event is either settled whole (one settlement, one
  ledger transaction whose legs match the settlement and its payouts, one audit record, status
  ``settled``) or not at all (none of them); after the last restart every event is settled
  exactly once.

Figure (ratio against a baseline measured in the same run): time from restart to a healthy API
against the cold start of the same daemon.

    uv run python benchmarks/bench_reliability.py            # 12 kills + 8 during settlement
    uv run python benchmarks/bench_reliability.py --quick    # 2 kills + 2 during settlement

Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from sqlalchemy import Engine, func, select  # noqa: E402
from sqlmodel import Session, col  # noqa: E402
from sqlmodel import select as sm_select  # noqa: E402

from tests.reliability.settlement import add_finished_events, check_settlements  # noqa: E402
from tests.vpp.daemon.harness import (  # noqa: E402
    call_now,
    gateway_spec,
    get_json,
    is_up,
    port,
    seed,
    send_json,
    serve_config,
    spawn_serve,
    start_gateway,
    wait_for,
)
from vpp.db import make_engine, session_scope, upgrade  # noqa: E402
from vpp.failpoints import ENV as FAILPOINTS_ENV  # noqa: E402
from vpp.models import (  # noqa: E402
    Device,
    DispatchPlan,
    LedgerEntry,
    LedgerTransaction,
    Setpoint,
    TelemetryReading,
    table_of,
)  # noqa: E402

# in turn, so that even --quick kills inside the ledger transaction once
SETTLE_POINTS = ["ledger.posted", "random", "settle.start", "settle.committed"]
PAUSE_S = 1.5  # at a failpoint: the kill lands within this pause

warnings.filterwarnings("ignore", category=PendingDeprecationWarning)


def telemetry_snapshot(engine: Engine) -> tuple[int, Any]:
    t = table_of(TelemetryReading)
    with engine.connect() as conn:
        return conn.execute(select(func.count(), func.max(t.c.ts)).select_from(t)).one()


def _plan(s: Session, plan_id: int) -> DispatchPlan:
    """The plan a setpoint row belongs to (the foreign key guarantees it exists)."""
    plan = s.get(DispatchPlan, plan_id)
    assert plan is not None, f"setpoint of a missing plan {plan_id}"
    return plan


def check(engine: Engine, before: tuple[int, Any]) -> dict[str, int]:
    """The invariants after a kill; raises AssertionError with what was lost or doubled."""
    t = table_of(TelemetryReading)
    count_before, max_ts = before
    with engine.connect() as conn:
        kept = conn.execute(select(func.count()).select_from(t).where(t.c.ts <= max_ts)
                            ).scalar_one() if max_ts is not None else 0
        total = conn.execute(select(func.count()).select_from(t)).scalar_one()
        distinct = conn.execute(select(func.count()).select_from(
            select(t.c.device_id, t.c.ts).distinct().subquery())).scalar_one()
    assert kept >= count_before, f"telemetry lost: {count_before} before the kill, {kept} after"
    assert distinct == total, f"{total - distinct} telemetry readings stored twice"
    with session_scope(engine) as s:
        written = Counter((r.device_id, r.interval_start) for r in s.exec(
            sm_select(Setpoint).where(col(Setpoint.status) == "written")))
        twice = {k: n for k, n in written.items() if n > 1}
        if twice:
            detail = [(r.plan_id, r.setpoint_kw, r.written_at, _plan(s, r.plan_id).status,
                       (_plan(s, r.plan_id).detail or {}).get("reason"))
                      for r in s.exec(sm_select(Setpoint).where(col(Setpoint.status) == "written"))
                      if (r.device_id, r.interval_start) in twice]
            raise AssertionError(f"setpoints written twice for the same interval: {twice}: "
                                 f"{detail}")
        keys = Counter(s.exec(sm_select(LedgerTransaction.idempotency_key)))
        assert all(n == 1 for n in keys.values()), "a ledger idempotency key used twice"
        sums = s.exec(sm_select(col(LedgerEntry.transaction_id),
                                func.sum(col(LedgerEntry.amount_fen)))
                      .group_by(col(LedgerEntry.transaction_id))).all()
        assert all(v == 0 for _, v in sums), "an unbalanced ledger transaction"
        n_ledger = s.execute(select(func.count()).select_from(LedgerEntry)).scalar_one()
    return {"telemetry": int(total), "setpoints_written": sum(written.values()),
            "ledger_entries": int(n_ledger)}


def log_offset(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def wait_failpoint(path: Path, offset: int, name: str, timeout_s: float) -> None:
    """Wait for the daemon's ``failpoint reached`` log line for ``name`` after ``offset``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with path.open("rb") as fh:
            fh.seek(offset)
            for raw in fh.read().splitlines():
                if b'"failpoint"' in raw and json.loads(raw).get("failpoint") == name:
                    return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the daemon never reached failpoint {name} within {timeout_s} s")


async def crash_loop(kills: int, seed_: int, tmp: Path, settle_kills: int = 0
                     ) -> dict[str, Any]:
    rng = random.Random(seed_)
    engine = make_engine(f"sqlite:///{tmp / 'vpp.sqlite3'}")
    upgrade(engine)
    tokens = seed(engine)
    cfg = serve_config(tmp, str(engine.url))
    cfg.write_text(cfg.read_text().replace("[daemon]\n", "[daemon]\nsettle_period_s = 0.5\n"))
    gspec = gateway_spec(port())
    gw = await start_gateway(gspec)
    http_port = port()
    base = f"http://127.0.0.1:{http_port}"
    log = tmp / "daemon.log"
    starts: list[float] = []
    checked: dict[str, int] = {}
    phases: Counter[str] = Counter()
    event_id = None
    proc = None
    total = kills + settle_kills
    to_settle: list[int] = []
    settle_checked: dict[str, int] = {}
    try:
        async with aiohttp.ClientSession() as c:
            for i in range(total + 1):
                point = SETTLE_POINTS[(i - kills) % len(SETTLE_POINTS)] if kills <= i < total \
                    else None
                if point not in (None, "random"):
                    os.environ[FAILPOINTS_ENV] = f"{point}=pause:{PAUSE_S}"
                else:
                    os.environ.pop(FAILPOINTS_ENV, None)
                t0 = time.perf_counter()
                proc = await spawn_serve(cfg, http_port, log)
                await wait_for(lambda: is_up(c, base), timeout_s=90, what="the daemon",
                               every_s=0.05)
                starts.append(time.perf_counter() - t0)
                if i == 0:
                    await send_json(c, "POST", f"{base}/api/v1/gateways", tokens.owner,
                                    {"site": "mall", **gspec}, 202)

                    async def polled() -> bool:
                        devs = await get_json(c, f"{base}/api/v1/devices", tokens.operator)
                        return bool(devs) and all(d["power_kw"] is not None for d in devs)

                    await wait_for(polled, timeout_s=60, what="devices polled")
                if i == total:
                    break
                if point is not None:  # kill while settling two events that just finished
                    offset = log_offset(log)
                    to_settle += add_finished_events(engine, tokens.owner_id, 2, i)
                    if point == "random":
                        await asyncio.sleep(rng.uniform(0.0, 2.0))  # settle loop: every 0.5 s
                    else:
                        await wait_failpoint(log, offset, point, timeout_s=60)
                        await asyncio.sleep(rng.uniform(0.0, 0.9 * PAUSE_S))
                    phase = f"settlement: {point}"
                elif event_id is None and i >= 1:
                    decision = await send_json(c, "POST", f"{base}/api/v1/grid/calls",
                                               tokens.grid, call_now("rt-crash", 6.0), 201)
                    event_id = decision["event_id"]
                    phase = "right after the call (planning / dispatching)"
                    await asyncio.sleep(rng.uniform(0.0, 1.0))
                else:
                    phase = "steady event" if event_id else "polling, no event"
                    await asyncio.sleep(rng.uniform(0.2, 2.5))
                phases[phase] += 1
                before = telemetry_snapshot(engine)
                proc.kill()
                assert await proc.wait() == -signal.SIGKILL
                checked = check(engine, before)
                with session_scope(engine) as s:  # the devices hold what the database says
                    rows = s.exec(sm_select(Setpoint).where(col(Setpoint.status) == "written")
                                  .order_by(col(Setpoint.interval_start))).all()
                    unit_of = {int(d.id or 0): d.unit_id for d in s.exec(sm_select(Device)).all()}
                latest = {r.device_id: r for r in rows}
                # every device with a written setpoint still holds one after the kill (the plan
                # aims at the declared kW, so it need not use every device)
                held = {unit_of[i]: gw.devices[unit_of[i]].setpoint_kw for i in latest}
                assert all(h is not None for h in held.values()), held
                if to_settle:
                    settle_checked = check_settlements(engine, to_settle)
            if to_settle:  # the last restart settles what the kills interrupted, once

                async def all_settled() -> bool:
                    return check_settlements(engine, to_settle)["settled"] == len(to_settle)

                await wait_for(all_settled, timeout_s=90, what="every event settled")
                settle_checked = check_settlements(engine, to_settle)
                checked = check(engine, telemetry_snapshot(engine))
            assert proc is not None  # the loop above ran at least once
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0, "no clean drain at the end"
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await gw.stop()
        engine.dispose()
    cold, restarts = starts[0], starts[1:]
    return {"kills": total, "restarts_survived": len(restarts), "seed": seed_,
            "phases": dict(phases), "records_checked": checked,
            "settlement": settle_checked,
            "cold_start_s": round(cold, 2),
            "restart_to_healthy_s_mean": round(statistics.mean(restarts), 2),
            "restart_vs_cold_start_ratio": round(statistics.mean(restarts) / cold, 2),
            "lost": 0, "duplicated": 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 + 2 kills (< 60 s)")
    ap.add_argument("--kills", type=int, default=None, help="kills around an event")
    ap.add_argument("--settle-kills", type=int, default=None,
                    help="kills while settling finished events")
    ap.add_argument("--seed", type=int, default=20261125)
    args = ap.parse_args()
    kills = args.kills if args.kills is not None else (2 if args.quick else 12)
    settle_kills = args.settle_kills if args.settle_kills is not None else (
        2 if args.quick else 8)
    d = tempfile.mkdtemp(prefix="vpp-crash-")  # kept: the database and log show what happened
    res = asyncio.run(crash_loop(kills, args.seed, Path(d), settle_kills))
    print(f"{res['kills']} SIGKILLs at random points, {res['restarts_survived']} restarts "
          f"survived; phases: {res['phases']}")
    print(f"records checked after the last kill: {res['records_checked']}; lost 0, doubled 0")
    if res["settlement"]:
        print(f"settlement: {res['settlement']['events']} events settled during the kills, "
              f"each settled whole or not at all after every kill, all settled exactly once "
              f"after the last restart")
    print(f"restart to healthy: {res['restart_to_healthy_s_mean']} s mean = "
          f"{res['restart_vs_cold_start_ratio']}x the cold start ({res['cold_start_s']} s)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
