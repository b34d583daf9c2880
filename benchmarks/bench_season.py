"""Season simulation benchmark: how fast the city runs on the accelerated clock, and the
season's headline against the 5% goal.

Figures are ratios against baselines measured in the same run:
- ``accel``: simulated time / wall time (how many times faster than real time);
- ``adapter_overhead``: cost of one device-interval through the in-process adapter path
  (behaviour + ``read_state`` + metering) / cost of the bare physics ``step`` of the same devices;
- the headline: delivered and declared MW as shares of the system peak / the 5% goal.

``--quick`` (< 60 s): one event day on a stratified 2,000-device sample. The full run simulates
every call of the season at city scale; the runs of consecutive days it needs are independent
(the plant restarts with a warm-up at each), so they run in parallel processes; it writes the
report. The last line is one JSON object with the figures.

    uv run python benchmarks/bench_season.py --quick
    uv run python benchmarks/bench_season.py --out benchmarks/results/simulation
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.aggregator import with_capacity  # noqa: E402
from sim.metrics import season_summary  # noqa: E402
from sim.physics import make_physics  # noqa: E402
from sim.plant import CityPlant  # noqa: E402
from sim.report import write_report  # noqa: E402
from sim.results import SeasonResult, merge_results  # noqa: E402
from sim.scenarios import load_scenario  # noqa: E402
from sim.scenarios.behaviour import configure  # noqa: E402
from sim.scenarios.fleet import generate_fleet  # noqa: E402
from sim.season import RunOptions, count_blocks, run_season  # noqa: E402
from vpp.config import load_settings  # noqa: E402

SCENARIO = ROOT / "config/scenarios/zhuzhou-2025.toml"


def step_costs(n_devices: int = 500, intervals: int = 48) -> tuple[float, float]:
    """(bare physics, adapter path) seconds per device-interval on the same sampled devices."""
    scn = load_scenario(SCENARIO)
    devs = generate_fleet(scn).sample(n_devices, seed=5).devices
    models = []
    for d in devs:
        m = make_physics(d.kind, d.spec.rated_power_kw, d.spec.params, seed=d.index)
        configure(m, d)
        models.append(m)
    t0 = time.perf_counter()
    for _ in range(intervals):
        for m in models:
            m.step(900.0, None)
    bare = (time.perf_counter() - t0) / (intervals * len(models))
    plant = CityPlant(devs, datetime(2025, 7, 1, tzinfo=ZoneInfo("Asia/Shanghai")), seed=1)

    async def run() -> None:
        for _ in range(intervals):
            plant.shape(33.0)
            await plant.advance(15)

    t0 = time.perf_counter()
    asyncio.run(run())
    path = (time.perf_counter() - t0) / (intervals * len(devs))
    return bare, path


def _run_period(args: tuple) -> SeasonResult:
    period, event_days, history, max_devices, eps, skip_idle, block, scenario = args
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
    settings = load_settings(ROOT / "config/default.toml")
    if eps is not None:
        settings = settings.model_copy(update={"scheduler": settings.scheduler.model_copy(
            update={"eps": eps})})
    opts = RunOptions(periods=None if period is None else (period,), event_days=event_days,
                      history_days=history, max_devices=max_devices, skip_idle_days=skip_idle,
                      blocks=None if block is None else (block,),
                      # --quick (one event day, < 60 s) leaves the two capability tests out
                      capability_test=not (event_days == 1 and max_devices is not None))
    return asyncio.run(run_season(settings, scenario, opts))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one event day, 2,000 devices")
    ap.add_argument("--out", type=Path, default=None, help="write the report here")
    ap.add_argument("--workers", type=int, default=0,
                    help="processes for the full season (default: one per run of days)")
    ap.add_argument("--eps", type=float, default=None,
                    help="scheduler OSQP tolerance (default: the settings' scheduler.eps)")
    ap.add_argument("--all-days", action="store_true",
                    help="simulate every season day, also those no call depends on")
    ap.add_argument("--scenario", type=Path, default=SCENARIO,
                    help="scenario file (default: config/scenarios/zhuzhou-2025.toml)")
    ap.add_argument("--event-days", type=int, default=None,
                    help="only the first N event days of --period (one process, no report "
                         "merge); with --period")
    ap.add_argument("--period", type=int, default=None,
                    help="season period (0: summer, 1: winter) for --event-days")
    a = ap.parse_args()
    import os

    os.chdir(ROOT)
    bare, path = step_costs(300 if a.quick else 1000, 24 if a.quick else 96)
    print(f"device-interval: bare physics {bare * 1e6:.1f} us, adapter path {path * 1e6:.1f} us "
          f"-> adapter_overhead {path / bare:.2f}x")
    t0 = time.perf_counter()
    if a.quick:
        result = _run_period((None, 1, 8, 2000, a.eps, False, None, a.scenario))
    elif a.event_days is not None:
        result = _run_period((a.period, a.event_days, 8, None, a.eps, False, None, a.scenario))
    else:
        scn = load_scenario(a.scenario)
        n = count_blocks(scn, RunOptions(skip_idle_days=not a.all_days))
        jobs = [(None, None, None, None, a.eps, not a.all_days, k, a.scenario) for k in range(n)]
        print(f"{n} independent runs of consecutive days, {a.workers or n} processes")
        with ProcessPoolExecutor(max_workers=a.workers or n) as pool:
            result = with_capacity(merge_results(list(pool.map(_run_period, jobs))),
                                   load_settings(ROOT / "config/default.toml").bidding)
    wall = time.perf_counter() - t0
    h = result.headline()
    accel = result.simulated_days * 86400 / wall
    steps = result.simulated_days * 96 * result.n_devices
    solve = [e.solve_seconds for e in result.events if e.solve_seconds]
    print(f"simulated {result.simulated_days} days of {result.n_devices:,} devices in {wall:,.0f} s "
          f"-> accel {accel:,.0f}x real time, {steps / wall:,.0f} device-intervals/s")
    if solve:
        print(f"scheduler: {len(solve)} plans, mean {sum(solve) / len(solve):.1f} s, "
              f"max {max(solve):.1f} s")
        for e in result.events:
            if e.plan_path:
                print(f"  {e.call.external_id}: {e.solve_seconds:.1f} s, {e.plan_path}")
    print(h.text())
    if a.out:
        page = write_report(result, a.out)
        print(f"report: {page}")
    figures = {
        "bench": "season", "scenario": result.scenario, "quick": a.quick,
        "devices": result.n_devices,
        "simulated_days": result.simulated_days, "wall_s": round(wall, 1),
        "accel_x_real_time": round(accel, 1), "adapter_overhead_x": round(path / bare, 2),
        "events": h.events, "declared_mw_median": round(h.capability_mw, 2),
        "delivered_mw_mean": round(h.delivered_mw, 2),
        "delivered_pct_of_peak": round(h.delivered_pct, 3),
        "delivered_vs_goal": round(h.delivered_pct / h.goal_pct, 3),
        "flex_pct_of_peak": round(h.flex_pct, 3), "events_in_band": h.events_in_band,
        "revenue_yuan": round(h.revenue_yuan, 2), "payouts_yuan": round(h.payouts_yuan, 2),
        "mean_solve_s": round(sum(solve) / len(solve), 2) if solve else None,
        "by_season": {k: {m: v for m, v in r.items() if m != "capability_tests"}
                      | {"tests": [{m: t.get(m) for m in ("id", "declared_mw", "credited_kw",
                                                          "physical_kw", "rebound_flag")}
                                   for t in r["capability_tests"]]}
                      for k, r in season_summary(result.events, result.system_peak_mw).items()},
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
