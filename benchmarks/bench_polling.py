"""Polling throughput: 1,000 simulated devices behind 10 gateways on loopback, our poller
against the plain parallel pymodbus loop a competent user would write.

The simulated gateways (real pymodbus servers, our device profiles and physics) run in separate
processes, so client and servers do not share one event loop; on this 2-core machine they still
share the CPU. Measured in the same run, cycles alternating so both see the same machine load:

* baseline: ``asyncio.gather`` over one pre-opened ``AsyncModbusTcpClient`` per gateway, each
  reading the same register blocks as the poller, one request at a time per gateway (a gateway
  answers one request at a time), no decoding;
* ours: :meth:`vpp.poller.Poller.poll_once` (timeouts and retries, decoding, plausibility
  checks, flexibility, statistics, readings), and the same with batched telemetry to SQLite.

Reports the full-fleet cycle time (median of the cycles), client CPU per request, their ratios
against the baseline (target: within 1.1x), the CPU per request layer by layer (our
``GatewayClient`` alone, then with the adapters, then the poller: where the difference goes),
per-request latency percentiles, and ends with one JSON line. ``--quick`` < 60 s. (The baseline imports pymodbus directly on purpose: it is the
thing we compare against.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import multiprocessing.synchronize
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from device_adapters.adapter import ProfileAdapter  # noqa: E402
from device_adapters.modbus_client import GatewayClient  # noqa: E402
from device_adapters.profile import ReadBlock  # noqa: E402
from sim.ports import free_port_block  # noqa: E402
from vpp.poller import Poller  # noqa: E402

TARGET_RATIO = 1.1


def _serve(n_devices: int, per_gateway: int, base_port: int,
           stop: multiprocessing.synchronize.Event, index: int = 0, procs: int = 1) -> None:
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


@dataclass
class Gateway:
    """One simulated gateway as both sides see it: our client and adapters, and the blocks
    (unit id, block) one poll of every device reads."""

    index: int
    port: int
    client: GatewayClient
    adapters: list[ProfileAdapter]
    blocks: list[tuple[int, ReadBlock]]


async def _build(n_devices: int, per_gateway: int, base_port: int) -> list[Gateway]:
    from device_adapters.factory import make_adapter
    from device_adapters.profile import plan_blocks
    from sim.fleet import SYNTHETIC_KINDS

    gateways = []
    dev_id = 0
    for g in range(-(-n_devices // per_gateway)):
        k = SYNTHETIC_KINDS[g % len(SYNTHETIC_KINDS)]
        client = GatewayClient("127.0.0.1", base_port + g, timeout_s=2.0, retries=1)
        adapters = []
        for u in range(1, min(per_gateway, n_devices - g * per_gateway) + 1):
            dev_id += 1
            adapters.append(await make_adapter(
                client, device_id=dev_id, unit_id=u, kind=k.kind, profile=k.profile,
                rated_power_kw=k.rated_power_kw, min_setpoint_kw=k.min_setpoint_kw,
                max_setpoint_kw=k.max_setpoint_kw, params=k.params))
        blocks = [(a.unit_id, b) for a in adapters
                  for b in plan_blocks(a.profile, a.profile.poll_points())]
        gateways.append(Gateway(g, base_port + g, client, adapters, blocks))
    return gateways


@dataclass
class Side:
    """Per-cycle measurements of one side."""

    seconds: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    requests: int = 0
    failed: int = 0

    def cpu_per_request_us(self) -> float:
        return statistics.median(self.cpu_s) / max(1, self.requests) * 1e6


async def _measure(side: Side, cycle: Callable[[], Awaitable[int]]) -> None:
    """One cycle: wall and client CPU time (process time: every thread of this process)."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    side.requests = await cycle()
    side.seconds.append(time.perf_counter() - t0)
    side.cpu_s.append(time.process_time() - cpu0)


class Baseline:
    """The plain parallel pymodbus loop: one client per gateway, gateways gathered."""

    def __init__(self, gateways: list[Gateway]) -> None:
        self.gateways = gateways
        self.clients: list[AsyncModbusTcpClient] = []

    async def open(self) -> None:
        for g in self.gateways:
            c = AsyncModbusTcpClient("127.0.0.1", port=g.port, timeout=2.0, retries=1)
            if not await c.connect():
                raise RuntimeError(f"baseline: gateway on port {g.port} unreachable")
            self.clients.append(c)

    async def cycle(self) -> int:
        async def one(c: AsyncModbusTcpClient, blocks: list[tuple[int, ReadBlock]]) -> int:
            for unit, b in blocks:
                call = (c.read_holding_registers if b.function == "holding"
                        else c.read_input_registers)
                rr = await call(b.address, count=b.count, device_id=unit)
                if rr.isError():
                    raise RuntimeError(f"baseline: unit {unit} refused a read: {rr}")
            return len(blocks)

        counts = await asyncio.gather(*(one(c, g.blocks)
                                        for c, g in zip(self.clients, self.gateways, strict=True)))
        return sum(counts)

    def close(self) -> None:
        for c in self.clients:
            c.close()


def _poller(gateways: list[Gateway], engine: Engine | None) -> Poller:
    from vpp.config import PollingSettings

    poller = Poller(engine, PollingSettings(timeout_s=2.0, retries=1, telemetry_batch_size=1000))
    for g in gateways:
        poller.add_gateway(g.index, g.client, g.adapters)
    return poller


def _register(engine: Engine, gateways: list[Gateway]) -> None:
    """Device rows with ids 1..N in poll order (telemetry has a foreign key to them)."""
    from vpp import fleet
    from vpp.db import session_scope

    with session_scope(engine) as s:
        owner = fleet.add_owner(s, "bench")
        for g in gateways:
            devices = [{"name": f"g{g.index}u{a.unit_id}", "kind": a.kind.value,
                        "unit_id": a.unit_id, "profile": a.profile.name,
                        "rated_power_kw": a.rated_power_kw, "min_setpoint_kw": a.min_setpoint_kw,
                        "max_setpoint_kw": a.max_setpoint_kw, "params": a.params}
                       for a in g.adapters]
            enrolled = fleet.add_gateway(s, owner, f"site{g.index}", {
                "host": "127.0.0.1", "port": g.port, "devices": devices})
            assert [d.id for d in enrolled.devices] == [a.device_id for a in g.adapters]


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def _client_cycle(gateways: list[Gateway]) -> int:
    """The layers under the poller, for the breakdown: our ``GatewayClient`` alone (timeouts,
    retries, statistics) reading the same blocks, gateways gathered."""
    async def one(g: Gateway) -> int:
        for unit, b in g.blocks:
            await g.client.read(unit, b.function, b.address, b.count)
        return len(g.blocks)

    return sum(await asyncio.gather(*(one(g) for g in gateways)))


async def _adapter_cycle(gateways: list[Gateway]) -> int:
    """... and the adapters on top (decoding, checks, flexibility, the device state)."""
    async def one(g: Gateway) -> int:
        for a in g.adapters:
            await a.read_state()
        return len(g.blocks)

    return sum(await asyncio.gather(*(one(g) for g in gateways)))


async def _poller_cycle(poller: Poller, side: Side) -> int:
    r = await poller.poll_once()
    side.failed += r.failed
    return r.requests


async def _run(args: argparse.Namespace, base_port: int) -> dict[str, Any]:
    from sqlalchemy import text

    from vpp.db import make_engine, upgrade

    gateways = await _build(args.devices, args.per_gateway, base_port)
    base = Baseline(gateways)
    await base.open()
    ours = _poller(gateways, None)
    await ours.poll_once()  # warm-up (connections, caches)
    await base.cycle()
    b, o, d, cl, ad = Side(), Side(), Side(), Side(), Side()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.sqlite3")
        upgrade(engine)
        _register(engine, gateways)
        with_db = _poller(gateways, engine)
        for g in gateways:
            g.client.stats.latencies_s.clear()
        # the set-up's objects (fleet, profiles, ORM) out of the collector's way, as a
        # long-running daemon would freeze them: a full collection, triggered by whichever
        # side allocates next, otherwise scans them all and lands on that side's cycle
        gc.collect()
        gc.freeze()
        for _ in range(args.cycles):  # interleaved: the same machine load on every side
            await _measure(b, base.cycle)
            await _measure(o, lambda: _poller_cycle(ours, o))
            await _measure(d, lambda: _poller_cycle(with_db, d))
            await _measure(cl, lambda: _client_cycle(gateways))
            await _measure(ad, lambda: _adapter_cycle(gateways))
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM telemetry")).scalar_one()
        engine.dispose()
    base.close()
    lat = [x for g in gateways for x in g.client.stats.latencies_s]
    for g in gateways:
        await g.client.close()
    bs, os_, ds = (statistics.median(x.seconds) for x in (b, o, d))
    cycle_ratio, cpu_ratio = os_ / bs, o.cpu_per_request_us() / b.cpu_per_request_us()
    return {
        "devices": args.devices, "gateways": len(gateways), "cycles": args.cycles,
        "requests_per_cycle": o.requests, "baseline_requests_per_cycle": b.requests,
        "baseline_cycle_s": round(bs, 4), "cycle_s": round(os_, 4),
        "cycle_with_sqlite_telemetry_s": round(ds, 4),
        "requests_per_s": round(o.requests / os_, 1),
        "baseline_cpu_us_per_request": round(b.cpu_per_request_us(), 1),
        "cpu_us_per_request": round(o.cpu_per_request_us(), 1),
        "cpu_us_per_request_with_sqlite": round(d.cpu_per_request_us(), 1),
        "cycle_ratio": round(cycle_ratio, 3), "cpu_per_request_ratio": round(cpu_ratio, 3),
        "cycle_ratio_with_sqlite": round(ds / bs, 3),
        "cpu_per_request_ratio_with_sqlite": round(
            d.cpu_per_request_us() / b.cpu_per_request_us(), 3),
        "breakdown_cpu_us_per_request": {
            "plain_pymodbus": round(b.cpu_per_request_us(), 1),
            "gateway_client": round(cl.cpu_per_request_us(), 1),
            "adapters": round(ad.cpu_per_request_us(), 1),
            "poller": round(o.cpu_per_request_us(), 1)},
        "target_ratio": TARGET_RATIO,
        "target_met": cycle_ratio <= TARGET_RATIO and cpu_ratio <= TARGET_RATIO,
        "request_latency_ms_p50": round(_pct(lat, 0.5) * 1000, 2),
        "request_latency_ms_p99": round(_pct(lat, 0.99) * 1000, 2),
        "failed_polls": o.failed + d.failed, "telemetry_rows_stored": stored,
        "cpu_count": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
    }


def _report(res: dict[str, Any]) -> None:
    print(f"baseline (plain pymodbus, gateways gathered): {res['baseline_cycle_s']:.3f} s/cycle, "
          f"{res['baseline_cpu_us_per_request']:.0f} us CPU/request")
    print(f"poller: {res['cycle_s']:.3f} s/cycle ({res['requests_per_s']:.0f} req/s), "
          f"{res['cpu_us_per_request']:.0f} us CPU/request")
    print(f"ratios poller/baseline: cycle {res['cycle_ratio']:.2f}x, CPU per request "
          f"{res['cpu_per_request_ratio']:.2f}x (target <= {TARGET_RATIO}x: "
          f"{'met' if res['target_met'] else 'NOT met'}); with SQLite telemetry: cycle "
          f"{res['cycle_ratio_with_sqlite']:.2f}x, CPU {res['cpu_per_request_ratio_with_sqlite']:.2f}x")
    br = res["breakdown_cpu_us_per_request"]
    print(f"CPU per request by layer (us): plain pymodbus {br['plain_pymodbus']}, + our "
          f"GatewayClient {br['gateway_client']}, + adapters {br['adapters']}, + poller "
          f"{br['poller']}")
    print(f"request latency p50 {res['request_latency_ms_p50']} ms, "
          f"p99 {res['request_latency_ms_p99']} ms; failed polls {res['failed_polls']}; "
          f"telemetry rows stored {res['telemetry_rows_stored']}; load average "
          f"{res['load_average_1m']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--per-gateway", type=int, default=100)
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--server-procs", type=int, default=2,
                    help="processes serving the simulated gateways (default 2)")
    ap.add_argument("--quick", action="store_true", help="3 cycles of each (under 60 s)")
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
    _report(res)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
