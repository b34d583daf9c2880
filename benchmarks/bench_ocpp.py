"""OCPP: connect N simulated charge points (half 1.6J, half 2.0.1; one connector each) to one
central system, then time a call: a limit for every connector, from the first setpoint to the
last profile accepted.

- **ours**: the daemon's path: :class:`vpp.ocpp.central.OcppCentral` inside the daemon's parts
  (handshake authentication against the registry, boot enrolment, connectors as device adapters
  in the poller), setpoints through ``FleetRuntime.apply`` with the daemon's dispatch fan-out
  (``daemon.dispatch_concurrency``), each clamped, sent as SetChargingProfile and confirmed by
  the charger's answer;
- **bare**: what a competent user writes with the ``ocpp`` library alone: ``websockets.serve``
  and one ``ocpp`` ChargePoint per connection, then one ``asyncio.gather`` of
  ``cp.call(SetChargingProfile(...))`` over them: no database, no authentication, no
  clamping, no bookkeeping. The same simulated charge points (the same code) connect to it.

Both in the same run on loopback. Prints the times, their ratio, and one JSON line at the end.
``--quick``: 200 charge points (< 60 s); default 2,000.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from ocpp.routing import on
from ocpp.v16 import ChargePoint as Base16
from ocpp.v16 import call_result as r16
from ocpp.v201 import ChargePoint as Base201
from ocpp.v201 import call_result as r201
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_adapters.ocpp.profiles import LimitRequest, set_profile_16, set_profile_201  # noqa: E402
from sim.clock import SimClock  # noqa: E402
from sim.ocpp_chargepoint import SimChargePoint  # noqa: E402
from vpp.config import Settings  # noqa: E402
from vpp.daemon.dbexec import Db  # noqa: E402
from vpp.daemon.infra import Infra  # noqa: E402
from vpp.daemon.parts import build_parts  # noqa: E402
from vpp.db import make_engine, session_scope, upgrade  # noqa: E402
from vpp.fleet import add_owner  # noqa: E402
from vpp.models import Device, DeviceStatus, EnrolmentState, Gateway, Site  # noqa: E402
from vpp.ocpp.central import OcppCentral  # noqa: E402
from vpp.ocpp_gateways import OCPP, OCPP_PROFILE, hash_password, new_password  # noqa: E402

RATED_KW = 7.0
LIMIT_KW = 3.0


def identities(n: int) -> list[tuple[str, str, str]]:
    """(identity, OCPP version, password) of N charge points: each its own generated
    password, as ``vpp gateway add-ocpp`` and ``POST /api/v1/charge-points`` give them."""
    return [(f"BENCH-{k:05d}", "2.0.1" if k % 2 else "1.6", new_password()) for k in range(n)]


def register(engine: object, cps: list[tuple[str, str, str]]) -> None:
    """The charge points, of one owner, registered and not yet booted (rows written directly,
    each with its own password's verifier, which the central system checks at each one's first
    connection): each first boot enrols its charge point (a database write)."""
    with session_scope(engine) as s:  # type: ignore[arg-type]
        owner = add_owner(s, "Bench Depot")
        site = Site(owner_id=owner.id or 0, name="depot")
        s.add(site)
        s.flush()
        for identity, _, password in cps:
            gw = Gateway(site_id=site.id or 0, owner_id=owner.id or 0, host=identity, port=0,
                         protocol=OCPP,
                         ocpp_password_hash=hash_password(password, generated=True),
                         enrolment_state=EnrolmentState.REGISTERED.value)
            s.add(gw)
            s.flush()
            s.add(Device(gateway_id=gw.id or 0, site_id=site.id or 0, owner_id=owner.id or 0,
                         name=f"{identity}/c1", kind="ev_charger", unit_id=1,
                         profile=OCPP_PROFILE, rated_power_kw=RATED_KW, min_setpoint_kw=0.0,
                         max_setpoint_kw=RATED_KW, status=DeviceStatus.PENDING.value))


async def connect_all(url: str, cps: list[tuple[str, str, str]], clock: SimClock
                      ) -> tuple[list[SimChargePoint], list[asyncio.Task[None]]]:
    sims = [SimChargePoint(i, p, v, connectors=1, rated_kw=RATED_KW, clock=clock,
                           seed=k, meter_period_s=30.0)
            for k, (i, v, p) in enumerate(cps)]
    gate = asyncio.Semaphore(100)

    async def one(sim: SimChargePoint) -> None:
        async with gate:
            await sim.connect(url)

    await asyncio.gather(*(one(s) for s in sims))
    return sims, [asyncio.create_task(s.meter_loop()) for s in sims]


async def stop_all(sims: list[SimChargePoint], tasks: list[asyncio.Task[None]]) -> None:
    """Stop the meter loops (cancelled again until they end: on Python 3.11 a wait_for
    inside the ocpp library's call can swallow a cancellation that meets its answer), then
    close the connections."""
    for s in sims:
        s.stopping = True
    pending = set(tasks)
    while pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    await asyncio.gather(*(s.close() for s in sims), return_exceptions=True)


def progress(what: str, t0: float) -> None:
    print(f"  {what} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)


async def ours(cps: list[tuple[str, str, str]], tmp: Path,
               concurrency: int | None) -> tuple[float, float, int]:
    n = len(cps)
    engine = make_engine(f"sqlite:///{tmp / 'bench.sqlite3'}")
    upgrade(engine)
    register(engine, cps)
    settings = Settings(database_url=str(engine.url), service={"data_dir": str(tmp)},
                        ocpp={"enabled": True, "port": 0, "call_timeout_s": 60.0},
                        daemon={} if concurrency is None else
                        {"dispatch_concurrency": concurrency})
    infra = Infra.create(settings, Db(engine))
    parts = build_parts(infra)
    central = OcppCentral(infra, parts.fleet, settings.ocpp)
    url = await central.start()
    clock = SimClock()
    t0 = time.perf_counter()
    sims, tasks = await connect_all(url, cps, clock)
    connect_s = time.perf_counter() - t0
    progress(f"ours: {n} connected and booted in {central.boots.batches} boot transactions", t0)
    ids = sorted(parts.fleet.poller.stats)
    assert len(ids) == n, f"{len(ids)} connectors attached of {n}"
    gate = asyncio.Semaphore(settings.daemon.dispatch_concurrency)

    async def apply(device_id: int) -> bool:
        async with gate:
            return (await parts.fleet.apply(device_id, LIMIT_KW)).verified

    t0 = time.perf_counter()
    results = await asyncio.gather(*(apply(i) for i in ids))
    call_s = time.perf_counter() - t0
    assert all(results), f"{results.count(False)} profiles not accepted"
    assert all(abs(s.power_kw(1) - min(LIMIT_KW, s.power_kw(1))) < 1e-9 for s in sims)
    progress(f"ours: {n} profiles accepted", t0)
    batches = central.boots.batches
    await stop_all(sims, tasks)
    await central.stop()
    await parts.close()
    engine.dispose()
    return connect_s, call_s, batches


class Bare16(Base16):  # type: ignore[misc]
    @on("BootNotification")
    def boot(self, **kw: object) -> r16.BootNotification:
        return r16.BootNotification(current_time="2026-01-01T00:00:00Z", interval=300,
                                    status="Accepted")

    @on("StatusNotification")
    def status(self, **kw: object) -> r16.StatusNotification:
        return r16.StatusNotification()

    @on("MeterValues")
    def meter(self, **kw: object) -> r16.MeterValues:
        return r16.MeterValues()

    @on("StartTransaction")
    def start_tx(self, **kw: object) -> r16.StartTransaction:
        return r16.StartTransaction(transaction_id=1, id_tag_info={"status": "Accepted"})


class Bare201(Base201):  # type: ignore[misc]
    @on("BootNotification")
    def boot(self, **kw: object) -> r201.BootNotification:
        return r201.BootNotification(current_time="2026-01-01T00:00:00Z", interval=300,
                                     status="Accepted")

    @on("StatusNotification")
    def status(self, **kw: object) -> r201.StatusNotification:
        return r201.StatusNotification()

    @on("MeterValues")
    def meter(self, **kw: object) -> r201.MeterValues:
        return r201.MeterValues()

    @on("TransactionEvent")
    def tx(self, **kw: object) -> r201.TransactionEvent:
        return r201.TransactionEvent()


async def bare(points: list[tuple[str, str, str]]) -> tuple[float, float]:
    n = len(points)
    cps: list[Bare16 | Bare201] = []

    async def handler(conn: ServerConnection) -> None:
        identity = (conn.request.path if conn.request else "/").rsplit("/", 1)[-1]
        cp = (Bare201 if conn.subprotocol == "ocpp2.0.1" else Bare16)(identity, conn)
        cps.append(cp)
        with contextlib.suppress(ConnectionClosed):
            await cp.start()

    logging.getLogger("ocpp").setLevel(logging.WARNING)
    server = await serve(handler, "127.0.0.1", 0,
                         subprotocols=[Subprotocol("ocpp2.0.1"), Subprotocol("ocpp1.6")])
    port = next(iter(server.sockets)).getsockname()[1]
    clock = SimClock()
    t0 = time.perf_counter()
    sims, tasks = await connect_all(f"ws://127.0.0.1:{port}/ocpp", points, clock)
    connect_s = time.perf_counter() - t0
    progress(f"bare: {n} connected and booted", t0)
    start = clock.now()

    async def send(cp: Bare16 | Bare201) -> str:
        req = LimitRequest(1, LIMIT_KW * 1000.0, start, 1200, 8, None)
        msg = set_profile_201(req) if isinstance(cp, Bare201) else set_profile_16(req)
        return str((await cp.call(msg)).status)

    t0 = time.perf_counter()
    results = await asyncio.gather(*(send(cp) for cp in cps))
    call_s = time.perf_counter() - t0
    assert results.count("Accepted") == n, results[:5]
    progress(f"bare: {n} profiles accepted", t0)
    await stop_all(sims, tasks)
    server.close()
    await server.wait_closed()
    return connect_s, call_s


async def main(n: int, concurrency: int | None) -> dict[str, object]:
    cps = identities(n)
    with tempfile.TemporaryDirectory() as tmp:
        ours_connect, ours_call, batches = await ours(cps, Path(tmp), concurrency)
    bare_connect, bare_call = await bare(cps)
    return {"bench": "ocpp", "charge_points": n, "boot_transactions": batches,
            "ours_call_s": round(ours_call, 3),
            "bare_call_s": round(bare_call, 3), "ratio_call": round(ours_call / bare_call, 2),
            "ours_connect_s": round(ours_connect, 2), "bare_connect_s": round(bare_connect, 2),
            "ratio_connect": round(ours_connect / bare_connect, 2)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 charge points (< 60 s)")
    ap.add_argument("--charge-points", type=int, default=None)
    ap.add_argument("--dispatch-concurrency", type=int, default=None,
                    help="the daemon's dispatch fan-out (default: daemon.dispatch_concurrency)")
    args = ap.parse_args()
    n = args.charge_points or (200 if args.quick else 2000)
    result = asyncio.run(main(n, args.dispatch_concurrency))
    print(f"{n} charge points: call to all profiles accepted {result['ours_call_s']} s (ours) "
          f"vs {result['bare_call_s']} s (bare ocpp loop), ratio {result['ratio_call']}; "
          f"connect+boot {result['ours_connect_s']} s vs {result['bare_connect_s']} s, ratio "
          f"{result['ratio_connect']}")
    print(json.dumps(result))
