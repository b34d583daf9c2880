"""Telemetry ingest on PostgreSQL: a poller worker's fenced COPY batches
(:class:`vpp.cluster.ingest.FencedWriter`: COPY into a staging table, then INSERT .. SELECT of
the rows whose gateway lease the writer holds, skipping stored (device, ts)) against the
single-process multi-row INSERT (:func:`vpp.telemetry_store.write_readings`).

1,000 devices on 10 gateways (rows only: nothing is polled), 30 batches of one reading per
device each way, in a throw-away schema of ``$VPP_TEST_PG_URL`` (default the test database).
Prints rows per second. ``uv run python benchmarks/bench_cluster_ingest.py``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from vpp import fleet
from vpp.cluster.ingest import FencedWriter
from vpp.db import make_engine, session_scope, upgrade
from vpp.telemetry_store import Reading, write_readings

PG = os.environ.get("VPP_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BATTERY = {"kind": "battery", "profile": "huawei-luna2000", "rated_power_kw": 5.0,
           "min_setpoint_kw": -5.0, "max_setpoint_kw": 5.0,
           "params": {"capacity_kwh": 15.0, "soc_min_pct": 10.0, "soc_max_pct": 100.0}}


def _fleet(engine: Engine, gateways: int = 10, per_gateway: int = 100) -> list[int]:
    """Device ids; every gateway leased to worker ``w``."""
    devs: list[int] = []
    with session_scope(engine) as s:
        owner = fleet.add_owner(s, "bench")
        for g in range(gateways):
            spec = {"host": f"10.0.0.{g + 1}", "port": 502, "devices": [
                {**BATTERY, "name": f"b{g}-{u}", "unit_id": u} for u in range(1, per_gateway + 1)]}
            enrolled = fleet.add_gateway(s, owner, "site", spec)
            s.flush()
            devs += [int(d.id or 0) for d in enrolled.devices]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO gateway_lease SELECT id, 'w', 1, now() + interval "
                          "'1 hour' FROM gateway"))
    return devs


def _rate(engine: Engine, devs: list[int], write: Callable[[Engine, Sequence[Reading]], int],
          offset_s: int, batches: int = 30) -> tuple[int, float]:
    t0 = datetime.now(UTC)
    n, start = 0, time.perf_counter()
    for k in range(batches):
        ts = t0 + timedelta(seconds=offset_s + k)
        n += write(engine, [Reading(d, ts, 1.0, 2.0, 50.0, True, 0.5, 3.0) for d in devs])
    return n, time.perf_counter() - start


def main() -> None:
    admin = make_engine(PG)
    schema = "bench_" + uuid.uuid4().hex[:8]
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        engine = make_engine(PG, search_path=schema)
        upgrade(engine)
        devs = _fleet(engine)
        for name, write, offset in (("multi-row INSERT", write_readings, 0),
                                    ("fenced COPY", FencedWriter("w"), 10_000)):
            n, seconds = _rate(engine, devs, write, offset)
            print(f"{name}: {n} rows in {seconds:.2f} s = {n / seconds:,.0f} rows/s "
                  f"(batches of {len(devs)})")
        engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    main()
