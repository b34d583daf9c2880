"""Loading the operator console in headless chromium with a city-scale fleet, against fetching
the same JSON from the API with a plain HTTP client (the floor: the browser can never be faster
than the data it shows), in the same run.

Set-up: a fresh SQLite database (migrated) with ``--devices`` devices (owners of 25, gateways
of 5, four kinds: :mod:`tests.vpp.dashboard.city`), every device with a live reading in the
fleet runtime (so the summary and the device page overlay real live state); the real aiohttp
app over the daemon's parts on a free 127.0.0.1 port (no loops: nothing changes underneath).

Measured, ``--reps`` times each, medians:

* **page**: ``reload()`` of the signed-in console until the summary (every kind) and the first
  device page (``1-50 of N``) are on the screen: HTML, CSS, ECharts (1 MB), our scripts, the
  four API calls the page makes, rendering;
* **raw JSON** (the baseline): the same four API calls with aiohttp, concurrently, bodies read;
* **old listing** (for reference, what the first-cut page fetched every 2 s): ``GET
  /api/v1/devices``, the whole fleet.

    uv run python benchmarks/bench_console.py            # 10,000 devices, 7 reps
    uv run python benchmarks/bench_console.py --quick    # 10,000 devices, 3 reps (< 60 s)

Ends with one JSON line. Target: the page in under 2 s at 10,000 devices.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from device_adapters.protocol import DeviceState  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.vpp.daemon.harness import daemon_settings, seed  # noqa: E402
from tests.vpp.dashboard.browser import chromium, sign_in  # noqa: E402
from tests.vpp.dashboard.city import add_city_fleet  # noqa: E402
from vpp.api.app import build_app  # noqa: E402
from vpp.daemon.dbexec import Db  # noqa: E402
from vpp.daemon.infra import Infra  # noqa: E402
from vpp.daemon.parts import DaemonParts, build_parts  # noqa: E402
from vpp.db import make_engine, upgrade  # noqa: E402
from vpp.poller import DeviceStats  # noqa: E402

#: the API calls the console makes on load (operator.js: refresh)
CONSOLE_CALLS = ["/api/v1/fleet/status?points=600", "/api/v1/console/fleet-summary?top=10",
                 "/api/v1/events?limit=50", "/api/v1/console/devices?offset=0&limit=50"]


def live_readings(parts: DaemonParts, n: int) -> None:
    """A reading for every device, as a poll cycle would leave them (kW: a tenth of rated)."""
    now = datetime.now(UTC)
    for device_id in range(1, n + 1):
        st = parts.fleet.poller.stats.setdefault(device_id, DeviceStats(device_id=device_id))
        st.online = True
        st.last_state = DeviceState(device_id=device_id, ts=now, power_kw=10.0 + device_id % 7,
                                    energy_kwh=None, soc_pct=50.0, indoor_temp_c=None,
                                    available=True, flex_down_kw=0.0, flex_up_kw=0.0)


async def raw_fetch(http: aiohttp.ClientSession, base: str, token: str,
                    paths: list[str]) -> tuple[float, int]:
    """Seconds to fetch ``paths`` concurrently with their bodies read, and the bytes."""
    headers = {"Authorization": f"Bearer {token}"}

    async def one(path: str) -> int:
        async with http.get(base + path, headers=headers) as r:
            assert r.status == 200, (path, r.status)
            return len(await r.read())

    t0 = time.perf_counter()
    sizes = await asyncio.gather(*(one(p) for p in paths))
    return time.perf_counter() - t0, sum(sizes)


async def page_load(page: object, n: int) -> float:
    """Seconds from reload to the summary and the first device page on screen."""
    t0 = time.perf_counter()
    await page.reload()  # type: ignore[attr-defined]
    await page.wait_for_selector(  # type: ignore[attr-defined]
        f"#page-info:has-text('1–50 of {n:,}')")
    await page.wait_for_selector("#by-kind tr:nth-child(4)")  # type: ignore[attr-defined]
    return time.perf_counter() - t0


async def run(n: int, reps: int) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-console-"))
    engine = make_engine(f"sqlite:///{tmp / 'vpp.db'}")
    upgrade(engine)
    tokens = seed(engine)
    add_city_fleet(engine, n)
    parts = build_parts(Infra.create(daemon_settings(tmp, str(engine.url)), Db(engine)))
    live_readings(parts, n)
    runner = web.AppRunner(build_app(parts), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    pages: list[float] = []
    raws: list[float] = []
    olds: list[float] = []
    each: dict[str, list[float]] = {p: [] for p in CONSOLE_CALLS}
    try:
        async with aiohttp.ClientSession() as http, chromium() as (ctx, watch):
            page = await ctx.new_page()
            await sign_in(page, base, "/dashboard/", tokens.operator, "en")
            await page.wait_for_selector(f"#page-info:has-text('1–50 of {n:,}')")
            _, raw_bytes = await raw_fetch(http, base, tokens.operator, CONSOLE_CALLS)  # warm
            _, old_bytes = await raw_fetch(http, base, tokens.operator, ["/api/v1/devices"])
            for _ in range(reps):  # interleaved, so load from other jobs hits both alike
                pages.append(await page_load(page, n))
                raws.append((await raw_fetch(http, base, tokens.operator, CONSOLE_CALLS))[0])
                olds.append((await raw_fetch(http, base, tokens.operator,
                                             ["/api/v1/devices"]))[0])
                for p in CONSOLE_CALLS:  # one by one: where the raw time goes
                    each[p].append((await raw_fetch(http, base, tokens.operator, [p]))[0])
            assert watch.errors == [], watch.errors
    finally:
        await runner.cleanup()
        await parts.close()
    page_s, raw_s, old_s = (statistics.median(x) for x in (pages, raws, olds))
    return {"bench": "console", "devices": n, "reps": reps, "page_s": round(page_s, 3),
            "raw_json_s": round(raw_s, 4), "ratio_page_to_raw_json": round(page_s / raw_s, 1),
            "raw_json_bytes": raw_bytes, "old_full_listing_s": round(old_s, 4),
            "old_full_listing_bytes": old_bytes, "target_page_s": 2.0,
            "target_met": page_s < 2.0, "page_runs_s": [round(x, 3) for x in pages],
            "each_call_s": {p: round(statistics.median(v), 4) for p, v in each.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 repetitions (< 60 s)")
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=None)
    a = ap.parse_args()
    if a.devices < 50 or a.devices > 200_000:
        ap.error("--devices must be between 50 and 200,000")
    reps = a.reps or (3 if a.quick else 7)
    if reps < 1:
        ap.error("--reps must be at least 1")
    out = asyncio.run(run(a.devices, reps))
    print(f"console page load, {out['devices']:,} devices, median of {reps}:")
    print(f"  page (chromium, reload to summary + first device page)  {out['page_s']:.3f} s")
    print(f"  raw JSON of the same 4 API calls (aiohttp)              {out['raw_json_s']:.4f} s"
          f"  ({out['raw_json_bytes']:,} bytes)")
    print(f"  ratio page / raw JSON                                   {out['ratio_page_to_raw_json']}x")
    print(f"  reference: the whole listing (GET /devices)             {out['old_full_listing_s']:.4f} s"
          f"  ({out['old_full_listing_bytes']:,} bytes)")
    for p, v in out["each_call_s"].items():  # type: ignore[attr-defined]
        print(f"    alone: {p:<52} {v:.4f} s")
    print(f"  target < 2 s: {'met' if out['target_met'] else 'NOT met'}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
