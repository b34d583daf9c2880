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
    """Settle the event (``bidding.settlement.settle_event``) over every owner with a baseline:
    the VPP's response is measured over all its metering points; owners without a declared
    share (declared 0) still earn from a positive contribution. Returns the settlement and the
    owner rows it covers."""
    rows = [o for o in sorted(owner_declared_kw) if np.isfinite(baseline_kw[o]).all()]
    if not rows or sum(owner_declared_kw[o] for o in rows) <= 0:
        raise ValidationError("no owner with a declared share and a baseline to settle")
    res = settle_event(
        index=index, owner_ids=rows, baseline_kw=baseline_kw[rows], metered_kw=metered_kw[rows],
        owner_declared_kw=[owner_declared_kw[o] for o in rows], price_yuan_per_kwh=price,
        band=programme.band, fee_pct=Decimal(str(fee_pct)), tariff=None,
        interval_minutes=interval_minutes,
    )
    check_balance(res)
    return res, rows


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


def plan_dispatch(devices: Sequence, baseline_kw: np.ndarray, price_yuan_per_kwh: np.ndarray,
                  reduction_kw: float, window: tuple[int, int], eps: float,
                  interval_minutes: int = 15, time_limit_s: float = 120.0):
    """Dispatch plan for the call (``vpp.scheduler``): returns the scheduler's DispatchPlan."""
    from vpp.scheduler.inputs import EventCall, HorizonData
    from vpp.scheduler.model import DispatchModel, SolverOptions

    n = baseline_kw.shape[1]
    model = DispatchModel(devices, n, interval_minutes=interval_minutes,
                          options=SolverOptions(eps=eps, time_limit_s=time_limit_s))
    data = HorizonData(baseline_kw=baseline_kw, price_yuan_per_kwh=price_yuan_per_kwh,
                       call=EventCall(window[0], window[1], reduction_kw),
                       interval_minutes=interval_minutes)
    return model.solve(devices, data)
