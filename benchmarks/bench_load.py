"""Load: 1,000 simulated devices (10 Modbus gateways on loopback, ``vpp sim gateways`` in a
separate process, simulated time accelerated so the run covers a compressed day of device
behaviour) polled every second by the real daemon, plus a steady stream of API requests
(operator and owner tokens, the dashboard's and owners' routes). Memory (RSS of the daemon's
process) and API latency are recorded in the first and the last window of the run, and
telemetry written is counted against the polls made.

Figures are ratios against the start of the same run: RSS end / start and p95 latency end /
start; the stated bounds are RSS growth <= 25 % and p95 latency ratio <= 3 after warm-up.

    uv run python benchmarks/bench_load.py            # 1,000 devices, 300 s, 20 requests/s
    uv run python benchmarks/bench_load.py --quick    # 1,000 devices, 25 s (< 60 s)

Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from benchmarks.bench_latency import (  # noqa: E402
    free_port_block,
    register,
    start_simulators,
    wait_for_port,
    wait_online,
)
from tests.vpp.daemon.harness import daemon_settings, seed  # noqa: E402
from vpp.daemon.logs import configure_logging  # noqa: E402
from vpp.daemon.service import Daemon  # noqa: E402
from vpp.db import make_engine, upgrade  # noqa: E402
from vpp.models import TelemetryReading  # noqa: E402

warnings.filterwarnings("ignore", category=PendingDeprecationWarning)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def run(n: int, seconds: float, rate: float, accel: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="vpp-bench-load-"))
    url = f"sqlite:///{tmp / 'vpp.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    tokens = seed(engine)
    n_gw = (n + 99) // 100
    base_port = free_port_block(n_gw)
    register(engine, n, base_port)
    sims = await start_simulators(n, base_port, seconds=seconds + 300, accel=accel)
    settings = daemon_settings(tmp, url, control_period_s=1.0, settle_period_s=30.0)
    settings.polling.interval_s = 1.0
    daemon = None
    try:
        await wait_for_port(base_port + n_gw - 1)
        daemon = Daemon(settings, engine, port=0)
        base = await daemon.start()
        rt = daemon.services.fleet
        assert rt is not None
        await wait_online(rt, n)
        online_start = rt.online_count()
        t = TelemetryReading.__table__

        def rows() -> int:
            with engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(t)).scalar_one())

        rows0 = rows()
        routes = [(tokens.operator, "/api/v1/devices"), (tokens.operator, "/api/v1/fleet/status"),
                  (tokens.operator, "/api/v1/events"), (tokens.owner, "/api/v1/devices"),
                  (tokens.owner, "/api/v1/payouts"), (tokens.grid, "/api/v1/me"),
                  (tokens.operator, "/api/v1/devices/1/telemetry?limit=100"),
                  (None, "/api/v1/health")]
        lat: list[tuple[float, float]] = []  # (time since start, seconds)
        errors = 0
        rng = random.Random(7)
        rss: list[tuple[float, float]] = []
        t0 = time.monotonic()
        async with aiohttp.ClientSession() as http:
            async def one(token: str | None, path: str) -> None:
                nonlocal errors
                s0 = time.perf_counter()
                try:
                    async with http.get(base + path, headers={"Authorization": f"Bearer {token}"}
                                        if token else {}) as r:
                        await r.read()
                        if r.status != 200:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1
                lat.append((time.monotonic() - t0, time.perf_counter() - s0))

            pending: set[asyncio.Task] = set()
            k = 0
            while time.monotonic() - t0 < seconds:
                task = asyncio.create_task(one(*rng.choice(routes)))
                pending.add(task)
                task.add_done_callback(pending.discard)
                k += 1
                if k % int(rate) == 0:
                    rss.append((time.monotonic() - t0, rss_mb()))
                await asyncio.sleep(1.0 / rate)
            await asyncio.gather(*pending)
        elapsed = time.monotonic() - t0
        rows1 = rows()
        online_end = rt.online_count()
    finally:
        if daemon is not None:
            await daemon.stop()
        sims.kill()
        await sims.wait()
    window = max(5.0, seconds / 5)
    warm = min(5.0, seconds / 5)  # skip the first seconds (caches, first queries)
    first = [s for at, s in lat if warm <= at < warm + window]
    last = [s for at, s in lat if at >= elapsed - window]
    rss_first = statistics.mean(m for at, m in rss if warm <= at < warm + window)
    rss_last = statistics.mean(m for at, m in rss if at >= elapsed - window)
    p95_ratio = pct(last, 0.95) / pct(first, 0.95)
    rss_ratio = rss_last / rss_first
    return {
        "devices": n, "online_start": online_start, "online_end": online_end,
        "seconds": round(elapsed, 1), "sim_accel": accel,
        "simulated_hours": round(elapsed * accel / 3600, 2),
        "api_requests": len(lat), "api_errors": errors,
        "telemetry_rows": rows1 - rows0,
        "telemetry_rows_per_s": round((rows1 - rows0) / elapsed, 1),
        "polls_per_s_target": n,
        "p50_ms_start": round(pct(first, 0.5) * 1000, 1),
        "p95_ms_start": round(pct(first, 0.95) * 1000, 1),
        "p50_ms_end": round(pct(last, 0.5) * 1000, 1),
        "p95_ms_end": round(pct(last, 0.95) * 1000, 1),
        "p95_end_vs_start": round(p95_ratio, 2),
        "rss_mb_start": round(rss_first, 1), "rss_mb_end": round(rss_last, 1),
        "rss_end_vs_start": round(rss_ratio, 3),
        "within_bounds": bool(rss_ratio <= 1.25 and p95_ratio <= 3.0 and errors == 0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="25 s (< 60 s in all)")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--rate", type=float, default=20.0, help="API requests per second")
    ap.add_argument("--accel", type=float, default=288.0,
                    help="simulated time acceleration (288: a day in 300 s)")
    args = ap.parse_args()
    configure_logging("WARNING", json_lines=True)
    seconds = args.seconds or (25.0 if args.quick else 300.0)
    res = asyncio.run(run(args.devices, seconds, args.rate, args.accel))
    print(f"{res['devices']} devices polled every second ({res['online_end']} online at the end), "
          f"{res['api_requests']} API requests ({res['api_errors']} errors) in {res['seconds']} s "
          f"= {res['simulated_hours']} simulated hours")
    print(f"telemetry rows written: {res['telemetry_rows']} ({res['telemetry_rows_per_s']}/s)")
    print(f"API p95: {res['p95_ms_start']} ms at the start, {res['p95_ms_end']} ms at the end "
          f"= {res['p95_end_vs_start']}x; RSS {res['rss_mb_start']} -> {res['rss_mb_end']} MB "
          f"= {res['rss_end_vs_start']}x; within bounds: {res['within_bounds']}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
