"""Full-stack scale: the scenario's fleet (a stratified sample of at least 1,000 devices) served
by the Modbus simulators on 127.0.0.1, enrolled through the REST API, driven by the daemon, and
called by the simulated grid operator over the REST intake, on one accelerated clock.

Every part is the production one: :class:`vpp.daemon.service.Daemon` (poller, control loop,
planner, dispatcher, settler) with its API; :mod:`sim.fleet` gateways serving the device
profiles' register maps. The simulation only plays the outside world: it enrols the owners'
gateways as an operator would (``POST /api/v1/owners``, ``POST /api/v1/gateways``), injects
device faults mid-event (a device goes silent or ignores writes), submits the grid call
(``POST /api/v1/grid/calls``) and reads the outcome back (``/events/{id}/delivery``,
``/settlements``, ``/payouts``).

The call is a real-time call on the scenario's first event day (30 minutes' notice, one hour):
at the full-stack scale the daemon's baselines come from the telemetry it has polled, so a run
starts shortly before the call and the daemon's own fallback (recent mean) applies; the report
names the baseline method used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd

from sim.clock import SimClock
from sim.fleet import gateway_from_spec
from sim.grid import GridCall, GridOperator, draw_faults
from sim.plant import CityPlant
from sim.ports import free_port_block
from sim.results import EventOutcome, SeasonResult
from sim.scenarios import behaviour
from sim.scenarios.city import (
    city_load_mw,
    hourly_temperature,
    interval_index,
    season_days,
    simulate_weather,
)
from sim.scenarios.fleet import Fleet, generate_fleet
from sim.scenarios.scenario import Scenario
from vpp.config import Settings
from vpp.errors import VppError

log = logging.getLogger("sim.fullstack")
#: Largest rating each device profile's control registers can express (from the profile files:
#: coolmaster-vrf demand_limit 6000 x 0.1 kW; industrial-plc power_cap 100000 x 0.1 kW; the AC
#: chargers' 32 A on three phases). Devices above it, or with a profile that has no register map
#: yet, are left out of the full-stack sample (they run at city scale only).
PROFILE_MAX_KW = {"coolmaster-vrf": 600.0, "industrial-plc": 10_000.0, "alfen-ng9xx": 22.0,
                  "keba-p30": 22.0, "sunspec": 65.0}  # SunSpec 124.WChaMax: uint16 W, SF 0
LEAD_MINUTES = 30  # simulated time the daemon polls live before the call is issued
HISTORY_DAYS = 8  # telemetry history written before the run (the daemon's baselines need >= 7)
SETTLE_WAIT_MINUTES = 30  # simulated time after the event end for the settlement


class FullStackError(VppError):
    code = "full_stack_failed"


def _first_call(scn: Scenario) -> tuple[GridCall, pd.Series]:
    days = season_days(scn)
    weather = simulate_weather(scn, days, np.random.default_rng([scn.scenario.seed, 1]))
    period = [d for d in days if any(a <= d <= b for a, b in scn.season.periods)]
    calls = GridOperator(scn, weather).calls(period)
    if not calls:
        raise FullStackError("the scenario issues no calls")
    c = calls[0]
    g = scn.grid_operator
    start = c.start
    rt = GridCall(
        external_id=f"sim-fs-{c.day:%Y%m%d}", event_type="real_time", direction=c.direction,
        programme=c.programme, issued_at=start - timedelta(minutes=g.real_time_notice_minutes),
        start=start, end=start + timedelta(minutes=g.real_time_duration_minutes),
        requested_kw=c.requested_kw, reason=c.reason + " (real-time at full-stack scale)",
    )
    idx = interval_index([c.day], scn.scenario.timezone, scn.scenario.interval_minutes)
    return rt, city_load_mw(scn, weather, idx)


class HeldClock:
    """A :class:`~sim.clock.SimClock` held at ``start`` until :meth:`release`: enrolment and
    writing the history take real time that must not pass on the simulated clock."""

    def __init__(self, accel: float, start) -> None:  # noqa: ANN001
        self.accel = accel
        self.start = start
        self._clock: SimClock | None = None

    def release(self) -> None:
        self._clock = SimClock(accel=self.accel, start=self.start)

    def now(self):  # noqa: ANN201
        return self.start if self._clock is None else self._clock.now()


class _Api:
    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http, self.url, self.headers = http, url, {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.url + path, json=body,
                                     headers=self.headers) as r:
            data = await r.json(content_type=None)
            if r.status >= 400:
                raise FullStackError(f"{method} {path}: HTTP {r.status}: {data}")
            return data


async def _wait_until(clock: HeldClock, ts, poll_s: float = 0.2) -> None:  # noqa: ANN001
    while clock.now() < ts:
        await asyncio.sleep(poll_s)


async def run_full_stack(settings: Settings, scn: Scenario, work_dir: Path,
                         n_devices: int = 1000, accel: float = 60.0,
                         progress=None) -> SeasonResult:  # noqa: ANN001
    """Run the scenario's first event day through the whole system; see the module docstring."""
    work_dir.mkdir(parents=True, exist_ok=True)
    return await _run(settings, scn, work_dir, n_devices, accel, progress)


async def _run(settings: Settings, scn: Scenario, work_dir: Path, n_devices: int,
               accel: float, progress) -> SeasonResult:  # noqa: ANN001
    from vpp import fleet as registry
    from vpp.daemon.service import Daemon
    from vpp.db import make_engine, session_scope, upgrade

    report = progress or (lambda stage, done, total: None)
    t0 = time.perf_counter()
    call, city = _first_call(scn)
    whole = generate_fleet(scn)
    servable = [d for d in whole.devices
                if d.spec.rated_power_kw <= PROFILE_MAX_KW.get(d.spec.profile, -1.0)]
    share = n_devices / len(servable)
    fleet = Fleet(servable, whole.seed).sample(int(n_devices * 1.02) + 1,
                                              seed=scn.scenario.seed)
    left_out = len(whole) - len(servable)
    base_port = _free_port_base(len(fleet) // 2 + 50)
    owners = fleet.owner_specs(host="127.0.0.1", first_port=base_port)
    clock = HeldClock(accel=accel, start=call.issued_at - timedelta(minutes=LEAD_MINUTES))
    gateways = []
    by_name: dict[str, Any] = {}
    for o in owners:
        for s in o.sites:
            for g in s.gateways:
                gw = gateway_from_spec(g, clock, seed=len(gateways) * 1000)
                gateways.append((o, s, g, gw))
                for spec in g.devices:
                    by_name[spec.name] = gw.devices[spec.unit_id]
    served = {d.spec.name: d for d in fleet.devices}
    for name, dev in by_name.items():
        behaviour.configure(dev.physics, served[name])
    temp = _temperature(scn, call)
    report("starting Modbus gateways", 0, len(gateways))
    for _, _, _, gw in gateways:
        await gw.start()
    shaper = asyncio.create_task(_shape_loop(clock, by_name, served, temp, scn))
    db_path = work_dir / "fullstack.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{db_path.as_posix()}")
    upgrade(engine)
    with session_scope(engine) as s:
        _, op_token = registry.issue_token(s, "operator", label="simulation")
        _, grid_token = registry.issue_token(s, "grid", label="simulated grid operator")
    daemon = Daemon(settings, engine, clock=clock.now, host="127.0.0.1", port=0)
    url = await daemon.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            api = _Api(http, url, op_token)
            grid = _Api(http, url, grid_token)
            owner_ids: dict[str, int] = {}
            for k, (o, s, g, _) in enumerate(gateways):
                if o.name not in owner_ids:
                    owner_ids[o.name] = (await api.call("POST", "/api/v1/owners",
                                                        {"name": o.name}))["id"]
                await api.call("POST", "/api/v1/gateways", {
                    "owner_id": owner_ids[o.name], "site": s.name, "host": g.host,
                    "port": g.port, "devices": [d.model_dump(mode="json") for d in g.devices]})
                report("enrolling gateways", k + 1, len(gateways))
            for _ in range(600):
                gws = await api.call("GET", "/api/v1/gateways")
                items = gws["items"] if isinstance(gws, dict) else gws
                done = sum(1 for x in items if x["enrolment_state"] in ("active", "failed"))
                report("probing gateways", done, len(gateways))
                if done >= len(gateways):
                    break
                await asyncio.sleep(0.5)
            devices = _items(await api.call("GET", "/api/v1/devices"))
            ids = {d["name"]: int(d["id"]) for d in devices}
            report("writing telemetry history", 0, 1)
            await _write_history(engine, fleet, ids, clock.start, temp, scn)
            clock.release()  # simulated time starts now
            await _wait_until(clock, call.issued_at)
            report("grid call", 0, 1)
            decision = await grid.call("POST", "/api/v1/grid/calls", call.to_payload())
            event_id = decision["event_id"]
            faults = draw_faults(scn, call, len(fleet), np.random.default_rng([scn.scenario.seed, 9]))
            names = [d.spec.name for d in fleet.devices]
            pending = sorted(faults, key=lambda f: f.at)
            end = call.end + timedelta(minutes=SETTLE_WAIT_MINUTES)
            while clock.now() < end:
                now = clock.now()
                while pending and pending[0].at <= now:
                    f = pending.pop(0)
                    dev = by_name[names[f.device_index]]
                    if f.mode == "fail":
                        dev.faults.silent = True
                    else:  # leave / under-deliver: the device stops following writes
                        dev.faults.ignore_writes = True
                report(f"event {call.external_id}: {now:%H:%M}", 0, 1)
                await asyncio.sleep(0.5)
            for _ in range(240):  # the settle loop runs every settle_period_s (real seconds)
                settlements = await api.call("GET", "/api/v1/settlements")
                if any(x["event_id"] == event_id for x in _items(settlements)):
                    break
                report("waiting for the settlement", 0, 1)
                await asyncio.sleep(1.0)
            delivery = await api.call("GET", f"/api/v1/events/{event_id}/delivery")
            payouts = await api.call("GET", "/api/v1/payouts")
    finally:
        shaper.cancel()
        await asyncio.gather(shaper, return_exceptions=True)
        await daemon.stop()
        for _, _, _, gw in gateways:
            await gw.stop()
        engine.dispose()
    res = _result(scn, fleet, call, city, decision, delivery, settlements, payouts, faults,
                  time.perf_counter() - t0, len(gateways))
    res.seams.append(f"{left_out:,} of {len(whole):,} city devices have no register map able to "
                     f"express their rating (DC chargers, large chillers and lines); the "
                     f"full-stack sample ({share:.0%} of the servable ones) is drawn from the rest")
    return res


def _temperature(scn: Scenario, call: GridCall) -> pd.Series:
    days = season_days(scn)
    weather = simulate_weather(scn, days, np.random.default_rng([scn.scenario.seed, 1]))
    span = [call.day - timedelta(days=k) for k in range(HISTORY_DAYS, -2, -1)]
    idx = interval_index(span, scn.scenario.timezone, scn.scenario.interval_minutes)
    return hourly_temperature(weather, idx)


async def _shape_loop(clock: HeldClock, by_name: dict[str, Any], served: dict[str, Any],
                      temp: pd.Series, scn: Scenario) -> None:
    """Apply the scenario behaviour to the served devices' physics at every interval start."""
    step = f"{scn.scenario.interval_minutes}min"
    last = None
    while True:
        ts = pd.Timestamp(clock.now()).floor(step)
        if ts != last:
            last = ts
            t = float(temp.asof(ts))
            for name, dev in by_name.items():
                behaviour.update(dev.physics, served[name], ts.hour, t)
        await asyncio.sleep(0.1)


async def _write_history(engine, fleet: Fleet, ids: dict[str, int], until,  # noqa: ANN001
                         temp: pd.Series, scn: Scenario) -> int:
    """Telemetry for the days before the run, from the same devices simulated in process (as if
    the daemon had polled them all along): one reading per device and interval."""
    from vpp.telemetry_store import Reading, write_readings

    minutes = scn.scenario.interval_minutes
    start = pd.Timestamp(until).tz_convert(scn.scenario.timezone).normalize() - pd.Timedelta(
        days=HISTORY_DAYS)
    plant = CityPlant(fleet.devices, start.to_pydatetime(), seed=scn.scenario.seed)
    n = 0
    ts = start
    rows: list[Reading] = []
    while ts + pd.Timedelta(minutes=minutes) <= pd.Timestamp(until):
        plant.shape(float(temp.asof(ts)))
        kw = await plant.advance(minutes)
        stamp = (ts + pd.Timedelta(minutes=minutes / 2)).to_pydatetime()
        for d, p in zip(fleet.devices, kw, strict=True):
            rows.append(Reading(ids[d.spec.name], stamp, float(p)))
        if len(rows) >= 50_000:
            n += await asyncio.to_thread(write_readings, engine, rows)
            rows = []
        ts += pd.Timedelta(minutes=minutes)
    if rows:
        n += await asyncio.to_thread(write_readings, engine, rows)
    return n


def _items(x: Any) -> list[dict[str, Any]]:
    return x["items"] if isinstance(x, dict) and "items" in x else list(x)


def _result(scn, fleet, call, city, decision, delivery, settlements, payouts, faults,  # noqa: ANN001
            wall: float, n_gateways: int) -> SeasonResult:
    from collections import Counter

    # only intervals the daemon could meter: a missing baseline or meter value is not zero
    ivs = [i for i in delivery.get("intervals", [])
           if i.get("baseline_kw") is not None and i.get("metered_kw") is not None]
    idx = pd.DatetimeIndex([pd.Timestamp(i["interval_start"]) for i in ivs]).tz_convert(
        scn.scenario.timezone) if ivs else pd.DatetimeIndex([])
    base = np.array([float(i["baseline_kw"]) for i in ivs])
    meter = np.array([float(i["metered_kw"]) for i in ivs])
    st = [x for x in _items(settlements) if x["event_id"] == decision["event_id"]]
    st = st[-1] if st else None
    pay = {str(p["owner_id"]): int(p["amount_fen"]) for p in _items(payouts)
           if p["event_id"] == decision["event_id"]}
    notes = [f"full stack: {len(fleet)} devices on {n_gateways} Modbus gateways, daemon at "
             f"accelerated clock; decision: {decision.get('status')} "
             f"{decision.get('reason') or ''}".strip()]
    if st is None:
        notes.append("no settlement was produced within the wait")
    n_all = len(delivery.get("intervals", []))
    if len(ivs) < n_all:
        notes.append(f"only {len(ivs)} of {n_all} intervals were metered by the daemon")
    ev = EventOutcome(
        call=call, declared_kw=float(decision.get("declared_kw") or 0.0),
        price_yuan_per_kwh=str(decision.get("price_yuan_per_kwh")), available_flex_kw=0.0,
        index=idx, baseline_kw=base, metered_kw=meter, band_lower_pct=50, band_upper_pct=120,
        revenue_fen=int(st["revenue_fen"]) if st else 0,
        penalty_fen=int(st["penalty_fen"]) if st else 0, fee_fen=int(st["fee_fen"]) if st else 0,
        payouts_fen=pay, baseline_error_pct=None, comfort_violations=0, soc_violations=0,
        faults=dict(Counter(f.mode for f in faults)), notes=notes,
        settled_response_kwh=float(st["response_kwh"]) if st else 0.0,
    )
    return SeasonResult(
        scenario=scn.name, scale="full-stack", system_peak_mw=scn.city.system_peak_mw,
        goal_pct=scn.city.dr_goal_pct, n_devices=len(fleet), n_owners=len(fleet.owners()),
        fleet_rated_mw={k: v / 1000 for k, v in fleet.rated_kw_by_segment().items()},
        fleet_count=fleet.count_by_segment(), days=[call.day], events=[ev],
        city_load_mw=city,
        fleet_load_mw=pd.Series(dtype=float, index=pd.DatetimeIndex([], tz=scn.scenario.timezone)),
        wall_seconds=wall,
        simulated_days=1,
    )


def _free_port_base(n: int) -> int:
    """A base port with ``n`` free consecutive ports on 127.0.0.1."""
    try:
        return free_port_block(n, stride=997)
    except OSError as exc:
        raise FullStackError(str(exc)) from None
