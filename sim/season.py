"""The season runner: a simulated city, its grid operator and the aggregator's production code,
on an accelerated clock.

For every simulated day (each season period with its history days before it) the runner moves
the city fleet (:class:`sim.plant.CityPlant`) one market interval at a time and meters it. Each
call of the simulated grid operator (:class:`sim.grid.GridOperator`) goes through the aggregator
as in production: at the invitation, per-owner baselines (``forecasting.baselines``), load
quantiles (``forecasting.models``) and the offer (``bidding.offer``); at the start, a dispatch
plan (``vpp.scheduler``) written to the devices through the adapter protocol, with devices
failing, leaving or under-delivering (:mod:`sim.grid`); after the event, the settlement
(``bidding.settlement``) on the revenue meters. :func:`run_demo_day` is the two-minute version.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from bidding.performance_record import SettledResult, compute_record
from bidding.programme import Product, Programme, load_programme
from sim import aggregator
from sim.grid import FaultyAdapter, GridCall, GridOperator, draw_faults
from sim.inprocess import InProcessAdapter
from sim.metering import MeterStore
from sim.metrics import NoDispatchTwin, settled_measures
from sim.physics.building import BuildingModel
from sim.plant import CityPlant
from sim.results import EventOutcome, Headline, SeasonResult

if TYPE_CHECKING:
    from sim.metrics import CallMeasures
from sim.scenarios.city import (
    city_load_mw,
    hourly_temperature,
    interval_index,
    season_days,
    simulate_weather,
)
from sim.scenarios.fleet import Fleet, generate_fleet
from sim.scenarios.scenario import Scenario, load_scenario
from sim.season_days import (  # noqa: F401  # count_blocks: re-exported for the benchmark
    blocks,
    count_blocks,
    device_history_days,
    select_days,
)
from vpp.config import Settings
from vpp.device_kinds import DeviceKind
from vpp.errors import DeviceError, ValidationError

Progress = Callable[[str, int, int], None]
VIOLATION_TAIL = 8  # comfort / SoC checked over the event and 2 h after
SOC_TOLERANCE_PCT = 0.5
WARM_UP_HOURS = 8
# 5 working days of baseline; too few for the forecaster: the offer is made from metered days,
# as the daemon would make it
DEMO_HISTORY_DAYS = 8
COMFORT_TOLERANCE_C = 0.1


@dataclass
class RunOptions:
    """What to simulate. ``days``: only the first N days of the season (history days are added
    before); ``max_devices``: a stratified sample of the fleet (tests, quick runs);
    ``event_days``: stop after this many event days (the demo uses 1)."""

    scale: str = "city"
    days: int | None = None
    max_devices: int | None = None
    event_days: int | None = None
    history_days: int | None = None
    periods: tuple[int, ...] | None = None  # only these season periods (0-based), e.g. (0,)
    skip_idle_days: bool = False  # simulate only the days some call's baseline/forecast needs
    blocks: tuple[int, ...] | None = None  # only these runs of consecutive days (0-based)
    capability_test: bool = True  # a capability-test call per season (sim.grid)


@dataclass
class _Pending:
    call: GridCall
    programme: Programme
    product: Product | None  # None: refused at intake
    declared_kw: float = 0.0
    uncapped_kw: float = 0.0
    twin: NoDispatchTwin | None = None
    owner_declared: dict[int, float] = field(default_factory=dict)
    price: Decimal = Decimal("0")
    flex_kw: float = 0.0
    plan: aggregator.CallPlan | None = None
    base_days: list[list[date]] = field(default_factory=list)
    plan_rows: dict[int, int] = field(default_factory=dict)
    adapters: dict[int, InProcessAdapter | FaultyAdapter] = field(default_factory=dict)
    faults: Counter = field(default_factory=Counter)
    written: int = 0
    failed: int = 0
    solve_s: float = 0.0
    plan_path: str = ""
    comfort: int = 0
    soc: int = 0
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    def accepted_product(self) -> Product:
        """The product the call was accepted under (only a refused call has none)."""
        assert self.product is not None, f"call {self.call.external_id} was refused at intake"
        return self.product


class SeasonRun:
    """One run: state shared by the steps of the timeline (plant, meters, pending events)."""

    def __init__(self, settings: Settings, scn: Scenario, fleet: Fleet, opts: RunOptions,
                 progress: Progress | None = None) -> None:
        self.settings = settings
        self.scn = scn
        self.fleet = fleet
        self.opts = opts
        self.progress = progress or (lambda stage, done, total: None)
        self.tz = scn.scenario.timezone
        self.step = scn.scenario.interval_minutes
        self.rng = np.random.default_rng([scn.scenario.seed, 7])
        owners = fleet.owners()
        self.owner_names = owners
        idx = {o: i for i, o in enumerate(owners)}
        self.owner_of = np.array([idx[d.owner] for d in fleet.devices])
        self.events: list[EventOutcome] = []
        #: the settled calls as the performance record reads them (the daemon's intake)
        self.record_results: list[SettledResult] = []
        self.event_days: set[date] = set()
        self.seams: list[str] = []
        self.dispatcher = aggregator.Dispatcher(settings.scheduler, self.step)
        self.forecasts = aggregator.Forecasts(settings.forecasting)
        self.issued: list[GridCall] = []  # calls received so far (their days are not history)
        self.device_owners = [d.owner for d in fleet.devices]

    # -- timeline -------------------------------------------------------------------------
    async def run(self) -> SeasonResult:
        try:
            return await self._run()
        finally:
            self.dispatcher.close()

    async def _run(self) -> SeasonResult:
        t0 = time.perf_counter()
        scn = self.scn
        all_days = season_days(scn)
        weather = simulate_weather(scn, all_days, np.random.default_rng([scn.scenario.seed, 1]))
        op = GridOperator(scn, weather)
        period_days = [d for d in all_days if any(a <= d <= b for a, b in scn.season.periods)]
        calls = op.season_calls(period_days, self.opts.capability_test)
        days, calls = select_days(scn, calls, self.opts)
        self.event_days = {c.day for c in calls}
        index = interval_index(days, self.tz, self.step)
        temp = hourly_temperature(weather, index)
        self.city = city = city_load_mw(scn, weather, index)
        self.calendar = op.calendar
        self.meter = MeterStore(index, self.owner_of, len(self.owner_names),
                                history_days=device_history_days(calls),
                                steps_per_day=1440 // self.step)
        by_issue: dict[pd.Timestamp, list[GridCall]] = {}
        for c in calls:
            by_issue.setdefault(pd.Timestamp(c.issued_at).floor(f"{self.step}min"), []).append(c)
        pending: dict[str, _Pending] = {}
        total = len(index)
        done = 0
        for block in blocks(days):
            start = pd.Timestamp(block[0], tz=self.tz)
            # a warm-up before the block so that thermal state, sessions and SoC are not at
            # their defaults when metering starts
            warm = start - pd.Timedelta(hours=WARM_UP_HOURS)
            self.plant = CityPlant(self.fleet.devices, warm.to_pydatetime(),
                                   seed=scn.scenario.seed)
            first = self.meter.position(start)
            n_warm = WARM_UP_HOURS * 60 // self.step
            for k in range(n_warm):
                slot = first + (1440 // self.step) - n_warm + k  # same clock time, first day
                self.plant.shape(float(temp.iloc[slot]))
                await self.plant.advance(self.step)
            for ts in index[(index >= start) & (index < start + pd.Timedelta(days=len(block)))]:
                pos = self.meter.position(ts)
                self.plant.shape(float(temp.iloc[pos]))
                for c in by_issue.get(ts, []):
                    p = await self._invite(c)
                    if p is not None:
                        pending[c.external_id] = p
                for p in list(pending.values()):
                    await self._dispatch_step(p, ts)
                kw = await self.plant.advance(self.step)
                self.meter.record(pos, kw, self.plant.site_kw)
                for p in pending.values():
                    if p.twin is not None:
                        await p.twin.step(float(temp.iloc[pos]), self.step)
                for p in list(pending.values()):
                    self._observe(p, ts)
                    if ts + pd.Timedelta(minutes=self.step) == pd.Timestamp(p.call.end) + pd.Timedelta(
                            minutes=self.step * VIOLATION_TAIL):
                        self._settle(p, float(city[p.call.start:p.call.end].mean()))
                        del pending[p.call.external_id]
                done += 1
                if done % 96 == 0:
                    self.progress(f"{ts:%Y-%m-%d}", done, total)
        for p in pending.values():  # events whose tail ran past the last simulated day
            self._settle(p, float(city[p.call.start:p.call.end].mean()))
        self.progress("done", total, total)
        rated = {k: v / 1000 for k, v in self.fleet.rated_kw_by_segment().items()}
        return SeasonResult(
            scenario=scn.name, scale=self.opts.scale, system_peak_mw=scn.city.system_peak_mw,
            goal_pct=scn.city.dr_goal_pct, n_devices=len(self.fleet),
            n_owners=len(self.owner_names), fleet_rated_mw=rated,
            fleet_count=self.fleet.count_by_segment(), days=days, events=self.events,
            city_load_mw=city, fleet_load_mw=self.meter.fleet_series() / 1000,
            wall_seconds=time.perf_counter() - t0, simulated_days=len(days), seams=self.seams,
        )

    # -- invitation: baselines, forecast, offer ---------------------------------------------
    async def _invite(self, call: GridCall) -> _Pending | None:
        s = self.settings
        self.issued.append(call)
        programme = load_programme(self.scn.scenario.programme, s.bidding.programmes_dir,
                                   call.day)
        p = _Pending(call, programme, None)
        try:
            product = programme.check_event(call.event_type, call.direction, call.start,
                                            call.end, notified_at=call.issued_at)
        except ValidationError as exc:
            p.skipped = f"refused: {exc.message}"
            self._skip(p)
            return None
        p.product = product
        record = compute_record(self.record_results, [], programme.performance,
                                ZoneInfo(self.tz), call.issued_at)
        if record.refuses_bids:  # as the daemon's intake refuses (vpp.performance.bid_refusal)
            p.skipped = f"no bid: {record.reason}"
            self._skip(p)
            return None
        start, end = pd.Timestamp(call.start), pd.Timestamp(call.end)
        issue = pd.Timestamp(call.issued_at).floor(f"{self.step}min")
        plan_spec = product.baseline.model_copy(update={"day_of_adjustment": False})
        past_events = [d for d in self.event_days if d < call.day]
        base = aggregator.owner_baselines(self.meter, start, end, plan_spec, past_events,
                                          interval_minutes=self.step,
                                          calendar=self.calendar.workdays)
        if base.failed and len(base.failed) == self.meter.n_owners:  # "no owner can offer" hides why
            p.skipped = f"no baseline: {next(iter(base.failed.values()))}"
            self._skip(p)
            return None
        p.base_days = base.days_used
        past = {c.day for c in self.issued if c is not call}
        devices = aggregator.bid_devices(self.fleet.devices, self.plant.states, self.owner_of)
        try:
            offer = aggregator.bid_call(s, call, programme, product, self.meter, devices,
                                        self.forecasts, issue, past, self.calendar.workdays)
        except ValidationError as exc:
            p.skipped = f"no offer: {exc.message}"
            self._skip(p)
            return None
        p.declared_kw = offer.declared_kw  # capped at the request by the offer rule
        p.uncapped_kw = offer.capped_from_kw or offer.declared_kw  # before that cap
        p.owner_declared = offer.owner_declared_kw()
        p.price = offer.price_yuan_per_kwh
        if offer.reason:
            p.notes.append(f"{offer.rule} ({offer.reason})")
        if base.failed:
            p.notes.append(f"{len(base.failed)} owner(s) without a programme baseline "
                           "(not settled)")
        if offer.declared_kw < call.requested_kw:
            p.notes.append(f"offered {offer.declared_kw / 1000:.1f} MW of the "
                           f"{call.requested_kw / 1000:.1f} MW requested")
        return p

    def _skip(self, p: _Pending) -> None:
        c = p.call
        self.events.append(EventOutcome(
            call=c, declared_kw=0.0, price_yuan_per_kwh="0", available_flex_kw=0.0,
            index=pd.DatetimeIndex([]), baseline_kw=np.zeros(0), metered_kw=np.zeros(0),
            band_lower_pct=float(p.programme.band.lower_pct),
            band_upper_pct=float(p.programme.band.upper_pct), revenue_fen=0, penalty_fen=0,
            fee_fen=0, payouts_fen={}, baseline_error_pct=None, comfort_violations=0,
            soc_violations=0, notes=[p.skipped or "skipped"],
        ))

    # -- dispatch -------------------------------------------------------------------------
    async def _dispatch_step(self, p: _Pending, ts: pd.Timestamp) -> None:
        start, end = pd.Timestamp(p.call.start), pd.Timestamp(p.call.end)
        if ts == start:
            await self._plan(p, start, end)
        if p.plan is None or not start <= ts < end:
            if ts == end and p.plan is not None:
                for a in p.adapters.values():
                    try:
                        await a.release()
                    except DeviceError:
                        pass
            return
        t = int((ts - start) / pd.Timedelta(minutes=self.step))
        plan = p.plan
        for i, row in p.plan_rows.items():
            a = p.adapters[i]
            try:
                res = await a.apply_setpoint(float(plan.setpoint_kw[row, t]))
            except DeviceError:
                p.failed += 1
                continue
            if res.error:
                p.failed += 1
            else:
                p.written += 1

    async def _plan(self, p: _Pending, start: pd.Timestamp, end: pd.Timestamp) -> None:
        call = p.call
        n_ev = len(aggregator_index(start, end, self.step))
        # the daemon's horizon: the call and [scheduler] event_tail_minutes after it
        horizon = n_ev + self.settings.scheduler.tail_intervals(self.step)
        faults = draw_faults(self.scn, call, len(self.fleet), self.rng, self.step)
        fault_of = {f.device_index: f for f in faults}
        p.faults = Counter(f.mode for f in faults)
        states = []
        for i, a in enumerate(self.plant.adapters):
            inner: InProcessAdapter | FaultyAdapter = a
            if i in fault_of:
                inner = FaultyAdapter(a, fault_of[i], self.plant.now)
            p.adapters[i] = inner
            states.append(self.plant.states[i])
        p.flex_kw = float(sum(s.flex_down_kw if call.sign > 0 else s.flex_up_kw  # the call's way
                              for s in states if s is not None and s.available))
        # only the owners in the offer are dispatched (as the daemon does): settlement counts
        # only their response, and an owner who declared nothing is not asked to shed
        rows = aggregator.participant_rows(self.owner_of, p.owner_declared,
                                           [st is not None for st in states])
        if not len(rows):
            p.notes.append("no dispatch plan: no owner declared a share")
            p.plan = None
            return
        p.twin = NoDispatchTwin(self.plant, rows, self.owner_of, len(self.owner_names))
        devices = aggregator.scheduler_devices(
            [self.fleet.devices[i] for i in rows], [states[i] for i in rows],
            [self.plant.adapters[i].physics for i in rows], horizon, self.step)
        states_kw = np.array([states[i].power_kw if states[i] is not None else 0.0 for i in rows])
        base = aggregator.plan_baselines(self.meter, rows, p.base_days, start, horizon,
                                         self.step, states_kw)
        idx = aggregator_index(start, start + pd.Timedelta(minutes=self.step * horizon), self.step)
        price = p.programme.tariff.price_series(idx).to_numpy(dtype=float)
        t0 = time.perf_counter()
        try:
            plan = self.dispatcher.plan(devices, [self.device_owners[i] for i in rows], base,
                                        price, p.declared_kw, (0, n_ev),
                                        float(p.programme.band.upper_pct), call.direction)
        except ValidationError as exc:
            p.notes.append(f"no dispatch plan: {exc.message}")
            p.plan = None
            return
        except Exception as exc:  # noqa: BLE001 - one failed solve must not end the season
            p.notes.append(f"scheduler failed: {type(exc).__name__}: {exc}")
            p.plan = None
            return
        p.solve_s = time.perf_counter() - t0
        p.plan = plan
        p.plan_path = (f"partitioned on Dask: {plan.partitions} partitions, {plan.qp_devices} QP "
                       f"devices, {plan.iterations} ADMM iterations" if plan.path == "partitioned"
                       else f"scheduler (cached service, {plan.qp_devices} QP devices after "
                            f"aggregation, build {plan.builds})")
        p.plan_rows = {int(rows[r]): int(r) for r in plan.moved(devices, base, n_ev)}
        p.notes.extend(plan.notes)
        if plan.status not in ("solved", "optimal"):
            p.notes.append(f"scheduler status {plan.status}")
        short = float(np.nanmax(plan.shortfall_kw[:n_ev])) if plan.shortfall_kw.size else 0.0
        if short > 1:
            p.notes.append(f"plan short of the target by up to {short / 1000:.1f} MW")

    def _observe(self, p: _Pending, ts: pd.Timestamp) -> None:
        start = pd.Timestamp(p.call.start)
        tail = pd.Timestamp(p.call.end) + pd.Timedelta(minutes=self.step * VIOLATION_TAIL)
        if not start <= ts < tail:
            return
        for d, st, a in zip(self.fleet.devices, self.plant.states, self.plant.adapters,
                            strict=True):
            if st is None:
                continue
            prm = d.spec.params
            ph = a.physics  # a building's: the band in force, cooling (enrolled) or heating
            if isinstance(ph, BuildingModel) and st.indoor_temp_c is not None:
                if ph.mode == "off":
                    continue  # no electric HVAC (heated by other means): not ours to keep
                hi = float(ph.comfort_max_c) + COMFORT_TOLERANCE_C
                lo = float(ph.comfort_min_c) - COMFORT_TOLERANCE_C
                is_open = (int(d.behaviour.get("open_hour", 0)) <= ts.hour
                           < int(d.behaviour.get("close_hour", 24)))
                if not lo <= st.indoor_temp_c <= hi and is_open:
                    p.comfort += 1
            elif d.kind is DeviceKind.BATTERY and st.soc_pct is not None:
                lo = float(prm.get("soc_min_pct", 10.0)) - SOC_TOLERANCE_PCT
                hi = float(prm.get("soc_max_pct", 95.0)) + SOC_TOLERANCE_PCT
                if not lo <= st.soc_pct <= hi:
                    p.soc += 1

    # -- settlement -----------------------------------------------------------------------
    def _settle(self, p: _Pending, city_mw: float) -> None:
        call = p.call
        start, end = pd.Timestamp(call.start), pd.Timestamp(call.end)
        past = [d for d in self.event_days if d < call.day]
        base = aggregator.owner_baselines(self.meter, start, end, p.accepted_product().baseline, past,
                                          interval_minutes=self.step,
                                          calendar=self.calendar.workdays)
        metered = self.meter.window(start, end)
        idx = aggregator_index(start, end, self.step)
        try:
            # settle() keeps the owners with a declared share and a baseline
            res, rows = aggregator.settle(p.programme, idx, base.kw, metered, p.owner_declared,
                                          p.price, self.settings.bidding.aggregator_fee_pct,
                                          self.step, self.meter.site_window(start, end),
                                          product=p.accepted_product())
        except ValidationError as exc:
            p.notes.append(f"not settled: {exc.message}")
            self._skip_settled(p, city_mw)
            return
        proxy = self._proxy_error(p, start, end, past)
        self.record_results.append(SettledResult(
            len(self.record_results) + 1, call.start, res.performance_ratio,
            p.programme.band.lower_pct / 100))
        payouts = {self.owner_names[o.owner_id]: o.payout_fen for o in res.owners}
        self.events.append(EventOutcome(
            call=call, declared_kw=p.declared_kw, price_yuan_per_kwh=str(p.price),
            available_flex_kw=p.flex_kw, index=idx, baseline_kw=base.kw[rows].sum(axis=0),
            metered_kw=metered[rows].sum(axis=0), band_lower_pct=float(p.programme.band.lower_pct),
            band_upper_pct=float(p.programme.band.upper_pct), revenue_fen=res.revenue_fen,
            penalty_fen=res.penalty_fen, fee_fen=res.fee_fen, payouts_fen=payouts,
            baseline_error_pct=proxy, comfort_violations=p.comfort, soc_violations=p.soc,
            faults=dict(p.faults), setpoints_written=p.written, setpoints_failed=p.failed,
            solve_seconds=p.solve_s, system_load_mw=city_mw, notes=p.notes,
            settled_response_kwh=res.response_kwh, plan_path=p.plan_path,
            season=self.calendar.season_of(call.day), measures=self._measures(
                p, rows, base.kw[rows].sum(axis=0), res.paid_kwh),
            capacity=aggregator.event_capacity(len(self.events) + 1, call.direction, res)))

    def _measures(self, p: _Pending, rows: list[int], baseline_kw: np.ndarray,
                  paid_kwh: float) -> CallMeasures | None:
        if p.twin is None:
            return None
        return settled_measures(p.twin, self.meter, self.city, p.call, rows, baseline_kw,
                                uncapped_offer_kw=p.uncapped_kw, paid_kwh=paid_kwh,
                                tail=VIOLATION_TAIL, interval_minutes=self.step)

    def _skip_settled(self, p: _Pending, city_mw: float) -> None:
        p.skipped = "; ".join(p.notes)
        self._skip(p)

    def _proxy_error(self, p: _Pending, start: pd.Timestamp, end: pd.Timestamp,
                     past: list[date]) -> float | None:
        d = p.call.day - timedelta(days=1)
        for _ in range(10):
            if self.calendar.is_workday(d) and d not in self.event_days:
                off = pd.Timedelta(days=(p.call.day - d).days)
                return aggregator.fleet_baseline_error_pct(
                    self.meter, start - off, end - off, p.accepted_product().baseline, past,
                    self.step, self.calendar.workdays)
            d -= timedelta(days=1)
        return None


def aggregator_index(start: pd.Timestamp, end: pd.Timestamp, step: int) -> pd.DatetimeIndex:
    return pd.date_range(start, end, freq=f"{step}min", inclusive="left")


async def run_season(settings: Settings, scenario: str | Path | Scenario,
                     opts: RunOptions | None = None,
                     progress: Progress | None = None) -> SeasonResult:
    """Simulate the scenario's season (or the part ``opts`` selects) at city scale."""
    scn = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    opts = opts or RunOptions()
    fleet = generate_fleet(scn)
    if opts.max_devices is not None:
        fleet = fleet.sample(opts.max_devices, seed=scn.scenario.seed)
    result = await SeasonRun(settings, scn, fleet, opts, progress).run()
    return aggregator.with_capacity(result, settings.bidding)  # the months' capacity payments


def run_demo_day(settings: Settings, out_dir: Path, scenario: str = "zhuzhou-2025",
                 progress: Progress | None = None) -> Headline:
    """One event day of the scenario (the first call, with the history its baselines need), at
    city scale; writes the report to ``out_dir`` and returns the headline."""
    import asyncio

    from sim.report import write_report

    opts = RunOptions(scale="city", event_days=1, history_days=DEMO_HISTORY_DAYS,
                      capability_test=False)
    result = asyncio.run(run_season(settings, scenario, opts, progress))
    write_report(result, out_dir)
    return result.headline()
