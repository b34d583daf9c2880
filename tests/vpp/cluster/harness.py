"""Set-up for the cluster tests: a PostgreSQL schema with an active fleet on simulated
pymodbus gateways (loopback), and ``vpp serve --role ...`` as real subprocesses, so that a
SIGKILL is a real one. Nothing is mocked."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from sim.server import SimGateway
from tests.conftest import REPO_ROOT
from tests.vpp.daemon.harness import gateway_spec, port, start_gateway, write_test_programme
from tests.vpp.daemon.test_restart import process_url
from vpp import fleet
from vpp.cluster.share import assign
from vpp.db import session_scope
from vpp.device_kinds import DeviceKind
from vpp.errors import NotFoundError

HEARTBEAT_S = 0.5
LEASE_S = 2.0


def postgres_only(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("a cluster needs PostgreSQL (leases, LISTEN/NOTIFY, advisory locks); "
                    "SQLite runs the single-process role 'all' only")


def cluster_config(tmp: Path, engine: Engine) -> Path:
    """`vpp serve` settings for a cluster process: fast loops, short leases."""
    write_test_programme(tmp / "programmes")
    cfg = tmp / "cluster.toml"
    periods = ", ".join(f"{k.value} = 0.3" for k in DeviceKind)  # every device at every tick
    cfg.write_text(f"""
database_url = "{process_url(engine)}"
[service]
data_dir = "{tmp}"
[polling]
interval_s = 0.3
timeout_s = 0.5
retries = 1
watchdog_period_s = 1.0
event_period_s = 0.3
period_s = {{ {periods} }}
[bidding]
programme = "test-rt"
programmes_dir = "{tmp / 'programmes'}"
[daemon]
control_period_s = 0.3
settle_period_s = 0.5
drain_timeout_s = 5.0
[enrolment]
allow_loopback = true
[cluster]
heartbeat_s = {HEARTBEAT_S}
lease_s = {LEASE_S}
command_sweep_s = 1.0
command_timeout_s = 10.0
planner_retry_s = 0.5
""")
    return cfg


async def spawn(cfg: Path, role: str, worker_id: str, log: Path,
                env: dict[str, str] | None = None, http_port: int = 0
                ) -> asyncio.subprocess.Process:
    """``vpp serve --role ROLE --worker-id ID`` on ``http_port`` (0: a free one), stderr to
    ``log``."""
    full = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    full.pop("VPP_CONFIG", None)
    with log.open("ab") as fh:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vpp.cli.main", "--config", str(cfg), "serve", "--port", str(http_port),
            "--role", role, "--worker-id", worker_id, "--log-text", cwd=str(cfg.parent),
            env=full, stdout=asyncio.subprocess.DEVNULL, stderr=fh)


def plc_spec(gateway_port: int) -> dict[str, Any]:
    """A gateway with two 20 kW industrial loads (the industrial-plc profile: a setpoint writes
    the power cap, register 100; heartbeats write a counter, register 103)."""
    return {"host": "127.0.0.1", "port": gateway_port, "devices": [
        {"name": f"load-{gateway_port}-{u}", "kind": "industrial_load", "unit_id": u,
         "profile": "industrial-plc", "rated_power_kw": 20.0, "min_setpoint_kw": 0.0,
         "max_setpoint_kw": 20.0, "params": {"max_curtail_kw": 10.0}} for u in (1, 2)]}


async def active_fleet(engine: Engine, n: int,
                       spec_of: Callable[[int], dict[str, Any]] = gateway_spec
                       ) -> tuple[list[SimGateway], dict[int, SimGateway]]:
    """``n`` simulated gateways (``spec_of(port)``: two batteries each by default), enrolled
    and active; returns them and gateway id -> its simulator."""
    gws: list[SimGateway] = []
    by_id: dict[int, SimGateway] = {}
    with session_scope(engine) as s:
        try:
            owner = fleet.get_owner(s, "Shennong City Mall")  # seeded with the API's tokens
        except NotFoundError:
            owner = fleet.add_owner(s, "Shennong City Mall")
        for _ in range(n):
            spec = spec_of(port())
            gw = await start_gateway(spec)
            gws.append(gw)
            enrolled = fleet.add_gateway(s, owner, "mall", spec)
            enrolled.gateway.enrolment_state = "active"
            for d in enrolled.devices:
                d.status = "active"
            s.flush()
            by_id[int(enrolled.gateway.id or 0)] = gw
    return gws, by_id


def split_names(gateway_ids: Iterable[int]) -> tuple[str, str]:
    """Two worker names between which rendezvous hashing splits these gateways (each gets at
    least one): found by trying names, so that the test does not depend on luck."""
    ids = list(gateway_ids)
    for k in range(100):
        a, b = f"poller-a{k}", f"poller-b{k}"
        owners = set(assign(ids, [a, b]).values())
        if owners == {a, b}:
            return a, b
    raise AssertionError("no split found")


def lease_owners(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT gateway_id, owner FROM gateway_lease WHERE expires_at > now()")).all()
    return {int(g): str(o) for g, o in rows}


def doubled_readings(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM (SELECT device_id, ts FROM telemetry GROUP BY device_id, ts "
            "HAVING count(*) > 1) d")).scalar() or 0)


def readings_after(engine: Engine, device_ids: list[int]) -> dict[int, int]:
    """Device -> stored readings (all of them)."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT device_id, count(*) FROM telemetry WHERE device_id = ANY(:d) "
            "GROUP BY device_id"), {"d": device_ids}).all()
    return {int(d): int(n) for d, n in rows}


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
