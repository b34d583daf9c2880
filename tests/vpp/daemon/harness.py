"""Shared test set-up for the daemon, API and dashboard tests: a permissive test programme,
a migrated database with tokens, simulated Modbus gateways on 127.0.0.1, and the real daemon.

Nothing is mocked: the gateways are ``sim`` pymodbus servers, the daemon is
:class:`vpp.server.Daemon` serving HTTP on a free loopback port.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import Engine
from sqlmodel import Session

from device_adapters.protocol import DeviceState
from sim.server import SimGateway
from tests.conftest import REPO_ROOT, free_port
from vpp import fleet
from vpp.bids import add_bid, kw_shares
from vpp.config import GatewaySpec, Settings
from vpp.daemon.dbexec import Db
from vpp.daemon.infra import Infra
from vpp.daemon.planning import Planner, PlanOutcome
from vpp.db import session_scope
from vpp.device_kinds import DeviceKind
from vpp.domain.grid_calls import EventStatus
from vpp.models import Bid, GridEvent, Owner, Role

PROGRAMME = "test-rt"


def stored_id(row_id: int | None) -> int:
    """A stored row's id (``row.id`` after a flush or commit, so never ``None``)."""
    assert row_id is not None, "the row is stored"
    return row_id


def write_test_programme(directory: Path) -> Path:
    """Hunan's 2026 rules with the window open all day, no size minimum and no minimum notice,
    so that a test can call an event that starts in the interval in progress (its maximum
    notice, interval alignment, tariff and band stay as they are)."""
    text = (REPO_ROOT / "config/programmes/hunan-2026.toml").read_text()
    text = text.replace('name = "hunan-2026"', f'name = "{PROGRAMME}"')
    text = re.sub(r"(?m)^windows = \[\"[^\]]*\]", 'windows = ["00:00-24:00"]', text)
    text = re.sub(r"min_declared_kw = [\d.]+", "min_declared_kw = 0.0", text)
    text = re.sub(r"min_share_of_normal_load_pct = [\d.]+", "min_share_of_normal_load_pct = 0.0",
                  text)
    text = re.sub(r"notice_min_hours = [\d.]+", "notice_min_hours = 0.0", text)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{PROGRAMME}.toml"
    path.write_text(text)
    return path


def daemon_settings(tmp: Path, db_url: str, **daemon: Any) -> Settings:
    write_test_programme(tmp / "programmes")
    d = {"control_period_s": 0.3, "settle_period_s": 0.5, "min_replan_interval_s": 3600.0,
         "drain_timeout_s": 5.0, "loop_backoff_base_s": 0.1}
    d.update(daemon)
    return Settings(
        database_url=db_url,
        service={"data_dir": str(tmp)},
        polling={"interval_s": 0.3, "timeout_s": 0.5, "retries": 1, "backoff_base_s": 0.05,
                 "watchdog_period_s": 1.0,
                 # every device at every tick: tests watch the fleet at the loop's pace
                 "period_s": {k.value: 0.3 for k in DeviceKind}, "event_period_s": 0.3},
        bidding={"programme": PROGRAMME, "programmes_dir": str(tmp / "programmes")},
        daemon=d,
        # the simulated gateways run on 127.0.0.1 (what the README tells a rehearsing user)
        enrolment={"allow_loopback": True},
    )


@dataclass
class Tokens:
    operator: str
    grid: str
    owner: str
    other_owner: str
    owner_id: int
    other_owner_id: int


def seed(engine: Engine) -> Tokens:
    with session_scope(engine) as s:
        o1 = fleet.add_owner(s, "Shennong City Mall")
        o2 = fleet.add_owner(s, "Rail Works")
        _, op = fleet.issue_token(s, Role.OPERATOR, None, "ops")
        _, grid = fleet.issue_token(s, Role.GRID, None, "grid")
        _, own = fleet.issue_token(s, Role.OWNER, o1, "mall")
        _, other = fleet.issue_token(s, Role.OWNER, o2, "rail")
        return Tokens(op, grid, own, other, stored_id(o1.id), stored_id(o2.id))


def add_completed_event(s: Session, external_id: str, start: datetime, device_ids: list[int],
                        owner_id: int, declared_kw: float, baseline_kw: float) -> int:
    """A completed one-hour real-time event on the test programme, with the baselines fixed at
    its first plan (``baseline_kw`` for every device and interval) and the owner's bid: what
    the settle loop picks up. ``s`` is an open session; returns the event id."""
    from decimal import Decimal

    from vpp.models import Bid, GridEvent

    ev = GridEvent(external_id=external_id, source="rest", event_type="real_time",
                   direction="peak_shaving", programme=PROGRAMME, start=start,
                   end=start + timedelta(hours=1), requested_kw=declared_kw, status="completed",
                   detail={"baseline_kw": {str(d): [baseline_kw] * 4 for d in device_ids}})
    s.add(ev)
    s.flush()
    event_id = stored_id(ev.id)
    add_bid(s, Bid(event_id=event_id, declared_kw=declared_kw,
                   price_yuan_per_kwh=Decimal("2.0")), kw_shares({owner_id: declared_kw}))
    return event_id


def gateway_spec(port: int, kinds: str = "mixed") -> dict[str, Any]:
    """A gateway with a battery, a building and an industrial load (real product profiles)."""
    devices = [
        {"name": "battery-1", "kind": "battery", "unit_id": 1, "profile": "huawei-luna2000",
         "rated_power_kw": 5.0, "min_setpoint_kw": -5.0, "max_setpoint_kw": 5.0,
         "params": {"capacity_kwh": 15.0, "soc_min_pct": 10.0, "soc_max_pct": 100.0}},
        {"name": "battery-2", "kind": "battery", "unit_id": 2, "profile": "huawei-luna2000",
         "rated_power_kw": 5.0, "min_setpoint_kw": -5.0, "max_setpoint_kw": 5.0,
         "params": {"capacity_kwh": 15.0, "soc_min_pct": 10.0, "soc_max_pct": 100.0}},
    ]
    return {"host": "127.0.0.1", "port": port, "devices": devices}


async def start_gateway(spec: dict[str, Any]) -> SimGateway:
    from sim.clock import SimClock
    from sim.fleet import gateway_from_spec

    gw = gateway_from_spec(GatewaySpec.model_validate(spec), SimClock())
    await gw.start()
    return gw


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_for(check: Callable[[], Awaitable[Any]], timeout_s: float = 20.0,
                   what: str = "condition", every_s: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def call_now(external_id: str, requested_kw: float, minutes: int = 60,
             event_type: str = "real_time") -> dict[str, Any]:
    """A call whose window starts at the current 15-minute interval."""
    now = datetime.now(UTC)
    start = now - timedelta(minutes=now.minute % 15, seconds=now.second,
                            microseconds=now.microsecond)
    return {"external_id": external_id, "event_type": event_type,
            "direction": "peak_shaving", "start": start.isoformat(),
            "end": (start + timedelta(minutes=minutes)).isoformat(),
            "requested_kw": requested_kw}


async def room_in_interval(seconds: float) -> None:
    """Wait, if need be, until ``seconds`` are left in the current 15-minute interval (wall
    clock), so that a test that counts plans is not crossed by an interval boundary (a new
    interval moves the plan's pinned past, and a re-plan there is rightly written)."""
    now = datetime.now(UTC)
    left = 900 - (now.minute % 15) * 60 - now.second - now.microsecond / 1e6
    if left < seconds:
        await asyncio.sleep(left + 0.5)


async def enrol_and_poll(session: aiohttp.ClientSession, base: str, tokens: Tokens,
                         spec: dict[str, Any], devices: int, site: str = "mall"
                         ) -> list[dict[str, Any]]:
    """Enrol ``spec`` through the API as the owner, wait until the daemon polls all
    ``devices`` of the fleet, and return the API's device listing."""
    await send_json(session, "POST", f"{base}/api/v1/gateways", tokens.owner,
                    {"site": site, **spec}, 202)

    async def polled() -> list[dict[str, Any]] | None:
        devs = await get_json(session, f"{base}/api/v1/devices", tokens.operator)
        ok = len(devs) == devices and all(d["power_kw"] is not None for d in devs)
        return devs if ok else None

    devs: list[dict[str, Any]] = await wait_for(polled, what=f"{devices} devices polled")
    return devs


async def get_json(session: aiohttp.ClientSession, url: str, token: str | None = None,
                   status: int = 200) -> Any:
    async with session.get(url, headers=auth(token) if token else None) as r:
        body = await r.json()
        assert r.status == status, (r.status, body)
        return body


async def send_json(session: aiohttp.ClientSession, method: str, url: str, token: str | None,
                    payload: Any, status: int) -> Any:
    async with session.request(method, url, json=payload,
                               headers=auth(token) if token else None) as r:
        body = await r.json()
        assert r.status == status, (r.status, body)
        return body


def port() -> int:
    return free_port()


def serve_config(tmp: Path, db_url: str) -> Path:
    """A config file for `vpp serve` as a subprocess on the test programme (fast loops)."""
    write_test_programme(tmp / "programmes")
    cfg = tmp / "daemon.toml"
    cfg.write_text(f"""
database_url = "{db_url}"
[service]
data_dir = "{tmp}"
[polling]
interval_s = 0.3
timeout_s = 0.5
retries = 1
watchdog_period_s = 1.0
[bidding]
programme = "{PROGRAMME}"
programmes_dir = "{tmp / 'programmes'}"
[daemon]
control_period_s = 0.3
min_replan_interval_s = 3600.0
drain_timeout_s = 5.0
[enrolment]
allow_loopback = true
""")
    return cfg


async def spawn_serve(cfg: Path, http_port: int, log: Path) -> asyncio.subprocess.Process:
    """Start `vpp serve` in a subprocess (stderr appended to ``log``)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("VPP_CONFIG", None)
    with log.open("ab") as fh:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vpp.cli.main", "--config", str(cfg), "serve",
            "--port", str(http_port), cwd=str(cfg.parent), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=fh,
        )


async def is_up(c: aiohttp.ClientSession, base: str) -> bool:
    """Whether the daemon at ``base`` answers its health check."""
    try:
        async with c.get(f"{base}/api/v1/health") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


class StaticFleet:
    """The fleet runtime's two questions the planner asks (is it online, its last state),
    answered for devices drawing 15 kW: the poller itself is tested elsewhere."""

    def is_online(self, device_id: int) -> bool:
        return True

    def latest(self, device_id: int) -> DeviceState:
        return DeviceState(device_id, datetime.now(UTC), 15.0, None, None, None, True, 5.0, 0.0)


def add_plant(s: Session, owner: Owner, host: str, **params: Any) -> list[int]:
    """Two 20 kW industrial loads of ``owner`` on one gateway, active (curtailable by 10 kW;
    ``params`` override their other parameters)."""
    spec = {"host": host, "port": 502, "devices": [
        {"name": f"{host}-load-{u}", "kind": "industrial_load", "unit_id": u,
         "profile": "industrial-plc", "rated_power_kw": 20.0, "min_setpoint_kw": 0.0,
         "max_setpoint_kw": 20.0, "params": {"max_curtail_kw": 10.0, **params}}
        for u in (1, 2)]}
    devs = fleet.add_gateway(s, owner, "plant", spec).devices
    for d in devs:
        d.status = "active"
        s.add(d)
    s.flush()
    return [stored_id(d.id) for d in devs]


def accepted_call(engine: Engine, owner_id: int, host: str, start: datetime, hours: int,
                  requested_kw: float = 8.0, *, fixed: bool = True, **params: Any
                  ) -> tuple[int, list[int]]:
    """Two loads of ``owner_id`` (:func:`add_plant`, ``params`` overriding theirs) and an
    accepted real-time call of ``hours`` from ``start`` bid at ``requested_kw`` by that owner:
    (event id, device ids). ``fixed``: the event's baselines stored with it (15 kW per device
    over the call's intervals), else left for the first plan to fix."""
    with session_scope(engine) as s:
        ids = add_plant(s, fleet.get_owner(s, owner_id), host, **params)
        detail = {"baseline_kw": {str(d): [15.0] * (4 * hours) for d in ids}} if fixed else {}
        ev = GridEvent(external_id=f"rt-{host}", source="rest", event_type="real_time",
                       direction="peak_shaving", programme=PROGRAMME, start=start,
                       end=start + timedelta(hours=hours), requested_kw=requested_kw,
                       status=EventStatus.ACCEPTED, detail=detail)
        s.add(ev)
        s.flush()
        event_id = stored_id(ev.id)
        add_bid(s, Bid(event_id=event_id, declared_kw=requested_kw,
                       price_yuan_per_kwh=Decimal("2.0")), kw_shares({owner_id: requested_kw}))
        return event_id, ids


def planner_at(engine: Engine, settings: Settings, now: list[datetime]) -> Planner:
    """A planner on ``engine`` whose clock reads ``now[0]``."""
    return Planner(Infra.create(settings, Db(engine), clock=lambda: now[0]),
                   # a stand-in answering the two questions Planner asks of its FleetRuntime
                   StaticFleet())  # type: ignore[arg-type]


async def plan_at(planner: Planner, event_id: int, now: list[datetime], start: datetime,
                  steps: list[tuple[int, str]]) -> list[PlanOutcome]:
    """Plan ``event_id`` at ``start`` + each (minutes, reason); closes the planner."""
    outs: list[PlanOutcome] = []
    try:
        for minutes, reason in steps:
            now[0] = start + timedelta(minutes=minutes)
            outs.append(await planner.plan(event_id, reason))
    finally:
        planner.close()
        planner.infra.db.close()
    return outs
