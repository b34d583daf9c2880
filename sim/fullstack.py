"""Full-stack scale: the scenario's fleet (a stratified sample of at least 1,000 devices) served
by the Modbus simulators on 127.0.0.1, enrolled through the REST API, driven by the daemon, and
called by the simulated grid operator over the REST intake, on one accelerated clock.

Every part is the production one: :class:`vpp.server.Daemon` (poller, control loop,
planner, dispatcher, settler) with its API; :mod:`sim.fleet` devices serving the device
profiles' register maps. The simulation only plays the outside world:

* the devices run in their own process (:mod:`sim.fleet_process`), as they would in
  production; serving them inside the daemon's event loop starved both (late replies, polls
  timing out, devices marked offline);
* it enrols the owners' gateways as an operator would (``POST /api/v1/owners``,
  ``POST /api/v1/gateways``) and writes eight days of telemetry history (the same devices
  simulated in process, as if the daemon had polled them all along), so that the daemon's
  baselines and settlement use the programme's method;
* it submits the grid call (``POST /api/v1/grid/calls``), injects device faults mid-event (a
  device goes silent, or ignores writes), and reads the outcome back: the daemon's own
  settlement (``/settlements``, ``/payouts``, and the settlement's per-interval record).

The call is the scenario's first call made a real-time call (30 minutes' notice, one hour). The
simulated clock is shared by both processes (:class:`sim.fullstack_fleet.SharedClock`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd

import sim
from sim.fullstack_fleet import (
    HISTORY_DAYS,
    PROFILE_MAX_KW,
    FullStackError,
    Sample,
    SharedClock,
    build_sample,
    first_call,
    rated_share,
)
from sim.fullstack_ocpp import (
    METER_PERIOD_S,
    ChargerGroup,
    charger_groups,
    enrol_charge_points,
    wait_booted,
)
from sim.fullstack_result import api_items, fullstack_result, settlement_detail
from sim.grid import DeviceFault, draw_faults
from sim.plant import CityPlant
from sim.ports import free_port_block
from sim.results import SeasonResult
from sim.scenarios.scenario import Scenario
from sim.simulator_process import Api, SimulatorProcess
from vpp.config import Settings
from vpp.domain.grid_calls import EventStatus

__all__ = ["PROFILE_MAX_KW", "FullStackError", "FullStackOptions", "FullStackRun",
           "full_stack_settings", "run_full_stack"]

log = logging.getLogger("sim.fullstack")
REPO = Path(sim.__file__).resolve().parents[1]


#: The shortest device watchdog of the shipped profiles (industrial-plc's register default,
#: 60 s of simulated time). The daemon feeds watchdogs from its own heartbeat loop, whose period
#: is in real seconds while the simulated devices count simulated ones, so the run caps that
#: period at ``poll_s / 2`` and keeps a poll cycle well inside the watchdog too; otherwise a
#: capped device falls back to full power between two heartbeats (seen before the heartbeat
#: loop existed: a smelting line ignoring its cap for the whole event).
DEVICE_WATCHDOG_MIN_S = 60.0


@dataclass(frozen=True)
class FullStackOptions:
    """How a full-stack run is paced. Real seconds unless named otherwise."""

    n_devices: int = 1000
    accel: float = 10.0  # simulated seconds per real second
    poll_s: float = 2.5  # poll cycle (at 10x: 25 simulated seconds; see DEVICE_WATCHDOG_MIN_S)
    # per-request timeout and retries: a silent device holds up the poll cycle (and with it
    # every heartbeat) by about three reads x timeout x (retries + 1)
    poll_timeout_s: float = 0.4
    poll_retries: int = 1
    settle_delay_minutes: float = 20.0  # simulated; the last poll cycle's readings are stored
    control_period_s: float = 2.0
    lead_minutes: float = 30.0  # simulated time the daemon polls live before the call
    settle_timeout_s: float = 300.0  # after the event end, for the settlement to appear
    ready_timeout_s: float = 600.0  # for the simulator process to listen on every port
    faults: bool = True  # inject the scenario's device faults during the event
    extra_silent: int = 0  # and silence this many more devices (the largest) after 15 minutes


@dataclass
class FullStackRun:
    """What a run produced: the report's result, and where to look further."""

    result: SeasonResult
    event_id: int | None
    db_path: Path
    faults: list[tuple[str, str]] = field(default_factory=list)  # (device name, mode)
    simulator: dict[str, Any] = field(default_factory=dict)  # the simulator process's stats
    daemon: dict[str, Any] = field(default_factory=dict)  # poll errors, offline devices, ...
    chargers: list[ChargerGroup] = field(default_factory=list)  # OCPP and Modbus EV chargers


def full_stack_settings(settings: Settings, opts: FullStackOptions) -> Settings:
    """The daemon's settings for a run: the poll cycle and control period of ``opts``,
    heartbeats at least every ``poll_s / 2`` real seconds (the simulated devices' watchdogs run
    on the accelerated clock); settlement ``settle_delay_minutes`` after the event (so that the
    readings of its last interval are stored), checked every 2 s. The call keeps the programme's
    notice rules: it is sent at its ``issued_at`` on the shared clock (30 minutes ahead).
    The OCPP central system listens on a free loopback port; a connector reads as failed after
    three meter periods without a meter value (:data:`sim.fullstack_ocpp.METER_PERIOD_S`)."""
    if opts.poll_s * opts.accel > DEVICE_WATCHDOG_MIN_S / 2:
        raise FullStackError(
            f"a poll cycle of {opts.poll_s:g} s at {opts.accel:g}x is "
            f"{opts.poll_s * opts.accel:g} simulated seconds: more than half the devices' "
            f"{DEVICE_WATCHDOG_MIN_S:g} s watchdog; poll faster or accelerate less")
    return settings.model_copy(update={
        "polling": settings.polling.model_copy(update={
            "interval_s": opts.poll_s, "timeout_s": opts.poll_timeout_s,
            "retries": opts.poll_retries,
            "watchdog_period_s": min(settings.polling.watchdog_period_s, opts.poll_s / 2)}),
        "daemon": settings.daemon.model_copy(update={
            "settle_delay_minutes": opts.settle_delay_minutes,
            "settle_period_s": min(settings.daemon.settle_period_s, 2.0),
            "control_period_s": opts.control_period_s}),
        # the simulated gateways are on 127.0.0.1: the simulator allows loopback gateways
        "enrolment": settings.enrolment.model_copy(update={"allow_loopback": True}),
        "ocpp": settings.ocpp.model_copy(update={
            "enabled": True, "host": "127.0.0.1", "port": 0,
            "meter_stale_s": max(settings.ocpp.meter_stale_s, 3 * METER_PERIOD_S)}),
    })


async def _wait_until(clock: SharedClock, ts: datetime, poll_s: float = 0.1) -> None:
    while clock.now() < ts:
        await asyncio.sleep(poll_s)


async def run_full_stack(settings: Settings, scn: Scenario, work_dir: Path,
                         opts: FullStackOptions | None = None,
                         progress=None) -> FullStackRun:  # noqa: ANN001
    """Run the scenario's first call through the whole system; see the module docstring.
    ``settings`` are used as given except for :func:`full_stack_settings`."""
    opts = opts or FullStackOptions()
    work_dir.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda stage, done, total: None)
    t0 = time.perf_counter()
    settings = full_stack_settings(settings, opts)
    base_port = _free_port_base(int(opts.n_devices * 1.1) + 10)
    call, _, _ = first_call(scn)
    start = call.issued_at - timedelta(minutes=opts.lead_minutes)
    sims = SimulatorProcess()
    # the simulator process builds the same sample meanwhile (deterministic)
    await sims.start({"scenario": scn.model_dump(mode="json"), "n_devices": opts.n_devices,
                      "base_port": base_port, "accel": opts.accel,
                      "start": start.isoformat()}, work_dir)
    try:
        report("building the fleet sample", 0, 1)
        sample = await asyncio.to_thread(build_sample, scn, opts.n_devices, base_port)
        return await _run(settings, scn, work_dir, opts, sample, start, sims, report, t0)
    finally:
        await sims.stop()


async def _run(settings: Settings, scn: Scenario, work_dir: Path, opts: FullStackOptions,
               sample: Sample, start: datetime, sims: SimulatorProcess, report,  # noqa: ANN001
               t0: float) -> FullStackRun:
    from vpp import fleet as registry
    from vpp.db import make_engine, session_scope, upgrade
    from vpp.server import Daemon

    call = sample.call
    settings, programme, programme_note = sample_programme(
        settings, call.programme, rated_share(sample), work_dir)
    clock = SharedClock(accel=opts.accel, start=start)
    db_path = work_dir / "fullstack.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{db_path.as_posix()}")
    upgrade(engine)
    with session_scope(engine) as s:
        _, op_token = registry.issue_token(s, "operator", label="simulation")
        _, grid_token = registry.issue_token(s, "grid", label="simulated grid operator")
    report("starting the simulator process", 0, sample.n_gateways)
    n_gw = await sims.ready(opts.ready_timeout_s)
    if n_gw != sample.n_gateways:
        raise FullStackError(f"the simulator process serves {n_gw} gateways, "
                             f"expected {sample.n_gateways}")
    daemon = Daemon(settings, engine, clock=clock.now, host="127.0.0.1", port=0)
    url = await daemon.start()
    faults: list[DeviceFault] = []
    applied: list[tuple[str, str]] = []
    event_id: int | None = None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            api = Api(http, url, op_token)
            grid = Api(http, url, grid_token)
            owner_ids = await _enrol(api, sample, report)
            passwords = await enrol_charge_points(api, sample.charge_points, owner_ids,
                                                  work_dir, report)
            devices = api_items(await api.call("GET", "/api/v1/devices"))
            ids = {d["name"]: int(d["id"]) for d in devices}
            report("writing telemetry history", 0, 1)
            plant = await _write_history(engine, sample, ids, start, scn)
            # the charge points connect after the history: writing it holds the daemon's
            # event loop, and their calls would time out (they would reconnect, again and again)
            if sample.charge_points:
                assert daemon.ocpp is not None
                answer = await sims.command(f"ocpp {daemon.ocpp.url} {passwords}")
                if not answer.startswith("ok"):
                    raise FullStackError(f"the simulator's charge points: {answer}")
                await wait_booted(api, len(sample.charge_points), report, opts.ready_timeout_s,
                                  FullStackError)
            # the served devices continue from the history's last state (cars plugged in,
            # batteries' charge, buildings' temperature), not from a fresh start
            path = work_dir / "physics.pickle"
            path.write_bytes(pickle.dumps({d.spec.name: a.physics for d, a in zip(
                plant.devices, plant.adapters, strict=True)}))
            answer = await sims.command(f"physics {path}", timeout_s=120.0)
            if not answer.startswith("ok"):
                raise FullStackError(f"handing the history's state to the simulators: {answer}")
            m0 = clock.release()  # simulated time starts now, in both processes
            await sims.command(f"release {m0!r}")
            await _wait_until(clock, call.issued_at)
            report("grid call", 0, 1)
            decision = await grid.call("POST", "/api/v1/grid/calls",
                                       {**call.to_payload(), "programme": programme})
            event_id = int(decision["event_id"])
            if opts.faults:
                faults = draw_faults(scn, call, len(sample.fleet),
                                     np.random.default_rng([scn.scenario.seed, 9]),
                                     scn.scenario.interval_minutes)
            names = [sample.enrolled_name(d) for d in sample.fleet.devices]
            if opts.extra_silent:
                taken = {f.device_index for f in faults}
                big = sorted((i for i in range(len(names)) if i not in taken),
                             key=lambda i: -sample.fleet.devices[i].spec.rated_power_kw)
                faults += [DeviceFault(i, "fail", call.start + timedelta(minutes=15))
                           for i in big[:opts.extra_silent]]
            pending = sorted(faults, key=lambda f: f.at)
            while clock.now() < call.end:
                now = clock.now()
                while pending and pending[0].at <= now:
                    f = pending.pop(0)
                    answer = await sims.command(_fault_command(sample, f))
                    if answer.startswith("error"):
                        raise FullStackError(f"fault injection: {answer}")
                    applied.append((names[f.device_index], f.mode))
                report(f"event {call.external_id}: {now:%H:%M}", 0, 1)
                await asyncio.sleep(0.2)
            status = await _wait_settled(api, event_id, opts.settle_timeout_s, report)
            delivery = await api.call("GET", f"/api/v1/events/{event_id}/delivery")
            settlements = await api.call("GET", "/api/v1/settlements")
            payouts = await api.call("GET", "/api/v1/payouts")
            loops = await api.call("GET", "/api/v1/daemon/loops")
            chargers = await _chargers(api, sample, event_id, payouts)
        stats = json.loads(await sims.command("stats"))
        rt = daemon.parts.fleet
        assert rt is not None
        daemon_stats = {
            "status": status, "loops": loops,
            "devices_polled": len(rt.poller.stats),
            "devices_offline_at_end": sum(1 for st in rt.poller.stats.values() if not st.online),
            "devices_ever_failed_poll": sum(1 for st in rt.poller.stats.values() if st.errors),
            "poll_errors": sum(st.errors for st in rt.poller.stats.values()),
            "polls": sum(st.polls for st in rt.poller.stats.values()),
            "skipped_polls": rt.skipped_polls,
        }
    finally:
        await daemon.stop()
    detail = settlement_detail(engine, event_id)
    engine.dispose()
    res = fullstack_result(scn, sample, decision, delivery, settlements, payouts, detail,
                           applied, daemon_stats, stats, time.perf_counter() - t0, chargers)
    res.events[0].notes.insert(1, programme_note)
    (work_dir / "run.json").write_text(json.dumps(
        {"event_id": event_id, "wall_s": round(res.wall_seconds, 1), "daemon": daemon_stats,
         "simulator": stats, "faults": applied, "unmetered": detail.get("unmetered"),
         "chargers": [vars(g) for g in chargers],
         "baseline": detail.get("baseline") or "programme method over the metered history"},
        indent=1, default=str))
    return FullStackRun(result=res, event_id=event_id, db_path=db_path, faults=applied,
                        simulator=stats, daemon=daemon_stats, chargers=chargers)


def _fault_command(sample: Sample, f: DeviceFault) -> str:
    """The simulator command of a fault. fail: the device stops answering (a charge point
    disconnects); leave / under-deliver: it stops following control (a Modbus device
    acknowledges writes and keeps its own setpoint; a charge point rejects profiles and drops
    those it holds, as a charger its owner overrides locally)."""
    d = sample.fleet.devices[f.device_index]
    if d.spec.name in sample.where:
        port, unit = sample.where[d.spec.name]
        return f"fault {port} {unit} {'silent' if f.mode == 'fail' else 'ignore-writes'}"
    return f"ocpp-fault {d.spec.name} {'silent' if f.mode == 'fail' else 'reject-profiles'}"


async def _chargers(api: Api, sample: Sample, event_id: int, payouts: Any) -> list[ChargerGroup]:
    """The OCPP and the Modbus chargers' part of the settled owners' response (every settled
    owner has a payout row)."""
    owners = sorted({int(p["owner_id"]) for p in api_items(payouts) if p["event_id"] == event_id})
    n_ev = sum(1 for d in sample.fleet.devices if d.kind.value == "ev_charger")
    return await charger_groups(api, event_id, owners,
                                {cp.enrolled_name for cp in sample.charge_points},
                                len(sample.charge_points), n_ev - len(sample.charge_points))


async def _enrol(api: Api, sample: Sample, report) -> dict[str, int]:  # noqa: ANN001
    """Owners and Modbus gateways, until every gateway's probe is done; the owners' ids."""
    owner_ids: dict[str, int] = {}
    for name in sample.owner_names:
        owner_ids[name] = (await api.call("POST", "/api/v1/owners", {"name": name}))["id"]
    k = 0
    for o in sample.owners:
        for s in o.sites:
            for g in s.gateways:
                await api.call("POST", "/api/v1/gateways", {
                    "owner_id": owner_ids[o.name], "site": s.name, "host": g.host,
                    "port": g.port, "devices": [d.model_dump(mode="json") for d in g.devices]})
                k += 1
                report("enrolling gateways", k, sample.n_gateways)
    for _ in range(1200):
        items = api_items(await api.call("GET", "/api/v1/gateways"))
        done = [x for x in items if x["enrolment_state"] in ("active", "failed")
                and x["port"] != 0]  # an OCPP charge point's gateway has port 0
        report("probing gateways", len(done), sample.n_gateways)
        if len(done) >= sample.n_gateways:
            failed = [x for x in done if x["enrolment_state"] == "failed"]
            if failed:
                raise FullStackError(f"{len(failed)} gateway(s) failed their probe, first: "
                                     f"{failed[0]['host']}:{failed[0]['port']}: "
                                     f"{failed[0].get('last_error') or 'no reason recorded'}")
            return owner_ids
        await asyncio.sleep(0.5)
    raise FullStackError("gateway probes did not finish within 10 minutes")


async def _wait_settled(api: Api, event_id: int, timeout_s: float, report) -> str:  # noqa: ANN001
    """Until the event is settled or unsettled (the settle loop's verdict), or the timeout."""
    deadline = time.monotonic() + timeout_s
    status = "?"
    while time.monotonic() < deadline:
        status = (await api.call("GET", f"/api/v1/events/{event_id}"))["status"]
        if status in (EventStatus.SETTLED, EventStatus.UNSETTLED, EventStatus.REJECTED,
                      EventStatus.CANCELLED):
            return status
        report(f"waiting for the settlement ({status})", 0, 1)
        await asyncio.sleep(1.0)
    return status


async def _write_history(engine, sample: Sample, ids: dict[str, int],  # noqa: ANN001
                         until: datetime, scn: Scenario) -> CityPlant:
    """Telemetry for the days before the run, from the same devices simulated in process (as if
    the daemon had polled them all along): one reading per device and interval. Returns the
    plant at ``until``."""
    from vpp.telemetry_store import Reading, write_readings

    minutes = scn.scenario.interval_minutes
    end = pd.Timestamp(until)
    start = end.tz_convert(scn.scenario.timezone).normalize() - pd.Timedelta(days=HISTORY_DAYS)
    devices = sample.fleet.devices
    plant = CityPlant(devices, start.to_pydatetime(), seed=scn.scenario.seed)
    temp = sample.temperature_c
    n = 0
    ts = start
    rows: list[Reading] = []
    while ts + pd.Timedelta(minutes=minutes) <= end:
        plant.shape(float(temp.asof(ts)))
        kw = await plant.advance(minutes)
        stamp = (ts + pd.Timedelta(minutes=minutes / 2)).to_pydatetime()
        rows.extend(Reading(ids[sample.enrolled_name(d)], stamp, float(p))
                    for d, p in zip(devices, kw, strict=True))
        if len(rows) >= 50_000:
            n += await asyncio.to_thread(write_readings, engine, rows)
            rows = []
        ts += pd.Timedelta(minutes=minutes)
    if rows:
        n += await asyncio.to_thread(write_readings, engine, rows)
    log.info("history: %d readings", n)
    return plant


def sample_programme(settings: Settings, programme: str, share: float,
                     work_dir: Path) -> tuple[Settings, str, str]:
    """The programme the sample bids under: it stands for ``share`` of the city fleet's rated
    power, so it bids as that share of the aggregator, with the programme's size minimum
    (``min_declared_kw``, every version) scaled by ``share`` and every other rule as published
    (the 10% of normal load share included). Written beside copies of the other programme
    files in ``work_dir / "programmes"``; returns the settings pointing there, the derived
    programme's name and a sentence for the report."""
    src_dir = Path(settings.bidding.programmes_dir)
    src = src_dir / f"{programme}.toml"
    if not src.is_file():
        raise FullStackError(f"programme {programme!r}: no {src}")
    out = work_dir / "programmes"
    out.mkdir(parents=True, exist_ok=True)
    for f in src_dir.glob("*.toml"):
        shutil.copyfile(f, out / f.name)
    name = f"{programme}-sample"
    text = src.read_text(encoding="utf-8").replace(f'name = "{programme}"', f'name = "{name}"')
    mins: list[float] = []

    def scaled(m: re.Match[str]) -> str:
        mins.append(float(m.group(2)))
        return f"{m.group(1)}{float(m.group(2)) * share:.1f}"

    text = re.sub(r"(?m)^(min_declared_kw\s*=\s*)([\d.]+)", scaled, text)
    (out / f"{name}.toml").write_text(text, encoding="utf-8")
    note = (f"programme {programme} with its size minimum scaled to the sample's "
            f"{share:.1%} share of the city fleet's rated power "
            f"({max(mins, default=0.0) / 1000:g} MW -> {max(mins, default=0.0) * share / 1000:.2f} MW"
            f"); every other rule as published")
    return (settings.model_copy(update={"bidding": settings.bidding.model_copy(
        update={"programmes_dir": out})}), name, note)


def _free_port_base(n: int) -> int:
    """A base port with ``n`` free consecutive ports on 127.0.0.1."""
    try:
        return free_port_block(n, stride=997)
    except OSError as exc:
        raise FullStackError(str(exc)) from None
