"""The first run of an operator and an owner, as a test (issue 23, item 5).

Everything runs as a newcomer runs it from the README ("Rehearse with simulated gateways") and
docs/daemon.md, on the shipped configuration (config/default.toml, programme hunan-2026: 10 MW
minimum, 12 h day-ahead notice, 10:00-23:00 windows). The only settings are those the README
tells a user to set: the database (``VPP_DATABASE_URL``), the data directory, loopback gateways
allowed for the rehearsal (``VPP_ENROLMENT__ALLOW_LOOPBACK``) and the VTN's address
(``VPP_DAEMON__OPENADR__VTN_URL``). Separate processes of the real CLI: ``vpp db upgrade``,
``vpp owner add`` / ``owner token`` / ``token create``, ``vpp sim gateways --sim-clock``,
``vpp serve --sim-clock`` on a free loopback port, the printed ``vpp gateway add ... --probe``
commands while the daemon runs, then ``vpp settle`` and ``vpp report``. The grid: a day-ahead
call with a day's notice over REST, and a real-time call with 30 minutes' notice and a start off
the 15-minute grid from openleadr's own VTN (in this process, on 127.0.0.1).

Time is the simulator's clock: 60 simulated seconds per second (``--accel``; see EVENT_ACCEL
for the events), and ``clock skip-to`` jumps the 23 h between the day-ahead call and its
event, so both events run their full hour. The real-time event runs first (today), the
day-ahead one the next day: an event's plan keeps dispatching over its 4 h tail, which must
not overlap the other event or its baseline window. Both events run on SQLite (the embedded
default a newcomer starts on); on PostgreSQL the day-ahead event alone, for the suite's
10-minute budget (the two runs took 241 s and 345 s of it; the REST intake, planning,
dispatch and settlement are the same code on both backends). Measured on the shared 2-core
machine (sqlite, both events, 2026-12-07): 39 s from the first command to the enrolled fleet
(a `vpp` command takes 1-3 s: the CLI imports a command's module only when it runs), 26 s to
the real-time call's start (30 minutes' notice at 60x), 62 s for each event, about 25 s for
`vpp settle` and `vpp report` at the end: about 4 minutes in all; the settlements are
awaited at the end, not between the events (the settle loop looks every 30 s).

Fleet: 600 devices (``--devices 600 --per-gateway 120``: five gateways of 120: Huawei and
Sungrow batteries, Alfen chargers, CoolMaster buildings, industrial PLCs). The VTN's call (e.g.
12:41:30-13:41:30) is widened by the VEN to the intervals that cover it (75 minutes), in which
a PLC (250 kW for at most 60 minutes) delivers 200 kW on average, staggered: the no-history
offer (40% of that envelope) is then 9.1 MW from 500 devices, below the programme's 10 MW, and
11.0 MW from 600. 300, as in the issue, cannot honestly clear 10 MW for an hour: measured on
the simulated physics (one hour at the lowest setpoint, midday), 100 batteries give 0.5 MW,
100 chargers 0.3 MW (before the comfort band limited buildings' shed: 100 buildings 2.7 MW,
their comfort protection taking over after 6-35 minutes; they are now planned within their band
and offer less); the PLCs, 150 kW each below their running load, carry the events.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import signal
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from openleadr import OpenADRServer
from sqlalchemy import text

from sim.clock import FileClock
from tests.conftest import PG_URL, free_port
from tests.e2e.newcomer import Api, Newcomer, Spawned, free_ports, last_line, wait_for
from vpp.db import make_engine

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # openleadr's dependencies
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]

TZ = ZoneInfo("Asia/Shanghai")  # the programme's and service.timezone's zone
N_DEVICES = 600  # see the module docstring
PER_GATEWAY = 120  # five gateways, one per kind, the fifth industrial PLCs
ACCEL = 60.0  # simulated seconds per real second, outside events
#: ... and during events (kept for a slower machine): an industrial PLC's 60 s watchdog must be
#: fed within 60 / speed real seconds (1 s at 60x). H6 measured 40 of 100 PLCs dropping their
#: caps at 60x and ran events at 20x. The PLCs that overrode in our runs did so because the plan
#: capped them past their 60 minutes (all a little for a whole 75-minute call; then exactly 60
#: minutes, with setpoints landing a minute late at 60x); with vpp.scheduler.shed staggering
#: them, a minute's margin, none overrode during either event at 60x (sqlite, measured).
EVENT_ACCEL = 60.0
#: the simulated devices' watchdog timeout (s on their clock), as the README's rehearsal sets it
#: (``vpp sim gateways --watchdog-s``): at 60x the PLCs' default 60 s is 1 s of real time, and
#: 2026-12-07 measured hundreds of feeds a minute arriving later than that on this 2-core machine
#: (most while a re-plan held the daemon's loop), the plants dropping their caps and the
#: day-ahead event falling to 29-49% of declared. 300 s is 5 s real. The daemon's answers to a
#: late feed are tested on their own (tests/vpp/test_late_heartbeat.py,
#: tests/vpp/daemon/test_reassert.py); here the newcomer's path is.
WATCHDOG_S = 300.0
LEAD = timedelta(minutes=20)  # the day-ahead event is planned within 15 minutes of its start
REQUESTED_KW = 12_000.0  # the grid asks for 12 MW (programme minimum 10 MW)
OWNER = "Sim Owner"
POLL_BOUND_S = 5.0  # one poll period (1 s) + one poll cycle of 600 devices + the API's answer
VTN_VEN_ID = "ven-xiang"


def simulated_day() -> date:
    """Two days after today in Shanghai: openleadr's VTN and VEN judge an event's status on the
    wall clock, so the simulated events must lie ahead of it (a past one is 'completed' and
    gets no answer); still this year's calendar."""
    return (datetime.now(TZ) + timedelta(days=2)).date()


def ceil_interval(t: datetime, minutes: int = 15) -> datetime:
    floor = t.replace(minute=t.minute - t.minute % minutes, second=0, microsecond=0)
    return floor if floor == t else floor + timedelta(minutes=minutes)


@dataclass
class Grid:
    """openleadr's VTN on 127.0.0.1 and what it saw."""

    server: OpenADRServer
    port: int
    registered: list[str]
    opts: list[tuple[str, str]]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/OpenADR2/Simple/2.0b"


async def start_vtn() -> Grid:
    vtn_port = free_port()
    grid = Grid(OpenADRServer(vtn_id="HUNAN-GRID-VTN", http_host="127.0.0.1",
                              http_port=vtn_port, requested_poll_freq=timedelta(seconds=1),
                              verify_message_signatures=False, show_server_cert_domain=False),
                vtn_port, [], [])

    def on_register(info: dict[str, Any]) -> tuple[str, str]:
        grid.registered.append(str(info.get("ven_name")))
        return VTN_VEN_ID, "reg-1"

    def on_register_report(*_: Any) -> tuple[Any, timedelta]:
        async def collect(data: list[tuple[datetime, float]]) -> None:
            return None

        return collect, timedelta(seconds=60)

    grid.server.add_handler("on_create_party_registration", on_register)
    grid.server.add_handler("on_register_report", on_register_report)
    await grid.server.run()
    return grid


PROBLEMS: list[str] = []


def expect(ok: bool, problem: str) -> None:
    """Record a failed expectation and go on (the run reports every step that fails)."""
    if not ok:
        PROBLEMS.append(problem)
        report(f"PROBLEM: {problem}")


_T0 = time.monotonic()


def report(line: str) -> None:
    print(f"[first-run +{time.monotonic() - _T0:.0f}s] {line}", flush=True)


async def day_ahead_call(clock: FileClock, grid_api: Api, ops: Api
                         ) -> tuple[int | None, datetime, datetime]:
    """A day-ahead call over REST, its window starting a day (rounded up to the next interval)
    after now; (event id if accepted, start, end)."""
    start = ceil_interval(clock.now() + timedelta(hours=24))
    end = start + timedelta(hours=1)
    status, decision = await grid_api.post("/grid/calls", {
        "external_id": f"hunan-da-{start:%Y%m%d-%H%M}", "event_type": "day_ahead",
        "direction": "peak_shaving", "start": start.isoformat(), "end": end.isoformat(),
        "requested_kw": REQUESTED_KW, "programme": "hunan-2026"})
    report(f"day-ahead call for {start.isoformat()}: {status} {decision}")
    if status != 201 or not decision.get("accepted"):
        expect(False, f"day-ahead call with a day's notice not accepted: {status} {decision}")
        return None, start, end
    ev = await ops.get(f"/events/{decision['event_id']}")
    notice_h = (datetime.fromisoformat(ev["start"])
                - datetime.fromisoformat(ev["received_at"])).total_seconds() / 3600
    expect(23.9 <= notice_h <= 24.3, f"day-ahead notice from receipt {notice_h:.2f} h")
    return int(decision["event_id"]), start, end


async def real_time_call(sim: Spawned, clock: FileClock, grid: Grid, ops: Api
                         ) -> tuple[int | None, datetime, datetime]:
    """A real-time call from the VTN: 30 minutes' notice, a start 14 min 30 s into a 15-minute
    interval (off the grid, the worst case: the VEN covers the interval from 14.5 minutes
    before; the notice the grid gave is still 30 minutes); (event id if the VEN opted in,
    start, end). The clock skips to 30 minutes before the next such start rather than
    running up to it (up to 15 s at 60x)."""
    await wait_for(lambda: asyncio.sleep(0, grid.registered), 60, "VEN registration")
    t = (clock.now() + timedelta(minutes=31)).replace(second=0, microsecond=0)
    t += timedelta(minutes=(14 - t.minute % 15) % 15)
    await clock_command(sim, f"clock skip-to {(t - timedelta(minutes=30)).isoformat()}")
    start = t.replace(second=30, microsecond=0)
    end = start + timedelta(hours=1)
    grid.server.add_event(
        ven_id=VTN_VEN_ID, signal_name="LOAD_DISPATCH", signal_type="delta",
        intervals=[{"dtstart": start, "duration": timedelta(hours=1),
                    "signal_payload": -REQUESTED_KW}],  # delta < 0: a reduction, in kW
        event_id="hunan-rt-1",
        callback=lambda ven_id, event_id, opt_type: grid.opts.append((event_id, opt_type)))
    await wait_for(lambda: asyncio.sleep(0, grid.opts), 30, "the VEN's answer")
    ev = next((e for e in await ops.get("/events")
               if e["external_id"].startswith("openadr:hunan-rt-1")), None)
    report(f"real-time call from the VTN for {start.isoformat()}: {grid.opts}; event {ev}")
    if ev is None:
        expect(False, "the VTN's real-time call left no event")
        return None, start, end
    notice_min = (start - datetime.fromisoformat(ev["received_at"])).total_seconds() / 60
    expect(27.0 <= notice_min <= 31.0, f"real-time notice from receipt {notice_min:.1f} min")
    if grid.opts != [("hunan-rt-1", "optIn")]:
        expect(False, f"the VEN answered {grid.opts} to a real-time call with 30 minutes' "
               f"notice (event status {ev['status']})")
        return None, start, end
    return int(ev["id"]), start, end


async def afterwards(user: Newcomer, reports: Path, evs: dict[str, dict[str, Any]],
                     settlements: list[dict[str, Any]], ops: Api, da_start: datetime) -> None:
    """`vpp settle --event N` agrees with the daemon's settlement; `vpp report` covers it
    (the commands run side by side, as two terminals would: each only reads what the daemon
    settled)."""
    done = [ev for ev in evs.values() if ev["status"] == "settled"]
    period = f"{da_start:%Y-%m}"
    *settles, (rc, out, err) = await asyncio.gather(
        *(user.run("settle", "--event", str(ev["id"]), "--out", str(reports)) for ev in done),
        user.run("report", "--period", period, "--out", str(reports)))
    expect(rc == 0 and all(ev["external_id"][:20] in out for ev in done),
           f"`vpp report --period {period}`: exit {rc}\n{out[-1500:]}\n{err[-1500:]}")
    for ev, (rc, out, err) in zip(done, settles, strict=True):
        daemon_st = max((s for s in settlements if s["event_id"] == ev["id"]),
                        key=lambda s: s["version"])
        revenue = re.search(r"revenue\s*│?\s*([-\d,.]+) yuan", out)
        flat = " ".join(out.split())  # rich wraps the title on a narrow terminal
        agrees = (rc == 0 and "unchanged (already settled)" in flat and revenue is not None
                  and revenue.group(1).replace(",", "") == f"{daemon_st['revenue_fen'] / 100:.2f}")
        expect(agrees, f"event {ev['id']}: `vpp settle --event {ev['id']}` does not agree with "
               f"the daemon's settlement {daemon_st}: exit {rc}\n{out[-1500:]}\n{err[-1500:]}")
    expect(len(await ops.get("/settlements")) == len(settlements),
           "vpp settle wrote a new settlement version")


class Database:
    """A fresh database for one run: a SQLite file, or a new PostgreSQL database."""

    def __init__(self, backend: str, tmp: Path) -> None:
        self.backend = backend
        self.name = f"vpp_first_run_{int(time.time() * 1000) % 10**9}"
        if backend == "sqlite":
            self.url = f"sqlite:///{tmp / 'vpp.sqlite3'}"
        else:
            admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f"CREATE DATABASE {self.name}"))
            admin.dispose()
            self.url = PG_URL.rsplit("/", 1)[0] + f"/{self.name}"

    def drop(self) -> None:
        if self.backend == "postgres":
            admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)"))
            admin.dispose()


async def enrol_while_serving(user: Newcomer, sim: Spawned, ops: Api) -> list[float]:
    """Run every printed ``vpp gateway add ... --probe`` while the daemon runs; after each,
    how long (real s) until the daemon polls the new devices."""
    commands = [line.strip() for line in sim.lines if line.strip().startswith("vpp gateway add")]
    assert len(commands) == N_DEVICES // PER_GATEWAY, sim.lines[:20]
    waits = []
    enrolled = 0
    for cmd in commands:
        await user.ok(*shlex.split(cmd)[1:], timeout_s=180)
        enrolled += PER_GATEWAY
        t0 = time.monotonic()

        async def polled(expected: int = enrolled) -> bool:
            st = await ops.get("/fleet/status")
            return int(st["devices_online"]) >= expected

        await wait_for(polled, timeout_s=60, what=f"{enrolled} devices polled", every_s=0.1)
        waits.append(time.monotonic() - t0)
    return waits


async def until_simulated(clock: FileClock, when: datetime, slack_s: float = 5.0) -> None:
    """Sleep until the simulated clock reads ``when``."""
    while (left := (when - clock.now()).total_seconds()) > 0:
        await asyncio.sleep(min(left / clock.accel + 0.05, slack_s))


async def clock_command(sim: Spawned, line: str) -> str:
    """Type ``line`` into the simulator; its answer."""
    mark = len(sim.lines)
    await sim.send(line)
    return await sim.wait_line(lambda s: s.startswith(("clock:", "error:")), 30,
                               f"answer to {line!r}", mark)


async def run_event(sim: Spawned, clock: FileClock, event_id: int, start: datetime,
                    end: datetime) -> None:
    """Let event ``event_id`` run at EVENT_ACCEL from just before its start to its end."""
    await until_simulated(clock, start - timedelta(minutes=2))
    answer = await clock_command(sim, f"clock speed {EVENT_ACCEL:g}")
    assert "speed" in answer, answer
    report(f"event {event_id}: running at {EVENT_ACCEL:g}x from {clock.now():%H:%M}")
    await until_simulated(clock, end)
    report(f"event {event_id}: the call ended")


async def settled(ops: Api, event_id: int) -> dict[str, Any]:
    """Wait for the daemon to settle event ``event_id`` (or give up on it); the event."""
    async def done() -> dict[str, Any] | None:
        ev = await ops.get(f"/events/{event_id}")
        return ev if ev["status"] in ("settled", "unsettled", "cancelled") else None

    ev: dict[str, Any] = await wait_for(done, timeout_s=120, what=f"event {event_id} settled")
    report(f"event {event_id}: {ev['status']}")
    return ev


def check_event(name: str, ev: dict[str, Any], settlements: list[dict[str, Any]],
                plans: list[dict[str, Any]], payouts: list[dict[str, Any]]) -> list[str]:
    """What is wrong with one settled event (empty: nothing)."""
    problems = []
    if ev["status"] != "settled":
        problems.append(f"{name}: status {ev['status']} ({ev.get('detail')})")
        return problems
    st = max((s for s in settlements if s["event_id"] == ev["id"]), key=lambda s: s["version"])
    ratio = float(st["performance_ratio"])
    report(f"{name}: delivered {ratio:.1%} of {st['declared_kw']:.0f} kW declared, revenue "
           f"{st['revenue_fen'] / 100:.2f} yuan, penalty {st['penalty_fen'] / 100:.2f} yuan")
    if not 0.5 <= ratio <= 1.2:
        problems.append(f"{name}: delivered {ratio:.1%} of declared {st['declared_kw']:.0f} kW, "
                        "outside the paid band 50-120%")
    if st["penalty_fen"] != 0:
        problems.append(f"{name}: penalty {st['penalty_fen'] / 100:.2f} yuan")
    for p in plans:
        if float(p["shortfall_kw"]) > 0.01 * float(st["declared_kw"]):
            problems.append(f"{name}: plan {p['id']} ({p.get('reason')}) planned "
                            f"{p['shortfall_kw']:.0f} kW short of the declared")
    paid = sum(int(p["amount_fen"]) for p in payouts if p["event_id"] == ev["id"])
    if paid <= 0:
        problems.append(f"{name}: owners paid {paid / 100:.2f} yuan")
    return problems


async def first_run(tmp_path: Path, backend: str, real_time: bool) -> None:
    global _T0
    PROBLEMS.clear()
    _T0 = time.monotonic()
    db = Database(backend, tmp_path)
    grid = await start_vtn()
    user = Newcomer(tmp_path, {
        "VPP_DATABASE_URL": db.url,
        "VPP_SERVICE__DATA_DIR": str(tmp_path / "data"),
        "VPP_ENROLMENT__ALLOW_LOOPBACK": "true",
        "VPP_DAEMON__OPENADR__VTN_URL": grid.url,
    })
    clock_file = tmp_path / "sim-clock.json"
    day = simulated_day()
    sim_start = datetime(day.year, day.month, day.day, 11, 0, tzinfo=TZ)
    spawned: list[Spawned] = []
    t_begin = time.monotonic()
    try:
        await user.ok("db", "upgrade")
        await user.ok("owner", "add", OWNER)
        last_line(await user.ok("owner", "token", OWNER))
        operator = last_line(await user.ok("token", "create", "--role", "operator"))
        grid_token = last_line(await user.ok("token", "create", "--role", "grid"))

        base_port = free_ports(N_DEVICES // PER_GATEWAY)
        sim = await user.spawn("sim", "sim", "gateways", "--devices", str(N_DEVICES),
                               "--base-port", str(base_port), "--per-gateway", str(PER_GATEWAY),
                               "--accel", f"{ACCEL:g}", "--watchdog-s", f"{WATCHDOG_S:g}",
                               "--sim-clock", str(clock_file), "--sim-start",
                               sim_start.isoformat(), "--owner", OWNER)
        spawned.append(sim)
        await sim.wait_line(lambda s: s.startswith("serving"), 120, "'serving' line")
        clock = FileClock(clock_file)

        http_port = free_port()
        serve = await user.spawn("serve", "serve", "--port", str(http_port), "--sim-clock",
                                 str(clock_file))
        spawned.append(serve)
        base = f"http://127.0.0.1:{http_port}"
        async with aiohttp.ClientSession() as session:
            ops = Api(session, base, operator)
            grid_api = Api(session, base, grid_token)

            async def up() -> bool:
                assert serve.proc.returncode is None, \
                    f"vpp serve exited {serve.proc.returncode}: {serve.stderr.read_text()[-3000:]}"
                try:
                    async with session.get(f"{base}/api/v1/health") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_for(up, timeout_s=90, what="vpp serve answering")
            waits = await enrol_while_serving(user, sim, ops)
            report(f"enrolled {N_DEVICES} devices from the CLI; polled {waits} s after each")
            expect(max(waits) <= POLL_BOUND_S, f"devices polled {max(waits):.1f} s after "
                   f"their CLI enrolment (more than {POLL_BOUND_S} s)")
            da_id, da_start, da_end = await day_ahead_call(clock, grid_api, ops)
            ids: dict[str, int] = {}
            if real_time:
                rt_id, rt_start, rt_end = await real_time_call(sim, clock, grid, ops)
                if rt_id is not None:
                    await run_event(sim, clock, rt_id, rt_start, rt_end)
                    ids["real-time"] = rt_id
            else:  # the VEN registers with the VTN all the same
                await wait_for(lambda: asyncio.sleep(0, grid.registered), 60, "VEN registration")
            if da_id is not None:  # a day passes in a moment: to just before the event
                await clock_command(sim, f"clock speed {ACCEL:g}")
                await clock_command(sim, f"clock skip-to {(da_start - LEAD).isoformat()}")
                await run_event(sim, clock, da_id, da_start, da_end)
                ids["day-ahead"] = da_id
            evs = {name: await settled(ops, i) for name, i in ids.items()}
            settlements = await ops.get("/settlements")
            payouts = await ops.get("/payouts")
            for name, ev in evs.items():
                plans = await ops.get(f"/events/{ev['id']}/plans")
                for problem in check_event(name, ev, settlements, plans, payouts):
                    expect(False, problem)
            await afterwards(user, tmp_path / "reports", evs, settlements, ops, da_start)

        expect(await serve.stop() == 0, f"vpp serve did not exit 0 on SIGTERM: "
               f"{serve.stderr.read_text()[-2000:]}")
        await sim.stop(signal.SIGINT)
        for name, text_ in user.tracebacks().items():
            expect(False, f"traceback in the stderr of `{name}`:\n{text_}")
        report(f"first run on {backend}: {time.monotonic() - t_begin:.0f} s")
        assert not PROBLEMS, "\n".join(PROBLEMS)
    finally:
        for sp in spawned:
            await sp.stop()
        await grid.server.stop()
        db.drop()


@pytest.mark.parametrize(("backend", "real_time"), [
    ("sqlite", True), pytest.param("postgres", False, marks=pytest.mark.postgres)])
async def test_first_run(tmp_path: Path, backend: str, real_time: bool) -> None:
    """Both calls on SQLite, the embedded default a newcomer starts on; the day-ahead call
    alone on PostgreSQL (module docstring: the suite's time budget)."""
    await first_run(tmp_path, backend, real_time)
