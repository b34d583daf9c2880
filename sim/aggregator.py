"""The aggregator's side of one simulated event, through the production modules only.

Each function here is glue: it shapes the simulation's arrays into the inputs of
:mod:`forecasting` (baselines, load forecasts), :mod:`bidding` (offer, settlement) and
:mod:`vpp.scheduler` (dispatch), and returns their answers. No baseline, forecast, offer, schedule
or settlement rule is implemented here.

Owners are rows ``0..n_owners-1`` (their index doubles as the owner id given to settlement).
Powers in kW; prices as exact ``Decimal`` yuan/kWh.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd

from bidding.offer import VppOffer, aggregate_offers, deliverable_quantiles, owner_offer
from bidding.programme import Product, Programme
from bidding.settlement import EventSettlement, check_balance, settle_event
from forecasting.baselines import BaselineSpec, compute_baseline
from forecasting.calendars import ChineseCalendar
from forecasting.models import seasonal_naive
from forecasting.panel import build_panel
from sim.metering import MeterStore
from vpp.errors import ValidationError


@dataclass
class OwnerBaselines:
    """Per-owner baseline over a window (owners x intervals; NaN rows: no baseline possible)."""

    kw: np.ndarray
    days_used: list[list[date]]
    failed: dict[int, str] = field(default_factory=dict)


def owner_baselines(meter: MeterStore, start: pd.Timestamp, end: pd.Timestamp,
                    spec: BaselineSpec, event_days: Iterable[date],
                    owners: Sequence[int] | None = None,
                    interval_minutes: int = 15) -> OwnerBaselines:
    """The programme's baseline for each owner (``forecasting.baselines.compute_baseline``) from
    the meter data recorded so far."""
    owners = range(meter.n_owners) if owners is None else owners
    n_t = int((end - start) / pd.Timedelta(minutes=interval_minutes))
    out = np.full((meter.n_owners, n_t), np.nan)
    days: list[list[date]] = [[] for _ in range(meter.n_owners)]
    failed: dict[int, str] = {}
    ev = list(event_days)
    cal = ChineseCalendar()
    full = meter.fleet_series()  # only for its index length
    stop = len(full)
    for o in owners:
        series = pd.Series(meter.owner_kw[o, :stop], index=full.index)
        try:
            res = compute_baseline(series, start.to_pydatetime(), end.to_pydatetime(), spec,
                                   event_days=ev, interval_minutes=interval_minutes,
                                   calendar=cal)
        except ValidationError as exc:
            failed[o] = exc.message
            continue
        out[o] = res.baseline_kw.to_numpy()
        days[o] = res.days_used
    return OwnerBaselines(out, days, failed)


def fleet_baseline_error_pct(meter: MeterStore, proxy_start: pd.Timestamp,
                             proxy_end: pd.Timestamp, spec: BaselineSpec,
                             event_days: Iterable[date],
                             interval_minutes: int = 15) -> float | None:
    """The baseline method's error on a non-event day (a proxy event): (baseline - actual) /
    actual over the window, in %, at the fleet level. None when the day cannot be baselined."""
    series = meter.fleet_series(proxy_end)
    try:
        res = compute_baseline(series, proxy_start.to_pydatetime(), proxy_end.to_pydatetime(),
                               spec, event_days=list(event_days),
                               interval_minutes=interval_minutes, calendar=ChineseCalendar())
    except ValidationError:
        return None
    actual = series.loc[proxy_start:proxy_end - pd.Timedelta(minutes=interval_minutes)]
    if len(actual) != len(res.baseline_kw) or actual.sum() == 0:
        return None
    return float(100 * (res.baseline_kw.sum() - actual.sum()) / actual.sum())


def load_quantiles(meter: MeterStore, issue: pd.Timestamp, start: pd.Timestamp,
                   end: pd.Timestamp, quantiles: list[float],
                   interval_minutes: int = 15) -> np.ndarray:
    """Owner load quantiles over [start, end) forecast at ``issue`` (Q x owners x intervals), by
    the forecasting module's seasonal-naive model with residual quantiles."""
    hist = pd.DataFrame(meter.owner_kw[:, :meter.position(issue)].T,
                        index=meter.index[:meter.position(issue)])
    # the panel wants a regular grid: keep the last four weeks, gaps (between periods) stay NaN
    step = pd.Timedelta(minutes=interval_minutes)
    hist = hist.loc[issue - pd.Timedelta(days=35):]
    full = pd.date_range(hist.index[0], issue - step, freq=step)
    hist = hist.reindex(full)
    horizon = int((end - issue) / step)
    panel = build_panel(hist, ChineseCalendar(), horizon_steps=horizon,
                        interval_minutes=interval_minutes)
    origin = np.array([panel.n_data])
    q = seasonal_naive(panel, origin, horizon, quantiles)[:, 0]  # (Q, N, H)
    lead = int((start - issue) / step)
    return q[:, :, lead:]


def make_offer(programme: Programme, product: Product, envelope_kw: np.ndarray,
               baseline_kw: np.ndarray, load_q: np.ndarray, levels: Sequence[float],
               price: Decimal, confidence: float) -> VppOffer:
    """The VPP offer (``bidding.offer``): one owner offer per owner with a baseline, added up.

    ``envelope_kw``: owners x intervals of dependable flexibility; ``baseline_kw``: owners x
    intervals; ``load_q``: (Q, owners, intervals)."""
    offers = []
    for o in range(envelope_kw.shape[0]):
        if not np.isfinite(baseline_kw[o]).all() or not np.isfinite(load_q[:, o]).all():
            continue
        rq = deliverable_quantiles(envelope_kw[o], baseline_kw[o], load_q[:, o])
        offers.append(owner_offer(o, levels, rq, envelope_kw[o], programme.band, price,
                                  confidence=confidence))
    return aggregate_offers(offers, product, price,
                            min_declared_kw=programme.rules.min_declared_kw)


def settle(programme: Programme, index: pd.DatetimeIndex, baseline_kw: np.ndarray,
           metered_kw: np.ndarray, owner_declared_kw: dict[int, float], price: Decimal,
           fee_pct: float, interval_minutes: int = 15) -> tuple[EventSettlement, list[int]]:
    """Settle the event (``bidding.settlement.settle_event``) over the owners taking part: those
    with a declared share above zero and a baseline (as the daemon settles,
    :func:`vpp.daemon.delivery.declared_by_owner`). An owner who declared nothing is neither
    dispatched (:func:`participant_rows`) nor settled: counting its metering point would add its
    baseline error (e.g. heating load on a cold day against warmer baseline days) to a response
    it was never asked for. Returns the settlement and the owner rows it covers."""
    rows = [o for o in sorted(owner_declared_kw)
            if owner_declared_kw[o] > 0 and np.isfinite(baseline_kw[o]).all()]
    if not rows:
        raise ValidationError("no owner with a declared share and a baseline to settle")
    res = settle_event(
        index=index, owner_ids=rows, baseline_kw=baseline_kw[rows], metered_kw=metered_kw[rows],
        owner_declared_kw=[owner_declared_kw[o] for o in rows], price_yuan_per_kwh=price,
        band=programme.band, fee_pct=Decimal(str(fee_pct)), tariff=None,
        interval_minutes=interval_minutes,
    )
    check_balance(res)
    return res, rows


def participant_rows(owner_of_device: Sequence[int] | np.ndarray,
                     owner_declared_kw: dict[int, float]) -> np.ndarray:
    """Fleet rows of the devices whose owner declared a share above zero: the only devices a
    call dispatches (the daemon's rule, :func:`vpp.daemon.delivery.declared_by_owner`)."""
    part = [o for o, kw in owner_declared_kw.items() if kw > 0]
    return np.flatnonzero(np.isin(np.asarray(owner_of_device), part))


def scheduler_devices(plant_devices: Sequence, states: Sequence, physics: Sequence,
                      horizon: int, interval_minutes: int = 15) -> list:
    """The scheduler's view of the fleet (:class:`vpp.scheduler.inputs.FleetDevice`) from the
    devices' specs and the telemetry just read. EV sessions are the cars the chargers report as
    connected (energy still needed, time to departure), as an OCPP/ISO 15118 charger would."""
    from vpp.device_kinds import DeviceKind, parse_params
    from vpp.scheduler.inputs import EvSession
    from vpp.scheduler.inputs import FleetDevice as SchedDevice

    dt_h = interval_minutes / 60
    out = []
    for d, st, ph in zip(plant_devices, states, physics, strict=True):
        spec = d.spec
        params = parse_params(spec.kind, spec.params)
        kw: dict = {}
        if spec.kind is DeviceKind.BATTERY:
            lo, hi = params.soc_min_pct, params.soc_max_pct  # type: ignore[union-attr]
            kw["soc_pct"] = float(min(max(st.soc_pct if st.soc_pct is not None else lo, lo), hi))
        elif spec.kind is DeviceKind.EV_CHARGER:
            sessions = []
            per_conn = spec.rated_power_kw / max(len(ph.sessions), 1)
            for s in ph.sessions[: params.connectors]:  # type: ignore[union-attr]
                if s is None or s.need_kwh <= 1e-3:
                    continue
                dep = max(1, int(s.departs_h / dt_h))
                reach = per_conn * min(dep, horizon) * dt_h * 0.98
                sessions.append(EvSession(0, dep, float(min(s.need_kwh, reach))))
            kw["sessions"] = tuple(sessions[:1])  # the scheduler takes one session per charger
        out.append(SchedDevice(
            device_id=st.device_id, kind=spec.kind, rated_power_kw=spec.rated_power_kw,
            min_setpoint_kw=spec.min_setpoint_kw, max_setpoint_kw=spec.max_setpoint_kw,
            params=params, owner=d.owner, available=bool(st.available), **kw,
        ))
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
    """Plans calls through the production scheduling path.

    As the daemon does (:meth:`vpp.daemon.planning.Planner._solve`): one
    :class:`vpp.scheduler.service.Scheduler` per horizon length, with exact aggregation of
    identical devices and the configured tolerance (``[scheduler] eps``); the built QP is kept
    while the fleet's structure is unchanged. A fleet larger than ``[scheduler] partition_size``
    devices goes through :class:`vpp.scheduler.partition.PartitionedScheduler` (shared with the
    daemon): split by owner into partitions of at most that size and solved on Dask, the cluster
    at ``[scheduler] dask_scheduler_address`` or an in-process one started at the first
    partitioned plan. Call :meth:`close` at the end of the run."""

    def __init__(self, settings, interval_minutes: int = 15, max_admm_iter: int = 300) -> None:
        from vpp.scheduler.partition import PartitionedScheduler

        self.settings = settings  # vpp.config.SchedulerSettings
        self.interval_minutes = interval_minutes
        self._schedulers: dict[int, object] = {}
        self.partitioned_scheduler = PartitionedScheduler(
            settings.partition_size, settings.dask_scheduler_address, interval_minutes,
            max_admm_iter=max_admm_iter)

    def partitioned(self, n_devices: int) -> bool:
        return self.partitioned_scheduler.applies(n_devices)

    def close(self) -> None:
        self.partitioned_scheduler.close()

    def plan(self, devices: Sequence, owners: Sequence[str], baseline_kw: np.ndarray,
             price_yuan_per_kwh: np.ndarray, reduction_kw: float,
             window: tuple[int, int]) -> CallPlan:
        """Plan ``reduction_kw`` over ``window`` (interval indices) for ``devices`` (scheduler
        :class:`~vpp.scheduler.inputs.FleetDevice`, fleet order; ``owners`` one per device)."""
        from vpp.scheduler.inputs import EventCall, HorizonData
        from vpp.scheduler.model import SolverOptions
        from vpp.scheduler.service import Scheduler

        n = baseline_kw.shape[1]
        data = HorizonData(baseline_kw=baseline_kw, price_yuan_per_kwh=price_yuan_per_kwh,
                           call=EventCall(window[0], window[1], reduction_kw), now_index=0,
                           interval_minutes=self.interval_minutes)
        if self.partitioned(len(devices)):
            return self._plan_partitioned(devices, owners, data)
        sched = self._schedulers.get(n)
        if sched is None:
            sched = Scheduler(n_intervals=n, interval_minutes=self.interval_minutes,
                              options=SolverOptions(eps=self.settings.eps), aggregate=True)
            self._schedulers[n] = sched
        plan = sched.plan(devices, data)
        order = {int(d): r for r, d in enumerate(plan.device_ids)}
        rows = [order[int(d.device_id)] for d in devices]
        return CallPlan(setpoint_kw=np.asarray(plan.setpoint_kw)[rows],
                        shortfall_kw=np.nan_to_num(np.asarray(plan.shortfall_kw)),
                        status=str(plan.status), path="scheduler",
                        qp_devices=int(np.asarray(plan.device_ids).size),
                        iterations=int(plan.iterations), builds=sched.builds,
                        notes=list(plan.warnings)[:3])

    def _plan_partitioned(self, devices: Sequence, owners: Sequence[str], data) -> CallPlan:
        from vpp.scheduler.model import SolverOptions

        ps = self.partitioned_scheduler
        plan = ps.plan(devices, data, SolverOptions(eps=self.settings.eps), owners=owners)
        res = ps.last
        assert res is not None
        order = {int(d): r for r, d in enumerate(plan.device_ids)}
        rows = [order[int(d.device_id)] for d in devices]
        notes = [] if res.converged else [plan.warnings[0]]
        return CallPlan(setpoint_kw=np.asarray(plan.setpoint_kw)[rows],
                        shortfall_kw=np.nan_to_num(res.shortfall_kw),
                        status=plan.status, path="partitioned",
                        partitions=res.partitions, qp_devices=res.qp_devices,
                        iterations=res.iterations, notes=notes)
