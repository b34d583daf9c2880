"""Issue 17's "Done when": one call and one fleet state through the daemon's path and through the
season simulator's path give the same participants, the same offer and the same plan.

The fleet is a sample of the Zhuzhou scenario's (the simulator's own device specs), enrolled in
a real SQLite database through :func:`vpp.fleet.add_gateway`, with the same metered history
written as telemetry (daemon) and recorded in a :class:`sim.metering.MeterStore` (simulator).
The daemon's path is the real intake behind the real aiohttp server (POST /grid/calls ->
:func:`bidding.workflow.bid_event`) and its planner's participant rule; the simulator's is
:func:`sim.aggregator.bid_call` and :func:`sim.aggregator.participant_rows`, what
:class:`sim.season.SeasonRun` calls. Both reach :func:`bidding.core.make_offer`,
:func:`forecasting.owners.forecast_sites` and :func:`bidding.participants.participants`.
The plan: the daemon planner's first plan of the event, stored as setpoint rows, against the
season's dispatch (:func:`sim.aggregator.scheduler_devices`, :func:`sim.aggregator.
plan_baselines`, :class:`sim.aggregator.Dispatcher`); both reach
:func:`forecasting.device_baselines.device_plan_baselines`,
:func:`vpp.scheduler.device_view.scheduler_device` and
:class:`vpp.scheduler.call_solver.CallSolver`. No car is plugged in (the daemon knows of a car
only from its owner's preferences, the simulator from the cars it models).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlmodel import select

from bidding.programme import load_programme
from device_adapters.protocol import DeviceState
from forecasting.calendars import make_calendar
from sim import aggregator
from sim.grid import GridCall
from sim.metering import MeterStore
from sim.physics.ev_charger import EvChargerModel
from sim.physics.factory import make_physics
from sim.scenarios.fleet import generate_fleet
from sim.scenarios.scenario import load_scenario
from tests.vpp.api.conftest import Api
from tests.vpp.daemon.harness import PROGRAMME, auth, call_now
from vpp import fleet as vpp_fleet
from vpp.bids import declared_by_owner, owner_shares
from vpp.db import session_scope
from vpp.device_kinds import DeviceKind
from vpp.models import Bid, Device, Setpoint
from vpp.poller import DeviceStats
from vpp.telemetry_store import Reading, write_readings

ROOT = Path(__file__).resolve().parents[3]
STEP = timedelta(minutes=15)
#: a packaged register profile per kind (the scenario names vendors' profiles not packaged;
#: the offer does not read the profile)
PROFILE = {DeviceKind.COMMERCIAL_BUILDING: "coolmaster-vrf",
           DeviceKind.INDUSTRIAL_LOAD: "industrial-plc", DeviceKind.EV_CHARGER: "keba-p30",
           DeviceKind.BATTERY: "huawei-luna2000"}


def _sample_fleet():  # type: ignore[no-untyped-def]
    """About 40 devices of the scenario, all kinds, a dozen owners."""
    scn = load_scenario(ROOT / "config/scenarios/zhuzhou-2025.toml")
    return generate_fleet(scn).sample(40, seed=3)


def _enrol(api: Api, devices) -> tuple[list[int], dict[str, int]]:  # type: ignore[no-untyped-def]
    """Each owner of the sample enrolled with its devices (active); returns the device ids in
    fleet order and the database id of each owner name."""
    ids: dict[int, int] = {}
    owner_id: dict[str, int] = {}
    with session_scope(api.engine) as s:
        by_owner: dict[str, list[int]] = {}
        for i, d in enumerate(devices):
            by_owner.setdefault(d.owner, []).append(i)
        for k, (name, rows) in enumerate(sorted(by_owner.items())):
            owner = vpp_fleet.add_owner(s, name)
            owner_id[name] = int(owner.id or 0)
            specs = [{**devices[i].spec.model_dump(mode="json"), "name": f"d{i}", "unit_id": u + 1,
                      "profile": PROFILE[devices[i].kind]}
                     for u, i in enumerate(rows)]
            gw = vpp_fleet.add_gateway(s, owner, f"site-{k}", {
                "host": f"10.9.{k // 200}.{k % 200 + 1}", "port": 502, "devices": specs})
            for i, dev in zip(rows, gw.devices, strict=True):
                dev.status = "active"
                ids[i] = int(dev.id or 0)
    return [ids[i] for i in range(len(devices))], owner_id


def _history(devices, start: datetime, end: datetime) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(intervals x devices) kW: a daily shape at about half rated power with day-to-day noise
    (batteries idle), so that the quantiles have a spread."""
    rng = np.random.default_rng(11)
    n = int((end - start) / STEP)
    hours = np.array([(start + k * STEP).hour for k in range(n)])
    shape = 0.35 + 0.3 * np.sin(np.pi * np.clip(hours - 7, 0, 14) / 14)
    rated = np.array([d.spec.rated_power_kw for d in devices])
    kw = shape[:, None] * rated[None, :] * rng.uniform(0.8, 1.2, size=(n, len(devices)))
    battery = np.array([d.kind is DeviceKind.BATTERY for d in devices])
    kw[:, battery] = 0.0
    return np.round(kw, 3)


@pytest.mark.parametrize(("days", "rule", "quantiles"), [
    (0, "no history: ", None),  # bidding.fallback's offer
    (5, "band newsvendor", "empirical (fallback)"),  # too short to forecast: metered days
    (8, "band newsvendor", "forecast"),  # the forecaster's (seasonal naive: 7 days)
], ids=["no-history", "history", "forecast"])
async def test_daemon_and_simulator_make_the_same_offer_and_participants(
        api: Api, days: int, rule: str, quantiles: str | None) -> None:
    settings = api.parts.settings
    settings.forecasting.model = "seasonal_naive"
    fleet = _sample_fleet()
    devices = fleet.devices
    db_ids, owner_db = _enrol(api, devices)
    call = call_now(f"one-core-{days}", 50_000.0, minutes=60)
    start = datetime.fromisoformat(call["start"])
    end = datetime.fromisoformat(call["end"])
    hist_start = start - timedelta(days=days)
    kw = _history(devices, hist_start, start)
    write_readings(api.engine, [Reading(db_ids[i], hist_start + k * STEP, float(kw[k, i]))
                                for k in range(kw.shape[0]) for i in range(len(devices))])
    # one fleet state: the poller's latest reading of each device (batteries half charged),
    # the last device found offline
    states: list[DeviceState] = []
    online: list[bool] = []
    for i, d in enumerate(devices):
        soc = 50.0 if d.kind is DeviceKind.BATTERY else None
        # the last metered interval (without history: about half rated, batteries idle)
        power_kw = float(kw[-1, i]) if days else (
            0.0 if d.kind is DeviceKind.BATTERY else 0.5 * d.spec.rated_power_kw)
        st = DeviceState(db_ids[i], start, power_kw, None, soc, None, True, 0.0, 0.0)
        online.append(i != len(devices) - 1)
        api.parts.fleet.poller.stats[db_ids[i]] = DeviceStats(db_ids[i], online=online[i],
                                                              last_state=st)
        states.append(st)

    # the daemon: its forecast refreshed from the telemetry, then the real intake behind the API
    await api.parts.forecasts.step()
    assert (api.parts.forecasts.latest is not None) == (quantiles == "forecast")
    async with api.http.post(api.url + "/api/v1/grid/calls", json=call,
                             headers=auth(api.tokens.grid)) as r:
        decision = await r.json()
        assert r.status == 201, decision
    assert decision["accepted"], decision
    with session_scope(api.engine) as s:
        bid = s.exec(select(Bid).where(Bid.event_id == decision["event_id"])).one()
        daemon_owners = {sh.owner_id: sh.declared_kw for sh in owner_shares(s, int(bid.id or 0))}
        planned = api.parts.control.planner._devices(s, set(), declared_by_owner(s, bid),
                                                     start=start)
        daemon_devices = sorted(int(d.id or 0) for d in planned)
        assert all(isinstance(d, Device) for d in planned)

    # the simulator: its meters, its fleet, its call
    owners = fleet.owners()
    owner_of = np.array([owners.index(d.owner) for d in devices])
    tz = settings.service.timezone
    index = pd.date_range(hist_start - timedelta(days=1), end, freq=STEP,
                          inclusive="left").tz_convert(tz)  # the season's meters are local
    meter = MeterStore(index, owner_of, len(owners))
    for k in range(kw.shape[0]):
        meter.record(meter.position(pd.Timestamp(hist_start + k * STEP)), kw[k])
    programme = load_programme(PROGRAMME, settings.bidding.programmes_dir, start)
    product = programme.check_event("real_time", "peak_shaving", start, end)
    grid_call = GridCall(call["external_id"], "real_time", "peak_shaving", PROGRAMME, start,
                         start, end, call["requested_kw"], "test")
    offer = aggregator.bid_call(
        settings, grid_call, programme, product, meter,
        aggregator.bid_devices(devices, states, owner_of), aggregator.Forecasts(
            settings.forecasting), pd.Timestamp(start), set(),
        make_calendar(settings.forecasting.calendar))
    rows = aggregator.participant_rows(owner_of, offer.owner_declared_kw(), online)
    sim_owners = {owner_db[owners[o]]: kw_ for o, kw_ in offer.owner_declared_kw().items()}

    assert offer.declared_kw > 0 and offer.rule.startswith(rule)
    if quantiles is not None:
        assert {v["quantiles"] for k, v in offer.extra["sources"].items()
                if k.isdigit() and "quantiles" in v} == {quantiles}
    # to 0.01 kW ("to the kW" in the issue): the two paths fit the forecaster each, and
    # LightGBM's threaded fit may differ in the last bits, which the offer's rounding to
    # 0.001 kW then shows (seen once: 454.116 against 454.117)
    assert bid.declared_kw == pytest.approx(offer.declared_kw, abs=0.01)
    assert bid.detail["rule"] == offer.rule
    assert daemon_owners == pytest.approx(sim_owners, abs=0.01)
    assert daemon_devices == sorted(db_ids[int(i)] for i in rows)
    assert len(daemon_devices) < len(devices)  # the offline device, owners who declared 0

    # the plan: the daemon's first plan of the event (setpoint rows), the season's dispatch
    outcome = await api.parts.control.planner.plan(decision["event_id"], "initial")
    with session_scope(api.engine) as s:
        stored = {(sp.device_id, sp.interval_start.astimezone(UTC)): sp.setpoint_kw
                  for sp in s.exec(select(Setpoint).where(Setpoint.plan_id == outcome.plan_id))}
    n_ev = int((end - start) / STEP)
    horizon = n_ev + settings.scheduler.tail_intervals(15)
    plan, base = _simulator_plan(settings, programme, product, meter, devices, states, rows,
                                 pd.Timestamp(start).tz_convert(tz), n_ev, horizon,
                                 offer.declared_kw)
    daemon = np.array([[stored[(db_ids[int(i)], start + k * STEP)] for k in range(horizon)]
                       for i in rows])
    np.testing.assert_allclose(daemon, plan.setpoint_kw, atol=0.5)  # to the kW
    # a plan that delivers: against what each device draws undispatched (its baseline within
    # its limits)
    lo = np.array([devices[int(i)].spec.min_setpoint_kw for i in rows])[:, None]
    hi = np.array([devices[int(i)].spec.max_setpoint_kw for i in rows])[:, None]
    shed_kw = (np.clip(base[:, :n_ev], lo, hi) - daemon[:, :n_ev]).sum(axis=0)
    assert shed_kw.min() > 0.5 * offer.declared_kw, shed_kw


def _simulator_plan(settings, programme, product, meter, devices, states, rows,  # type: ignore[no-untyped-def]
                    start: pd.Timestamp, n_ev: int, horizon: int, declared_kw: float):
    """The season's plan (:meth:`sim.season.SeasonRun._plan`): owners' baseline days as at
    the invitation, the devices' plan baselines, their scheduler view, the dispatcher."""
    plan_spec = product.baseline.model_copy(update={"day_of_adjustment": False})
    end = start + n_ev * STEP
    days = aggregator.owner_baselines(meter, start, end, plan_spec, [], interval_minutes=15,
                                      calendar=make_calendar(settings.forecasting.calendar))
    physics = []
    for d in devices:
        ph = make_physics(d.spec.kind, d.spec.rated_power_kw, dict(d.spec.params))
        if isinstance(ph, EvChargerModel):
            ph.sessions = [None] * len(ph.sessions)  # no car plugged in
        physics.append(ph)
    sched = aggregator.scheduler_devices([devices[i] for i in rows], [states[i] for i in rows],
                                         [physics[i] for i in rows], horizon, 15)
    last_kw = np.array([states[i].power_kw for i in rows])
    base = aggregator.plan_baselines(meter, rows, days.days_used, start, horizon, 15, last_kw)
    idx = pd.date_range(start, periods=horizon, freq=STEP)
    price = programme.tariff.price_series(idx).to_numpy(dtype=float)
    dispatcher = aggregator.Dispatcher(settings.scheduler, 15)
    try:
        return dispatcher.plan(sched, [devices[i].owner for i in rows], base, price, declared_kw,
                               (0, n_ev), float(programme.band.upper_pct),
                               "peak_shaving"), base
    finally:
        dispatcher.close()
