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
    uv run python benchmarks/bench_load.py --trace-memory --seconds 90 --devices 400
                                                      # what is still allocated at the end
    uv run python benchmarks/bench_load.py --forecast-read 200000
                                                      # the forecast history read, old vs new

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
import tracemalloc
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
from vpp.db import make_engine, upgrade  # noqa: E402
from vpp.models import TelemetryReading, table_of  # noqa: E402
from vpp.server import Daemon  # noqa: E402

warnings.filterwarnings("ignore", category=PendingDeprecationWarning)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def top_growth(snapshot: tracemalloc.Snapshot, k: int = 12) -> list[str]:
    """The ``k`` allocation sites (by traceback) holding most of the memory allocated since
    tracing started (after the warm-up) and still alive at the end: what the run grew by."""
    skip = [tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")]
    stats = snapshot.filter_traces(skip).statistics("traceback")
    total = sum(st.size for st in stats)
    out = [f"traced growth since the warm-up: {total / 1e6:.2f} MB in "
           f"{sum(st.count for st in stats)} blocks; largest sites:"]
    for st in stats[:k]:
        frames = [f"{f.filename.replace(str(REPO) + '/', '').split('site-packages/')[-1]}"
                  f":{f.lineno}" for f in st.traceback]
        out.append(f"{st.size / 1e6:8.2f} MB {st.count:8d} blocks  " + " <- ".join(frames))
    return out


async def run(n: int, seconds: float, rate: float, accel: float,
              trace_memory: bool = False) -> dict:
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
    # the production default (config/default.toml), not the test harness's 1 s: heartbeats to
    # the KEBA and PLC watchdogs are extra writes after the cycle
    settings.polling.watchdog_period_s = 10.0
    daemon = None
    try:
        await wait_for_port(base_port + n_gw - 1)
        daemon = Daemon(settings, engine, port=0)
        base = await daemon.start()
        rt = daemon.parts.fleet
        assert rt is not None
        await wait_online(rt, n)
        online_start = rt.online_count()
        t = table_of(TelemetryReading)

        def rows() -> int:
            with engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(t)).scalar_one())

        def poll_iterations() -> int:
            return next(st.iterations for st in daemon.parts.supervisor.statuses()
                        if st.name == "poll")

        rows0, polls0 = rows(), poll_iterations()
        routes = [(tokens.operator, "/api/v1/devices"), (tokens.operator, "/api/v1/fleet/status"),
                  (tokens.operator, "/api/v1/events"), (tokens.owner, "/api/v1/devices"),
                  (tokens.owner, "/api/v1/payouts"), (tokens.grid, "/api/v1/me"),
                  (tokens.operator, "/api/v1/devices/1/telemetry?limit=100"),
                  (None, "/api/v1/health")]
        lat: list[tuple[float, float]] = []  # (time since start, seconds)
        errors = 0
        rng = random.Random(7)
        rss: list[tuple[float, float]] = []
        warm = min(5.0, seconds / 5)  # skip the first seconds (caches, first queries)
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
            while time.monotonic() - t0 < seconds:
                task = asyncio.create_task(one(*rng.choice(routes)))
                pending.add(task)
                task.add_done_callback(pending.discard)
                now = time.monotonic() - t0
                if now - (rss[-1][0] if rss else -1.0) >= 1.0:
                    rss.append((now, rss_mb()))
                if trace_memory and not tracemalloc.is_tracing() and now >= warm:
                    tracemalloc.start(8)
                await asyncio.sleep(1.0 / rate)
            await asyncio.gather(*pending)
        elapsed = time.monotonic() - t0
        growth = top_growth(tracemalloc.take_snapshot()) if tracemalloc.is_tracing() else []
        tracemalloc.stop()
        rows1, polls1 = rows(), poll_iterations()
        online_end = rt.online_count()
    finally:
        if daemon is not None:
            await daemon.stop()
        sims.kill()
        await sims.wait()
    window = max(5.0, seconds / 5)
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
        "poll_cycles": polls1 - polls0,
        "poll_interval_s_mean": round(elapsed / max(1, polls1 - polls0), 3),
        "readings_vs_target": round((rows1 - rows0) / elapsed / n, 3),
        "p50_ms_start": round(pct(first, 0.5) * 1000, 1),
        "p95_ms_start": round(pct(first, 0.95) * 1000, 1),
        "p50_ms_end": round(pct(last, 0.5) * 1000, 1),
        "p95_ms_end": round(pct(last, 0.95) * 1000, 1),
        "p95_end_vs_start": round(p95_ratio, 2),
        "rss_mb_start": round(rss_first, 1), "rss_mb_end": round(rss_last, 1),
        "rss_end_vs_start": round(rss_ratio, 3),
        "rss_mb_by_minute": [round(statistics.mean(m for at, m in rss if k * 60 <= at < k * 60 + 60
                                                   ), 1)
                             for k in range(int(elapsed // 60)) if any(k * 60 <= at < k * 60 + 60
                                                                        for at, _ in rss)],
        "within_bounds": bool(rss_ratio <= 1.25 and p95_ratio <= 3.0 and errors == 0),
    } | ({"traced_growth": growth} if growth else {})


def forecast_read(n: int, rows: int) -> dict:
    """The forecast refresh's read of the history, before and after the fix, on a database of
    ``rows`` readings of ``n`` devices (10 sites): the old path (every raw reading into
    Python, a days x devices grid: ``bidding.workflow.read_meter_frame`` + ``owner_load``)
    against :class:`vpp.daemon.forecasts.SiteLoadHistory` (averaged in SQL, kept between
    refreshes): seconds and peak traced memory of one refresh, first and next."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from bidding.workflow import owner_load, read_meter_frame
    from vpp.daemon.forecasts import MAX_READ_DAYS, SiteLoadHistory, _sites
    from vpp.db import session_scope

    tmp = Path(tempfile.mkdtemp(prefix="vpp-bench-fcread-"))
    engine = make_engine(f"sqlite:///{tmp / 'vpp.sqlite3'}")
    upgrade(engine)
    seed(engine)
    register(engine, n, 30000)
    with session_scope(engine) as s:
        sites = _sites(s)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    per = rows // n  # readings per device, one a second up to the end
    batch = []
    with engine.begin() as conn:
        for k in range(per):
            ts = end - timedelta(seconds=per - k)
            batch += [{"device_id": d, "ts": ts, "power_kw": 1.0 + (d % 7) / 10,
                       "energy_kwh": None, "soc_pct": None, "available": True,
                       "flexibility_kw": None, "latency_ms": None} for d in range(1, n + 1)]
            if len(batch) >= 50_000 or k == per - 1:
                conn.execute(insert(TelemetryReading), batch)
                batch = []
    start = end - timedelta(days=MAX_READ_DAYS)
    ids = [d for _, devs in sites.values() for d in devs]
    out: dict = {"devices": n, "rows": per * n}

    def measure(fn) -> tuple[float, float]:  # noqa: ANN001
        tracemalloc.start()
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        return round(seconds, 3), round(peak, 1)

    groups = {s: devs for s, (_, devs) in sites.items()}
    out["old_s"], out["old_peak_mb"] = measure(
        lambda: owner_load(read_meter_frame(engine, ids, start, end, 15), groups))
    hist = SiteLoadHistory(15)
    out["new_first_s"], out["new_first_peak_mb"] = measure(
        lambda: hist.update(engine, sites, start, end))
    step = timedelta(minutes=15)
    out["new_next_s"], out["new_next_peak_mb"] = measure(
        lambda: hist.update(engine, sites, start + step, end + step))
    out["old_vs_new_first_s"] = round(out["old_s"] / out["new_first_s"], 1)
    out["old_vs_new_first_peak"] = round(out["old_peak_mb"] / out["new_first_peak_mb"], 1)
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="25 s (< 60 s in all)")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--rate", type=float, default=20.0, help="API requests per second")
    ap.add_argument("--accel", type=float, default=288.0,
                    help="simulated time acceleration (288: a day in 300 s)")
    ap.add_argument("--trace-memory", action="store_true",
                    help="tracemalloc from the end of the warm-up: print the allocation sites "
                         "still holding memory at the end (slows the daemon down)")
    ap.add_argument("--forecast-read", type=int, metavar="ROWS", default=None,
                    help="only measure the forecast refresh's history read, old against new, "
                         "on ROWS stored readings (< 20 s for 200000)")
    args = ap.parse_args()
    configure_logging("WARNING", json_lines=True)
    if args.forecast_read:
        fr = forecast_read(args.devices, args.forecast_read)
        print(f"forecast history read, {fr['rows']} readings of {fr['devices']} devices: "
              f"old {fr['old_s']} s / {fr['old_peak_mb']} MB peak; new first refresh "
              f"{fr['new_first_s']} s / {fr['new_first_peak_mb']} MB, next {fr['new_next_s']} s "
              f"/ {fr['new_next_peak_mb']} MB = {fr['old_vs_new_first_s']}x faster, "
              f"{fr['old_vs_new_first_peak']}x less memory")
        print(json.dumps(fr))
        return
    seconds = args.seconds or (25.0 if args.quick else 300.0)
    res = asyncio.run(run(args.devices, seconds, args.rate, args.accel, args.trace_memory))
    for line in res.pop("traced_growth", []):
        print(line)
    print(f"{res['devices']} devices, poll interval 1 s ({res['online_end']} online at the end), "
          f"{res['api_requests']} API requests ({res['api_errors']} errors) in {res['seconds']} s "
          f"= {res['simulated_hours']} simulated hours")
    print(f"telemetry rows written: {res['telemetry_rows']} ({res['telemetry_rows_per_s']}/s = "
          f"{res['readings_vs_target']}x the target of one per device per second); "
          f"{res['poll_cycles']} poll cycles, one every {res['poll_interval_s_mean']} s")
    print(f"API p95: {res['p95_ms_start']} ms at the start, {res['p95_ms_end']} ms at the end "
          f"= {res['p95_end_vs_start']}x; RSS {res['rss_mb_start']} -> {res['rss_mb_end']} MB "
          f"= {res['rss_end_vs_start']}x; within bounds: {res['within_bounds']}")
    print(f"RSS by minute (MB): {res['rss_mb_by_minute']}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
