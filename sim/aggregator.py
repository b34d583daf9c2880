"""The aggregator's side of one simulated event, through the production modules only.

Each function here is glue: it shapes the simulation's arrays into the inputs of
:mod:`forecasting` (baselines; the daemon's forecaster, :mod:`forecasting.owners`),
:mod:`bidding` (the offer core :func:`bidding.core.make_offer`, who takes part, settlement) and
:mod:`vpp.scheduler` (dispatch), and returns their answers. No baseline, forecast, offer,
participation, schedule or settlement rule is implemented here.

Owners are rows ``0..n_owners-1`` (their index doubles as the owner id given to settlement).
Powers in kW; prices as exact ``Decimal`` yuan/kWh.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from bidding.bid_inputs import (
    BID_HISTORY_DAYS,
    BidDevice,
    BidInput,
    NoHistoryPolicy,
    Offer,
    owner_input,
    owners_of,
)
from bidding.capacity import EventCapacity, month_bounds, programme_month_payment
from bidding.capacity import event_capacity as capacity_inputs
from bidding.core import bid_price, direction_sign, make_offer
from bidding.participants import DeviceStanding, participants
from bidding.programme import Product, Programme, load_programme, read_programme_file
from bidding.settlement import EventSettlement, check_balance, settle_event
from forecasting.baselines import BaselineSpec, compute_baseline
from forecasting.calendars import DayCalendar
from forecasting.device_baselines import OwnerDays, device_plan_baselines
from forecasting.owners import MAX_READ_DAYS, OwnerForecast, forecast_sites, owner_forecast
from sim.metering import MeterStore
from sim.results import SeasonResult
from vpp.config import BiddingSettings, SchedulerSettings
from vpp.device_kinds import DeviceKind, EvChargerParams, parse_params
from vpp.errors import ValidationError
from vpp.scheduler.call_solver import CallRequest, CallSolver
from vpp.scheduler.device_view import EV_REACH_SHARE, scheduler_device
from vpp.scheduler.inputs import EvSession, FleetDevice, Params
from vpp.scheduler.partition import PartitionedScheduler


@dataclass
class OwnerBaselines:
    """Per-owner baseline over a window (owners x intervals; NaN rows: no baseline possible)."""

    kw: np.ndarray
    days_used: list[list[date]]
    failed: dict[int, str] = field(default_factory=dict)


def owner_baselines(meter: MeterStore, start: pd.Timestamp, end: pd.Timestamp,
                    spec: BaselineSpec, event_days: Iterable[date],
                    owners: Sequence[int] | None = None, *,
                    interval_minutes: int, calendar: DayCalendar) -> OwnerBaselines:
    """The programme's baseline for each owner (``forecasting.baselines.compute_baseline``) from
    the meter data recorded so far; ``calendar``: the working days (the season's calendar)."""
    owners = range(meter.n_owners) if owners is None else owners
    n_t = int((end - start) / pd.Timedelta(minutes=interval_minutes))
    out = np.full((meter.n_owners, n_t), np.nan)
    days: list[list[date]] = [[] for _ in range(meter.n_owners)]
    failed: dict[int, str] = {}
    ev = list(event_days)
    full = meter.fleet_series()  # only for its index length
    stop = len(full)
    for o in owners:
        series = pd.Series(meter.owner_kw[o, :stop], index=full.index)
        try:
            res = compute_baseline(series, start.to_pydatetime(), end.to_pydatetime(), spec,
                                   event_days=ev, interval_minutes=interval_minutes,
                                   calendar=calendar)
        except ValidationError as exc:
            failed[o] = exc.message
            continue
        out[o] = res.baseline_kw.to_numpy()
        days[o] = res.days_used
    return OwnerBaselines(out, days, failed)


def plan_baselines(meter: MeterStore, rows: np.ndarray, days_used: Sequence[Sequence[date]],
                   start: pd.Timestamp, n: int, interval_minutes: int,
                   last_kw: np.ndarray) -> np.ndarray:
    """Fleet ``rows``' expected load (kW, rows x ``n`` intervals from ``start``) by the daemon
    planner's rule (:func:`forecasting.device_baselines.device_plan_baselines`): each device's
    mean over its owner's baseline days (``days_used[owner]``), else ``last_kw`` (its last
    reading)."""
    rows = np.asarray(rows, dtype=np.int64)
    window = pd.date_range(start, periods=n, freq=f"{interval_minutes}min")
    owner_of = meter.owner_of_device[rows]
    days = OwnerDays({int(o): list(days_used[o]) for o in set(owner_of.tolist())
                      if days_used[o]}, {})

    def load_at(sub: np.ndarray, index: pd.DatetimeIndex) -> np.ndarray:
        return meter.device_load_at(rows[sub], index)

    return device_plan_baselines(owner_of, days, load_at, window, "programme", last_kw,
                                 ["last_reading"] * len(rows)).kw


def fleet_baseline_error_pct(meter: MeterStore, proxy_start: pd.Timestamp,
                             proxy_end: pd.Timestamp, spec: BaselineSpec,
                             event_days: Iterable[date],
                             interval_minutes: int, calendar: DayCalendar) -> float | None:
    """The baseline method's error on a non-event day (a proxy event): (baseline - actual) /
    actual over the window, in %, at the fleet level. None when the day cannot be baselined."""
    series = meter.fleet_series(proxy_end)
    try:
        res = compute_baseline(series, proxy_start.to_pydatetime(), proxy_end.to_pydatetime(),
                               spec, event_days=list(event_days),
                               interval_minutes=interval_minutes, calendar=calendar)
    except ValidationError:
        return None
    actual = series.loc[proxy_start:proxy_end - pd.Timedelta(minutes=interval_minutes)]
    if len(actual) != len(res.baseline_kw) or actual.sum() == 0:
        return None
    return float(100 * (res.baseline_kw.sum() - actual.sum()) / actual.sum())


@dataclass
class Forecasts:
    """The production forecaster (:mod:`forecasting.owners`, as the daemon's
    :class:`vpp.daemon.forecasts.ForecastRefresher` runs it) over the simulated meters, each
    owner a site. The model is kept between calls and re-fitted every
    ``[forecasting] retrain_every_days`` (or when the owners forecast change), as the daemon
    does."""

    settings: object  # vpp.config.ForecastSettings
    forecaster: object | None = None
    fitted_sites: tuple[int, ...] = ()
    fitted_at: pd.Timestamp | None = None

    def owner_forecast(self, meter: MeterStore, issue: pd.Timestamp) -> OwnerForecast | None:
        """Owners' quantiles forecast from the meter data before ``issue`` (None: not enough
        history for the configured model)."""
        cfg = self.settings
        step = pd.Timedelta(minutes=cfg.interval_minutes)  # type: ignore[attr-defined]
        stop = meter.position(issue)
        days = min(cfg.train_days, MAX_READ_DAYS)  # type: ignore[attr-defined]
        grid = pd.date_range(issue - pd.Timedelta(days=days), issue, freq=step, inclusive="left")
        raw = pd.DataFrame(meter.owner_kw[:, :stop].T, index=meter.index[:stop],
                           columns=range(meter.n_owners)).reindex(grid)
        due = (self.fitted_at is None or issue - self.fitted_at
               >= pd.Timedelta(days=cfg.retrain_every_days))  # type: ignore[attr-defined]
        run = forecast_sites(cfg, raw, None if due else self.forecaster,  # type: ignore[arg-type]
                             fitted_sites=self.fitted_sites)
        if run.forecast is None:
            return None
        if run.forecaster is not self.forecaster:
            self.forecaster, self.fitted_sites, self.fitted_at = run.forecaster, run.sites, issue
        return owner_forecast(run.forecast, {o: o for o in range(meter.n_owners)})


def bid_devices(fleet_devices: Sequence, states: Sequence,
                owner_of: Sequence[int] | np.ndarray) -> list[BidDevice]:
    """The fleet as the offer sees it (row ``i`` is device id ``i``), batteries at the state of
    charge the plant reports now (the daemon's latest polled one)."""
    out = []
    for i, (d, st) in enumerate(zip(fleet_devices, states, strict=True)):
        spec = d.spec
        soc = st.soc_pct if st is not None and spec.kind is DeviceKind.BATTERY else None
        out.append(BidDevice(
            device_id=i, owner_id=int(owner_of[i]), kind=spec.kind.value,
            rated_power_kw=spec.rated_power_kw, min_setpoint_kw=spec.min_setpoint_kw,
            max_setpoint_kw=spec.max_setpoint_kw, params=dict(spec.params),
            soc_pct=None if soc is None else float(soc)))
    return out


def bid_call(settings, call, programme: Programme, product: Product, meter: MeterStore,  # type: ignore[no-untyped-def]
             devices: Sequence[BidDevice], forecasts: Forecasts, issue: pd.Timestamp,
             other_event_days: Iterable[date], calendar: DayCalendar,
             event_id: int = 0) -> Offer:
    """The offer for ``call`` (:class:`sim.grid.GridCall`) by the production core,
    :func:`bidding.core.make_offer`, with the inputs the daemon's intake gives it: the
    forecaster's owner quantiles (:class:`Forecasts`), else the owners' last 10 days of meter
    data (:func:`bidding.bid_inputs.whole_days`, other events' days skipped; their site meters'
    the same, for the export rule), the scheduler's
    envelope, the programme's price lowered to the call's cap (:func:`bidding.core.bid_price`)
    and the no-history fallback (``[bidding] no_history_fraction_pct``); ``calendar``: the
    working days, the season's as its baselines and settlement use."""
    step = programme.interval_minutes
    skip = set(other_event_days)
    history_days = BID_HISTORY_DAYS  # as the daemon bids
    by_owner = owners_of(devices)
    owners = tuple(owner_input(o, ds, meter.owner_series(o, issue),
                               meter.owner_site_series(o, issue), call.start, call.end,
                               history_days, skip, programme.timezone, step)
                   for o, ds in by_owner.items())
    metered = np.flatnonzero(np.isfinite(meter.owner_kw[:, :meter.position(issue)]).any(axis=0))
    first = meter.index[metered[0]].to_pydatetime() if metered.size else None
    inp = BidInput(
        event_id=event_id, start=call.start, end=call.end, direction=call.direction,
        requested_kw=call.requested_kw, programme=programme, product=product,
        price_yuan_per_kwh=bid_price(product, getattr(call, "price_cap_yuan_per_kwh", None)),
        owners=owners, calendar=calendar,
        confidence=settings.bidding.delivery_confidence, history_days=history_days,
        forecast=forecasts.owner_forecast(meter, issue), scheduler_envelope=True,
        no_history=NoHistoryPolicy(settings.bidding.no_history_fraction_pct, first))
    return make_offer(inp)


def settle(programme: Programme, index: pd.DatetimeIndex, baseline_kw: np.ndarray,
           metered_kw: np.ndarray, owner_declared_kw: dict[int, float], price: Decimal,
           fee_pct: float, interval_minutes: int,
           site_import_kw: np.ndarray | None = None, *,
           product: Product) -> tuple[EventSettlement, list[int]]:
    """Settle the event (``bidding.settlement.settle_event``) over the owners taking part: those
    with a declared share above zero and a baseline (as the daemon settles,
    :func:`vpp.daemon.delivery.declared_by_owner`). An owner who declared nothing is neither
    dispatched (:func:`participant_rows`) nor settled: counting its metering point would add its
    baseline error (e.g. heating load on a cold day against warmer baseline days) to a response
    it was never asked for. Export: the programme's ``export_counts`` with the owners' site
    meters (``site_import_kw``, owners x intervals, NaN: none), as the daemon settles.
    ``product``: the one the call was accepted under: its direction (valley filling settles the
    rise above the baseline), price cap and capacity price, as the daemon's settlement passes
    them (:mod:`vpp.daemon.settle`). Returns the settlement and the owner rows it covers."""
    rows = [o for o in sorted(owner_declared_kw)
            if owner_declared_kw[o] > 0 and np.isfinite(baseline_kw[o]).all()]
    if not rows:
        raise ValidationError("no owner with a declared share and a baseline to settle")
    res = settle_event(
        index=index, owner_ids=rows, baseline_kw=baseline_kw[rows], metered_kw=metered_kw[rows],
        owner_declared_kw=[owner_declared_kw[o] for o in rows], price_yuan_per_kwh=price,
        band=programme.band, fee_pct=Decimal(str(fee_pct)), tariff=None,
        direction=product.direction.value,
        capacity_price_yuan_per_kw=product.capacity_price_yuan_per_kw,
        price_cap_yuan_per_kwh=product.price_cap_yuan_per_kwh,
        interval_minutes=interval_minutes, export_counts=programme.export_counts,
        site_import_kw=None if site_import_kw is None else site_import_kw[rows],
    )
    check_balance(res)
    return res, rows


def participant_rows(owner_of_device: Sequence[int] | np.ndarray,
                     owner_declared_kw: dict[int, float],
                     online: Sequence[bool] | None = None) -> np.ndarray:
    """Fleet rows of the devices that take part in a call, by the daemon planner's rule
    (:func:`bidding.participants.participants`): owner with a declared share above zero, device
    online (``online[i]``: the plant reports a state; None: all). Simulated devices are all
    active and none is opted out."""
    owners = np.asarray(owner_of_device)
    ids = participants([DeviceStanding(i, int(o), online=True if online is None else bool(online[i]))
                        for i, o in enumerate(owners)], owner_declared_kw)
    return np.asarray(ids, dtype=np.int64)


def ev_sessions(rated_power_kw: float, connectors: int, physics, horizon: int,  # type: ignore[no-untyped-def]
                interval_minutes: int) -> list[EvSession]:
    """The cars a simulated charger reports as connected (energy still needed, time to
    departure), as an OCPP/ISO 15118 charger would; each asks no more than its connector's
    share of the charger can deliver before it leaves (the connectors share rated power)."""
    dt_h = interval_minutes / 60
    per_conn = rated_power_kw / max(len(physics.sessions), 1)
    out = []
    for s in physics.sessions[:connectors]:
        if s is None or s.need_kwh <= 1e-3:
            continue
        dep = max(1, int(s.departs_h / dt_h))
        reach = per_conn * min(dep, horizon) * dt_h * EV_REACH_SHARE
        out.append(EvSession(0, dep, float(min(s.need_kwh, reach))))
    return out


def scheduler_devices(plant_devices: Sequence, states: Sequence, physics: Sequence,
                      horizon: int, interval_minutes: int) -> list[FleetDevice]:
    """The scheduler's view of the fleet by the daemon planner's rule
    (:func:`vpp.scheduler.device_view.scheduler_device`) from the devices' specs, the
    telemetry just read and the cars connected (:func:`ev_sessions`). Simulated owners state
    no preferences."""
    out = []
    for d, st, ph in zip(plant_devices, states, physics, strict=True):
        spec = d.spec
        params = cast(Params, parse_params(spec.kind, spec.params))
        sessions = (ev_sessions(spec.rated_power_kw, params.connectors, ph, horizon,
                                interval_minutes)
                    if isinstance(params, EvChargerParams) else [])
        out.append(scheduler_device(
            st.device_id, spec.kind, params, rated_power_kw=spec.rated_power_kw,
            min_setpoint_kw=spec.min_setpoint_kw, max_setpoint_kw=spec.max_setpoint_kw,
            owner=d.owner, state=st, preferences={}, sessions=sessions,
            horizon_intervals=horizon, interval_minutes=interval_minutes))
    return out


@dataclass
class CallPlan:
    """A dispatch plan in fleet order, whichever path made it.

    ``setpoint_kw``: devices x intervals (kW, within each device's declared limits);
    ``shortfall_kw``: per interval, 0 outside the call; ``path``: ``"scheduler"`` (the cached
    :class:`vpp.scheduler.service.Scheduler`) or ``"partitioned"`` (Dask, exchange ADMM)."""

    setpoint_kw: np.ndarray
    shortfall_kw: np.ndarray
    status: str
    path: str
    partitions: int = 1
    qp_devices: int = 0
    iterations: int = 0
    builds: int = 0
    notes: list[str] = field(default_factory=list)

    def moved(self, devices: Sequence, baseline_kw: np.ndarray, n: int,
              tol_kw: float = 0.5) -> np.ndarray:
        """Fleet rows whose setpoint departs from their own (clamped) baseline in the first
        ``n`` intervals: the devices that must be written."""
        lo = np.array([d.min_setpoint_kw for d in devices])[:, None]
        hi = np.array([d.max_setpoint_kw for d in devices])[:, None]
        held = np.clip(baseline_kw[:, :n], lo, hi)
        return np.flatnonzero(np.abs(self.setpoint_kw[:, :n] - held).max(axis=1) > tol_kw)


class Dispatcher:
    """Plans calls through the daemon planner's path,
    :class:`vpp.scheduler.call_solver.CallSolver` (one scheduler per horizon length with exact
    aggregation, the configured tolerance and polishing; a fleet above ``[scheduler]
    partition_size`` devices split by owner and solved on Dask, the cluster at ``[scheduler]
    dask_scheduler_address`` or an in-process one started at the first partitioned plan), and
    returns the plan in fleet order. Call :meth:`close` at the end of the run."""

    def __init__(self, settings: SchedulerSettings, interval_minutes: int,
                 max_admm_iter: int = 300) -> None:
        self.solver = CallSolver(settings, interval_minutes, PartitionedScheduler(
            settings.partition_size, settings.dask_scheduler_address, interval_minutes,
            max_admm_iter=max_admm_iter))

    def partitioned(self, n_devices: int) -> bool:
        return self.solver.uses_partitions(n_devices)

    def close(self) -> None:
        self.solver.close()

    def plan(self, devices: Sequence[FleetDevice], owners: Sequence[str], baseline_kw: np.ndarray,
             price_yuan_per_kwh: np.ndarray, declared_kw: float, window: tuple[int, int],
             band_upper_pct: float, direction: str) -> CallPlan:
        """Plan a bid of ``declared_kw`` over ``window`` (interval indices) for ``devices``
        (fleet order; ``owners`` one per device) from its start, as the daemon's first plan of
        an event does (:class:`vpp.scheduler.call_solver.CallRequest`); ``direction``:
        ``peak_shaving`` or ``valley_filling``."""
        request = CallRequest(baseline_kw=baseline_kw, price_yuan_per_kwh=price_yuan_per_kwh,
                              declared_kw=declared_kw, start=window[0], end=window[1],
                              now_index=window[0], band_upper_pct=band_upper_pct,
                              direction_sign=direction_sign(direction))
        plan = self.solver.solve(devices, request, self.solver.options(), owners=owners)
        order = {int(d): r for r, d in enumerate(plan.device_ids)}
        rows = [order[int(d.device_id)] for d in devices]
        setpoint = np.asarray(plan.setpoint_kw)[rows]
        res = self.solver.partitioned.last
        if self.partitioned(len(devices)) and res is not None:
            return CallPlan(setpoint_kw=setpoint, shortfall_kw=np.nan_to_num(res.shortfall_kw),
                            status=plan.status, path="partitioned", partitions=res.partitions,
                            qp_devices=res.qp_devices, iterations=res.iterations,
                            notes=[] if res.converged else [plan.warnings[0]])
        return CallPlan(setpoint_kw=setpoint,
                        shortfall_kw=np.nan_to_num(np.asarray(plan.shortfall_kw)),
                        status=str(plan.status), path="scheduler",
                        qp_devices=int(np.asarray(plan.device_ids).size),
                        iterations=int(plan.iterations),
                        builds=self.solver.builds(int(baseline_kw.shape[1])),
                        notes=list(plan.warnings)[:3])


def event_capacity(event_id: int, direction: str, result: EventSettlement) -> EventCapacity:
    """The capacity inputs of one settled call (:func:`bidding.capacity.event_capacity`)."""
    return capacity_inputs(event_id, direction, result.paid_kwh, result.duration_h,
                           {o.owner_id: o.contribution_kwh for o in result.owners})


def with_capacity(result: SeasonResult, bidding: BiddingSettings) -> SeasonResult:
    """``result`` with the months' capacity payments of its settled calls, per programme and
    local month as the daemon posts them (:func:`bidding.capacity.programme_month_payment`;
    the version in force on the month's first day). The payments are made anew from all of
    ``result``'s events, numbered by their place in it (runs of days merged by
    :func:`sim.results.merge_results` number their calls each from 1, and a month may span
    two runs: one payment for it, over all its calls)."""
    def zone(name: str) -> str:
        return read_programme_file(Path(bidding.programmes_dir) / f"{name}.toml").timezone

    by_month: dict[tuple[str, str], list[EventCapacity]] = {}
    for i, e in enumerate(result.events, 1):
        if e.capacity is not None:
            start = pd.Timestamp(e.call.start).tz_convert(zone(e.call.programme))
            by_month.setdefault((e.call.programme, f"{start:%Y-%m}"), []).append(
                replace(e.capacity, event_id=i))
    result.capacity = []
    for (name, month), events in sorted(by_month.items()):
        first, _ = month_bounds(month, zone(name))
        programme = load_programme(name, bidding.programmes_dir, first.date())
        result.capacity.append(programme_month_payment(events, programme, month,
                                                       bidding.aggregator_fee_pct))
    return result
