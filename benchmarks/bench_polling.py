"""Polling throughput: 1,000 simulated devices behind 10 gateways on loopback.

The simulated gateways (real pymodbus servers, our device profiles and physics) run in a
separate process, so client and servers do not share one event loop; on this 2-core machine
they still share the CPU. Measured in the same run:

* baseline: a plain sequential pymodbus loop (one pre-opened client per gateway) reading the
  same register blocks, one request at a time;
* ours: :class:`vpp.poller.Poller` (all gateways in parallel, one connection each, decoding,
  plausibility checks, flexibility), without and with batched telemetry to SQLite.

Reports the full-fleet cycle time (median of the cycles), requests/s, the ratio against the
baseline, per-request latency percentiles, and ends with one JSON line. ``--quick`` < 60 s.
(The baseline imports pymodbus directly on purpose: it is the thing we compare against.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.ports import free_port_block  # noqa: E402


def _serve(n_devices: int, per_gateway: int, base_port: int, stop: mp.synchronize.Event,
           index: int = 0, procs: int = 1) -> None:
    """Serve the gateways g with g % procs == index (the fleet is the same in every process)."""
    from sim.clock import SimClock
    from sim.fleet import synthetic_fleet

    async def main() -> None:
        fleet = synthetic_fleet(n_devices, base_port=base_port, per_gateway=per_gateway,
                                clock=SimClock(1.0))
        mine = [g for i, g in enumerate(fleet) if i % procs == index]
        for g in mine:
            await g.gateway.start()
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for g in mine:
            await g.gateway.stop()

    asyncio.run(main())




def _wait_ports(base: int, n: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    for p in range(base, base + n):
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", p)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"simulated gateway on port {p} did not start")
            time.sleep(0.1)


async def _build(n_devices: int, per_gateway: int, base_port: int):
    from device_adapters.factory import make_adapter
    from device_adapters.modbus_client import GatewayClient
    from device_adapters.profile import plan_blocks
    from sim.fleet import SYNTHETIC_KINDS

    gateways = []
    dev_id = 0
    n_gw = -(-n_devices // per_gateway)
    for g in range(n_gw):
        k = SYNTHETIC_KINDS[g % len(SYNTHETIC_KINDS)]
        units = range(1, min(per_gateway, n_devices - g * per_gateway) + 1)
        client = GatewayClient("127.0.0.1", base_port + g, timeout_s=2.0, retries=1)
        adapters = []
        for u in units:
            dev_id += 1
            adapters.append(await make_adapter(
                client, device_id=dev_id, unit_id=u, kind=k.kind, profile=k.profile,
                rated_power_kw=k.rated_power_kw, min_setpoint_kw=k.min_setpoint_kw,
                max_setpoint_kw=k.max_setpoint_kw, params=k.params))
        blocks = [(a.unit_id, b) for a in adapters
                  for b in plan_blocks(a.profile, a.profile.poll_points())]
        gateways.append((g, client, adapters, blocks))
    return gateways


async def _baseline(gateways, base_port: int, cycles: int,
                    parallel: bool = False) -> tuple[list[float], int, float]:
    """Plain pymodbus reads of the same blocks: sequential (the baseline), or one plain loop
    per gateway in parallel (a reference that separates parallelism from our overhead).
    Returns (cycle times, requests per cycle, client CPU seconds per cycle)."""
    from pymodbus.client import AsyncModbusTcpClient

    clients = []
    for g, *_ in gateways:
        c = AsyncModbusTcpClient("127.0.0.1", port=base_port + g, timeout=2.0, retries=1)
        await c.connect()
        clients.append(c)

    async def one_gateway(c, blocks) -> int:
        n = 0
        for unit, b in blocks:
            call = (c.read_holding_registers if b.function == "holding"
                    else c.read_input_registers)
            rr = await call(b.address, count=b.count, device_id=unit)
            assert not rr.isError()
            n += 1
        return n

    times = []
    n_req = 0
    cpu0 = time.process_time()
    for _ in range(cycles):
        t0 = time.perf_counter()
        pairs = [(c, blocks) for c, (_, _, _, blocks) in zip(clients, gateways, strict=True)]
        if parallel:
            n_req = sum(await asyncio.gather(*(one_gateway(c, b) for c, b in pairs)))
        else:
            n_req = 0
            for c, b in pairs:
                n_req += await one_gateway(c, b)
        times.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / cycles
    for c in clients:
        c.close()
    return times, n_req, cpu


async def _ours(gateways, cycles: int, engine=None) -> tuple[list[float], int, int, list[float]]:
    from vpp.config import PollingSettings
    from vpp.poller import Poller

    poller = Poller(engine, PollingSettings(timeout_s=2.0, retries=1, telemetry_batch_size=1000))
    for g, client, adapters, _ in gateways:
        poller.add_gateway(g, client, adapters)
    times, failed, reqs = [], 0, 0
    for _, client, _, _ in gateways:
        client.stats.latencies_s.clear()
    cpu0 = time.process_time()
    for _ in range(cycles):
        r = await poller.poll_once()
        times.append(r.seconds)
        failed += r.failed
        reqs = r.requests
    cpu = (time.process_time() - cpu0) / cycles
    lat = [x for _, client, _, _ in gateways for x in client.stats.latencies_s]
    return times, reqs, failed, lat, cpu


def _register(engine, gateways, base_port: int) -> None:
    """Device rows with ids 1..N in poll order (telemetry has a foreign key to them)."""
    from vpp import fleet
    from vpp.db import session_scope

    with session_scope(engine) as s:
        owner = fleet.add_owner(s, "bench")
        for g, _, adapters, _ in gateways:
            devices = [{"name": f"g{g}u{a.unit_id}", "kind": a.kind.value, "unit_id": a.unit_id,
                        "profile": a.profile.name, "rated_power_kw": a.rated_power_kw,
                        "min_setpoint_kw": a.min_setpoint_kw,
                        "max_setpoint_kw": a.max_setpoint_kw, "params": a.params}
                       for a in adapters]
            enrolled = fleet.add_gateway(s, owner, f"site{g}", {
                "host": "127.0.0.1", "port": base_port + g, "devices": devices})
            assert [d.id for d in enrolled.devices] == [a.device_id for a in adapters]


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def _run(args: argparse.Namespace, base_port: int) -> dict:
    from sqlalchemy import text

    from vpp.db import make_engine, upgrade

    gateways = await _build(args.devices, args.per_gateway, base_port)
    await _ours(gateways, 1)  # warm-up (connections, caches)
    base_t, base_req, base_cpu = await _baseline(gateways, base_port, args.cycles)
    par_t, _, par_cpu = await _baseline(gateways, base_port, args.cycles, parallel=True)
    ours_t, ours_req, failed, lat, ours_cpu = await _ours(gateways, args.cycles)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.sqlite3")
        upgrade(engine)
        _register(engine, gateways, base_port)
        db_t, _, failed_db, _, _ = await _ours(gateways, args.cycles, engine)
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM telemetry")).scalar_one()
        engine.dispose()
    for _, client, _, _ in gateways:
        await client.close()
    b, o, d = statistics.median(base_t), statistics.median(ours_t), statistics.median(db_t)
    return {
        "devices": args.devices, "gateways": len(gateways), "cycles": args.cycles,
        "requests_per_cycle": ours_req, "baseline_requests_per_cycle": base_req,
        "baseline_cycle_s": round(b, 4), "baseline_requests_per_s": round(base_req / b, 1),
        "cycle_s": round(o, 4), "requests_per_s": round(ours_req / o, 1),
        "cycle_with_sqlite_telemetry_s": round(d, 4),
        "parallel_plain_pymodbus_cycle_s": round(statistics.median(par_t), 4),
        "client_cpu_s_per_cycle_baseline": round(base_cpu, 4),
        "client_cpu_s_per_cycle_parallel_plain": round(par_cpu, 4),
        "client_cpu_s_per_cycle_poller": round(ours_cpu, 4),
        "speedup_vs_sequential_pymodbus": round(b / o, 2),
        "request_latency_ms_p50": round(_pct(lat, 0.5) * 1000, 2),
        "request_latency_ms_p99": round(_pct(lat, 0.99) * 1000, 2),
        "failed_polls": failed + failed_db,
        "telemetry_rows_stored": stored,
        "target_cycle_under_1s": o < 1.0,
        "cpu_count": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--per-gateway", type=int, default=100)
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--server-procs", type=int, default=2,
                    help="processes serving the simulated gateways (default 2)")
    ap.add_argument("--quick", action="store_true", help="3 cycles (under 60 s)")
    args = ap.parse_args(argv)
    if args.quick:
        args.cycles = 3
    n_gw = -(-args.devices // args.per_gateway)
    base_port = free_port_block(n_gw)
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    procs = [ctx.Process(target=_serve, args=(args.devices, args.per_gateway, base_port, stop,
                                              i, args.server_procs))
             for i in range(args.server_procs)]
    t0 = time.perf_counter()
    for proc in procs:
        proc.start()
    try:
        _wait_ports(base_port, n_gw)
        print(f"servers up: {n_gw} gateways, {args.devices} devices in {args.server_procs} "
              f"process(es) ({time.perf_counter() - t0:.1f} s)")
        res = asyncio.run(_run(args, base_port))
        res["server_processes"] = args.server_procs
    finally:
        stop.set()
        for proc in procs:
            proc.join(15)
            if proc.is_alive():
                proc.terminate()
    print(f"baseline (sequential pymodbus): {res['baseline_cycle_s']:.3f} s/cycle, "
          f"{res['baseline_requests_per_s']:.0f} req/s")
    print(f"poller: {res['cycle_s']:.3f} s/cycle, {res['requests_per_s']:.0f} req/s, "
          f"{res['speedup_vs_sequential_pymodbus']:.2f}x the baseline; with SQLite telemetry "
          f"{res['cycle_with_sqlite_telemetry_s']:.3f} s/cycle")
    print(f"reference, plain pymodbus with gateways in parallel: "
          f"{res['parallel_plain_pymodbus_cycle_s']:.3f} s/cycle; client CPU per cycle: "
          f"baseline {res['client_cpu_s_per_cycle_baseline']:.3f} s, parallel plain "
          f"{res['client_cpu_s_per_cycle_parallel_plain']:.3f} s, poller "
          f"{res['client_cpu_s_per_cycle_poller']:.3f} s")
    print(f"request latency p50 {res['request_latency_ms_p50']} ms, "
          f"p99 {res['request_latency_ms_p99']} ms; failed polls {res['failed_polls']}; "
          f"telemetry rows stored {res['telemetry_rows_stored']}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
