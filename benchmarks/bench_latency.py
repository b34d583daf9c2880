"""Latency of a real-time call: received -> every setpoint written, for a fleet of simulated
devices over Modbus TCP on loopback, against the bare time to write the same number of
setpoints with no intake, bidding, planning or bookkeeping (same adapters, same fan-out, same run).

Set-up: ``vpp sim gateways`` serves the fleet (100 unit ids per gateway) in a separate process;
the devices are registered in a fresh SQLite database and marked active (the enrolment probe
is not part of the measured path); the real daemon (``vpp.server.Daemon``) serves HTTP on
a free port and polls the fleet every second. For each repetition: the grid POSTs a real-time
call to ``/api/v1/grid/calls``; the clock stops when every ``Setpoint`` row of the current
interval is written (polled every 10 ms from the database), and the daemon's own
``vpp_call_to_dispatch_seconds`` histogram is read as a cross-check; then the event is cancelled
(devices released) before the next repetition.

    uv run python benchmarks/bench_latency.py            # 1,000 devices, 3 calls
    uv run python benchmarks/bench_latency.py --quick    # 200 devices, 2 calls (< 60 s)

Ends with one JSON line of the figures. Target: < 5 s from call to every setpoint written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from sqlalchemy import Engine, func, select  # noqa: E402
from sqlmodel import col  # noqa: E402

from sim.fleet import SYNTHETIC_KINDS  # noqa: E402
from sim.ports import free_port_block  # noqa: E402,F401  (bench_load imports it from here)
from tests.vpp.daemon.harness import daemon_settings, seed  # noqa: E402
from vpp import fleet  # noqa: E402
from vpp.daemon.logs import configure_logging  # noqa: E402
from vpp.db import make_engine, session_scope, upgrade  # noqa: E402
from vpp.models import DispatchPlan, EnrolmentState, Setpoint  # noqa: E402
from vpp.server import Daemon  # noqa: E402

warnings.filterwarnings("ignore", category=PendingDeprecationWarning)




def register(engine: Engine, n: int, base_port: int, per_gateway: int = 100) -> None:
    """The same fleet ``vpp sim gateways`` serves: one profile per gateway, in turn."""
    with session_scope(engine) as s:
        owner = fleet.get_owner(s, "Shennong City Mall")
        remaining, g = n, 0
        while remaining > 0:
            k = SYNTHETIC_KINDS[g % len(SYNTHETIC_KINDS)]
            units = range(1, min(per_gateway, remaining) + 1)
            spec = {"host": "127.0.0.1", "port": base_port + g, "devices": [
                {"name": f"g{g}-u{u}", "kind": k.kind.value, "unit_id": u, "profile": k.profile,
                 "rated_power_kw": k.rated_power_kw, "min_setpoint_kw": k.min_setpoint_kw,
                 "max_setpoint_kw": k.max_setpoint_kw, "params": k.params} for u in units]}
            enrolled = fleet.add_gateway(s, owner, f"site-{g}", spec)
            enrolled.gateway.enrolment_state = EnrolmentState.ACTIVE.value
            for d in enrolled.devices:
                d.status = "active"
            remaining -= len(units)
            g += 1


def _written(engine: Engine, event_id: int) -> tuple[int, int]:
    with session_scope(engine) as s:
        plan = s.execute(select(DispatchPlan).where(
            col(DispatchPlan.event_id) == event_id, col(DispatchPlan.status) == "active")
        ).scalars().first()
        if plan is None:
            return 0, -1
        first = s.execute(select(func.min(col(Setpoint.interval_start)))
                          .where(col(Setpoint.plan_id) == plan.id)).scalar()
        rows = s.execute(select(col(Setpoint.status), func.count()).where(
            col(Setpoint.plan_id) == plan.id, col(Setpoint.interval_start) == first)
            .group_by(col(Setpoint.status))).all()
    counts: dict[str, int] = dict(rows)
    done = sum(v for k, v in counts.items() if k != "pending")
    return done, sum(counts.values())


def _values(engine: Engine, event_id: int) -> dict[int, float]:
    """The setpoints the daemon wrote for the call's first interval."""
    with session_scope(engine) as s:
        plan_ids = select(col(DispatchPlan.id)).where(col(DispatchPlan.event_id) == event_id)
        rows = s.execute(select(col(Setpoint.device_id), col(Setpoint.setpoint_kw),
                                col(Setpoint.interval_start))
                         .where(col(Setpoint.plan_id).in_(plan_ids),
                                col(Setpoint.written_at).is_not(None))
                         ).all()
    first = min(r[2] for r in rows)
    return {int(d): float(kw) for d, kw, t in rows if t == first}


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0



async def start_simulators(n: int, base_port: int, *, seconds: float,
                           accel: float | None = None) -> asyncio.subprocess.Process:
    """``vpp sim gateways`` for ``n`` devices in a subprocess (own CPU, as in production)."""
    args = ["sim", "gateways", "--devices", str(n), "--base-port", str(base_port),
            "--seconds", str(int(seconds))]
    if accel is not None:
        args += ["--accel", str(accel)]
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vpp.cli.main", *args, cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def wait_for_port(port: int, timeout_s: float = 120.0) -> None:
    """Until something accepts connections on 127.0.0.1:``port`` (or the timeout passes)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.3)


async def wait_online(rt: object, n: int, timeout_s: float = 120.0) -> None:
    """Until the daemon's fleet runtime has polled ``n`` devices online (or the timeout)."""
    t0 = time.monotonic()
    while rt.online_count() < n and time.monotonic() - t0 < timeout_s:  # type: ignore[attr-defined]
        await asyncio.sleep(0.5)

async def run(n: int, reps: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="vpp-bench-latency-"))
    url = f"sqlite:///{tmp / 'vpp.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    tokens = seed(engine)
    n_gw = (n + 99) // 100
    base_port = free_port_block(n_gw)
    register(engine, n, base_port)
    sims = await start_simulators(n, base_port, seconds=900)
    settings = daemon_settings(tmp, url, control_period_s=0.5, settle_period_s=30.0)
    settings.polling.interval_s = 1.0
    daemon = None
    try:
        await wait_for_port(base_port + n_gw - 1)
        daemon = Daemon(settings, engine, port=0)
        base = await daemon.start()
        rt = daemon.parts.fleet
        assert rt is not None
        t_wait = time.monotonic()
        await wait_online(rt, n)
        print(f"{rt.online_count()}/{n} devices polled after {time.monotonic() - t_wait:.1f} s",
              flush=True)

        sem = asyncio.Semaphore(settings.daemon.dispatch_concurrency)

        async def bare_write(values: dict[int, float]) -> float:
            """The same setpoints through the same adapters and fan-out, polling held off
            exactly as during a dispatch, and nothing else."""
            async def one(i: int, kw: float) -> bool:
                async with sem:
                    return (await rt.apply(i, kw)).error is None

            t0 = time.perf_counter()
            async with rt.priority():
                ok = await asyncio.gather(*(one(i, values[i]) for i in rt.interleave(list(values))))
            elapsed = time.perf_counter() - t0
            assert all(ok), f"{len(ok) - sum(ok)} bare writes failed"
            await rt.release(list(values))
            return elapsed

        full, bare, internal, solve = [], [], [], []
        async with aiohttp.ClientSession() as c:
            for rep in range(reps):
                now = datetime.now(UTC)
                start = now - timedelta(minutes=now.minute % 15, seconds=now.second,
                                        microseconds=now.microsecond)
                body = {"external_id": f"bench-{rep}", "event_type": "real_time",
                        "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(),
                        "requested_kw": 0.2 * n * 50}
                hdr = {"Authorization": f"Bearer {tokens.grid}"}
                t0 = time.perf_counter()
                async with c.post(f"{base}/api/v1/grid/calls", json=body, headers=hdr) as r:
                    decision = await r.json()
                    assert r.status == 201 and decision["accepted"], decision
                while True:
                    done, total = await asyncio.to_thread(_written, engine, decision["event_id"])
                    if total > 0 and done == total:
                        break
                    await asyncio.sleep(0.01)
                full.append(time.perf_counter() - t0)
                async with c.get(f"{base}/metrics") as r:
                    text = await r.text()
                internal.append(_metric(text, "vpp_call_to_dispatch_seconds_sum"))
                solve.append(_metric(text, "vpp_solve_seconds_sum"))
                values = await asyncio.to_thread(_values, engine, decision["event_id"])
                async with c.post(f"{base}/api/v1/events/{decision['event_id']}/cancel",
                                  headers=hdr) as r:
                    assert r.status == 200
                await asyncio.sleep(2.0)  # the control loop releases the devices
                bare.append(await bare_write(values))
                print(f"call {rep}: {total} setpoints written {full[-1]:.2f} s after the call; "
                      f"the same setpoints bare {bare[-1]:.2f} s", flush=True)
                await asyncio.sleep(1.0)
        internal = [b - a for a, b in zip([0.0, *internal], internal, strict=False)]
        solve = [b - a for a, b in zip([0.0, *solve], solve, strict=False)]
    finally:
        if daemon is not None:
            await daemon.stop()
        sims.terminate()
        await sims.wait()
    med_full, med_bare = statistics.median(full), statistics.median(bare)
    return {
        "bench": "latency", "devices": n, "gateways": n_gw, "repetitions": reps,
        "call_to_all_written_s": round(med_full, 3),
        "bare_writes_s": round(med_bare, 3),
        "ratio_vs_bare": round(med_full / med_bare, 2),
        "daemon_internal_call_to_dispatch_s": round(statistics.median(internal), 3),
        "solve_s": round(statistics.median(solve), 3),
        "all_call_to_written_s": [round(x, 3) for x in full],
        "target_s": 5.0, "met": med_full < 5.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 devices, 2 calls (< 60 s)")
    ap.add_argument("--devices", type=int, default=None)
    ap.add_argument("--reps", type=int, default=None)
    args = ap.parse_args()
    n = args.devices or (200 if args.quick else 1000)
    reps = args.reps or (2 if args.quick else 3)
    configure_logging(os.environ.get("VPP_BENCH_LOG", "WARNING"), json_lines=True)
    t0 = time.perf_counter()
    out = asyncio.run(run(n, reps))
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    print(f"{n} devices: call -> every setpoint written {out['call_to_all_written_s']} s "
          f"(median of {reps}); bare writes {out['bare_writes_s']} s; ratio "
          f"{out['ratio_vs_bare']}x; solve {out['solve_s']} s; target < 5 s: "
          f"{'met' if out['met'] else 'NOT met'}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
