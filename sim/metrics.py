"""The simulator's measures of a call, beyond the settlement (issue 18, "metrics that answer the
plan's question"): what the physics did against a no-dispatch twin, the rebound after the call,
and the season's figures per summer and winter.

- **No-dispatch twin** (:class:`NoDispatchTwin`): at a call's start the participants' device
  models are copied (state, random streams and all) onto a clock of their own and run on with
  the same weather and behaviour but no setpoints, over the call and :data:`REBOUND_INTERVALS`
  after it. The simulator knows this counterfactual; a real aggregator does not.
- **Physical response**: twin minus metered, mean kW over the call. **Baseline error on the call
  day**: the settlement's baseline minus the twin (+ = the programme's baseline was too high).
- **Rebound**: metered minus twin over the tail (kWh; + = energy moved into the hours after),
  the participants' post-call peak (kW) and whether it exceeds their load in the city's peak
  hour of that day (without the call: the twin, or the meter before the call).
- **Credited**: the settlement's paid energy over the call's duration (the band's upper limit
  and the programme's export rule applied by :func:`bidding.settlement.settle_event`), beside
  the metered response.

Valley filling (a call that asks for a rise of load) is measured in the direction of its
response (:func:`call_measures`, ``sign``) and summarised apart (:func:`valley_summary`):
:func:`season_summary` and the capability tests are the peak-shaving calls'.

Powers in kW; energies in kWh; the season summary in MW and % of the system peak.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from sim.clock import ManualClock
from sim.grid import GridCall
from sim.metering import MeterStore
from sim.plant import BEHAVIOUR_KINDS, CityPlant
from sim.scenarios import behaviour

REBOUND_INTERVALS = 8
"""Intervals after a call over which the rebound is measured (2 h at 15 min): the season's
observation tail (``sim.season.VIOLATION_TAIL``), when the call is settled."""


class NoDispatchTwin:
    """The participants of one call (fleet ``rows`` of ``plant``), copied at the call's start and
    simulated without setpoints. :meth:`step` after each plant interval; ``owner_kw`` holds the
    twin's load per owner (rows of the fleet's owner index) and interval."""

    def __init__(self, plant: CityPlant, rows: np.ndarray, owner_of: np.ndarray,
                 n_owners: int) -> None:
        self.clock = ManualClock(plant.now())
        adapters = [plant.adapters[int(i)] for i in rows]
        self.adapters = copy.deepcopy(adapters, {id(plant.clock): self.clock})
        for a in self.adapters:
            a.setpoint_kw = None  # released: the device follows its own behaviour
        self.devices = [plant.devices[int(i)] for i in rows]
        self.owner_of = np.asarray(owner_of)[np.asarray(rows, dtype=np.int64)]
        self.n_owners = n_owners
        self._energy = self._counters()
        self.owner_kw: list[np.ndarray] = []

    def _counters(self) -> np.ndarray:
        return np.array([behaviour.meter_energy_kwh(a.physics, d.kind)
                         for a, d in zip(self.adapters, self.devices, strict=True)])

    async def step(self, outdoor_temp_c: float, minutes: int) -> None:
        """One interval: the behaviour of the interval that starts now, then the physics."""
        hour = self.clock.now().hour
        for a, d in zip(self.adapters, self.devices, strict=True):
            if d.kind in BEHAVIOUR_KINDS:
                behaviour.update(a.physics, d, hour, outdoor_temp_c)
        self.clock.advance(minutes * 60)
        for a in self.adapters:
            await a.read_state()
        energy = self._counters()
        kw = (energy - self._energy) / (minutes / 60)
        self._energy = energy
        self.owner_kw.append(np.bincount(self.owner_of, weights=kw, minlength=self.n_owners))

    def window(self, owners: list[int], n: int) -> np.ndarray:
        """The twin's load of ``owners`` (summed), kW for its first ``n`` intervals (NaN where it
        has not run)."""
        out = np.full(n, np.nan)
        k = min(n, len(self.owner_kw))
        if k:
            out[:k] = np.vstack(self.owner_kw[:k])[:, owners].sum(axis=1)
        return out


@dataclass(frozen=True)
class CallMeasures:
    """One call's measures (kW, kWh), module docstring."""

    uncapped_offer_kw: float  # what the offer rule declared before the cap at the request
    credited_kw: float  # settlement's paid energy / duration (band cap, export rule)
    physical_kw: float  # twin - metered, mean over the call
    baseline_error_kw: float  # settlement baseline - twin, mean over the call (+: too high)
    rebound_kwh: float  # (metered - twin) over the tail
    rebound_peak_kw: float  # participants' highest metered load in the tail
    peak_hour_kw: float  # participants' load without the call in the city's peak hour
    tail_intervals: int  # tail intervals measured (fewer when the run ended)

    @property
    def rebound_flag(self) -> bool:
        """The post-call peak exceeds the participants' load in the city's peak hour."""
        return bool(np.isfinite(self.peak_hour_kw) and self.rebound_peak_kw > self.peak_hour_kw)

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in asdict(self).items()
                } | {"rebound_flag": self.rebound_flag}


def rebound(metered_kw: np.ndarray, twin_kw: np.ndarray, n_event: int,
            interval_minutes: int) -> tuple[float, float, int]:
    """(rebound kWh, post-call peak kW, tail intervals) from the participants' metered and twin
    load over the call and its tail (kW per interval, the call's ``n_event`` intervals first).
    Intervals where either is missing are left out."""
    m, t = metered_kw[n_event:], twin_kw[n_event:]
    ok = np.isfinite(m) & np.isfinite(t)
    if not ok.any():
        return 0.0, float("nan"), 0
    kwh = float(np.sum(m[ok] - t[ok]) * interval_minutes / 60)
    return kwh, float(np.max(m[ok])), int(ok.sum())


def peak_hour_load(city_mw: pd.Series, participants_kw: pd.Series) -> float:
    """The participants' mean load (kW) over the hour in which ``city_mw`` (the call day's city
    load) is highest; NaN where ``participants_kw`` (no-dispatch load, by timestamp) has none."""
    hourly = city_mw.groupby(city_mw.index.hour).mean()
    hour = int(hourly.idxmax())
    at = participants_kw[participants_kw.index.hour == hour].dropna()
    return float(at.mean()) if len(at) else float("nan")


def call_measures(*, uncapped_offer_kw: float, paid_kwh: float, hours: float,
                  baseline_kw: np.ndarray, metered_kw: np.ndarray, twin_kw: np.ndarray,
                  peak_hour_kw: float, interval_minutes: int, sign: float = 1.0) -> CallMeasures:
    """The measures of one call from the participants' sums (kW per interval): ``baseline_kw``
    over the call; ``metered_kw`` and ``twin_kw`` over the call and its tail.

    ``sign``: the call's direction (:attr:`sim.grid.GridCall.sign`). Valley filling (-1)
    measures in the direction of its response: physical = metered - twin (the rise), baseline
    error = twin - baseline (+: the settlement credits more than the physics did, as for peak
    shaving, so physical + error = delivered), rebound = (twin - metered) energy over the tail
    (+: load given back after the call). Pass ``peak_hour_kw`` NaN for a valley call: the
    post-call peak flag is a peak-shaving measure."""
    n = len(baseline_kw)
    tw = twin_kw[:n]
    kwh, peak, k = rebound(metered_kw, twin_kw, n, interval_minutes)
    return CallMeasures(
        uncapped_offer_kw=uncapped_offer_kw,
        credited_kw=paid_kwh / hours if hours > 0 else 0.0,
        physical_kw=sign * float(np.nanmean(tw - metered_kw[:n])) if n else 0.0,
        baseline_error_kw=sign * float(np.nanmean(baseline_kw - tw)) if n else 0.0,
        rebound_kwh=sign * kwh, rebound_peak_kw=peak, peak_hour_kw=peak_hour_kw,
        tail_intervals=k)


def _mw(values: list[float], fn: Any) -> float | None:
    v = [x for x in values if np.isfinite(x)]
    return round(float(fn(v)) / 1000, 2) if v else None


def season_summary(events: list[Any], system_peak_mw: float) -> dict[str, Any]:
    """Per season (``EventOutcome.season``), MW: the season's peak-shaving calls (capability
    tests apart) and each capability test; valley filling is :func:`valley_summary`'s.
    ``events``: :class:`sim.results.EventOutcome` with measures."""
    out: dict[str, Any] = {}
    events = [e for e in events if e.call.direction == "peak_shaving"]
    for season in sorted({e.season for e in events}):
        calls = [e for e in events if e.season == season and not e.call.test]
        ms = [e.measures for e in calls if e.measures is not None]
        unc = [m.uncapped_offer_kw for m in ms]
        row: dict[str, Any] = {
            "calls": len(calls), "measured": len(ms),
            "requested_mw_mean": _mw([e.call.requested_kw for e in calls], np.mean),
            "declared_mw_median": _mw([e.declared_kw for e in calls], np.median),
            "uncapped_offer_mw_median": _mw(unc, np.median),
            "uncapped_offer_mw_p10": _mw(unc, lambda v: np.quantile(v, 0.1)),
            "delivered_metered_mw_mean": _mw([e.delivered_kw for e in calls], np.mean),
            "credited_mw_mean": _mw([m.credited_kw for m in ms], np.mean),
            "physical_mw_mean": _mw([m.physical_kw for m in ms], np.mean),
            "baseline_error_call_day_mw_mean": _mw([m.baseline_error_kw for m in ms], np.mean),
            "rebound_mwh_mean": _mw([m.rebound_kwh for m in ms], np.mean),
            "rebound_flagged": sum(m.rebound_flag for m in ms),
            "in_band": sum(e.in_band for e in calls),
        }
        for k in ("uncapped_offer_mw_median", "credited_mw_mean", "physical_mw_mean"):
            v = row[k]
            row[k.replace("_mw_", "_pct_")] = (None if v is None
                                               else round(100 * v / system_peak_mw, 2))
        row["capability_tests"] = [
            {"id": e.call.external_id, "requested_mw": round(e.call.requested_kw / 1000, 1),
             "declared_mw": round(e.declared_kw / 1000, 1),
             "delivered_metered_mw": round(e.delivered_kw / 1000, 1),
             "notes": e.notes, **({} if e.measures is None else e.measures.as_dict())}
            for e in events if e.season == season and e.call.test]
        out[season] = row
    return out


def valley_summary(events: list[Any]) -> dict[str, Any]:
    """The valley-filling calls (MW, yuan): how many were issued, bid and settled, requested,
    declared, delivered (the rise of load: metered - settlement baseline), in the paid band,
    credited, physical (metered - twin), the baseline's error and the load given back after
    (MWh), money. No share of the system peak: the city's goal is a peak-shaving capability."""
    calls = [e for e in events if e.call.direction == "valley_filling"]
    settled = [e for e in calls if len(e.index)]
    ms = [e.measures for e in settled if e.measures is not None]
    return {
        "calls": len(calls), "settled": len(settled),
        "not_settled": {e.call.external_id: "; ".join(e.notes) for e in calls if not len(e.index)},
        "requested_mw_mean": _mw([e.call.requested_kw for e in calls], np.mean),
        "declared_mw_median": _mw([e.declared_kw for e in settled], np.median),
        "delivered_metered_mw_mean": _mw([e.delivered_kw for e in settled], np.mean),
        "flex_up_mw_median": _mw([e.available_flex_kw for e in settled], np.median),
        "credited_mw_mean": _mw([m.credited_kw for m in ms], np.mean),
        "physical_mw_mean": _mw([m.physical_kw for m in ms], np.mean),
        "baseline_error_call_day_mw_mean": _mw([m.baseline_error_kw for m in ms], np.mean),
        "given_back_mwh_mean": _mw([m.rebound_kwh for m in ms], np.mean),
        "in_band": sum(e.in_band for e in settled),
        "revenue_yuan": sum(e.revenue_fen for e in calls) / 100,
        "penalty_yuan": sum(e.penalty_fen for e in calls) / 100,
        "payouts_yuan": sum(e.payouts_total_fen for e in calls) / 100,
        "fee_yuan": sum(e.fee_fen for e in calls) / 100,
    }


def settled_measures(twin: NoDispatchTwin, meter: MeterStore, city_mw: pd.Series, call: GridCall,
                     rows: list[int], baseline_kw: np.ndarray, *, uncapped_offer_kw: float,
                     paid_kwh: float, tail: int, interval_minutes: int) -> CallMeasures:
    """:func:`call_measures` of a settled call over its settled owners (``rows``): metered
    load from ``meter`` over the call and ``tail`` intervals (NaN where not simulated), the
    twin, and the participants' load in the city's peak hour of the day (metered before the
    call, the twin from its start)."""
    start = pd.Timestamp(call.start)
    n = len(baseline_kw) + tail
    idx = pd.date_range(start, periods=n, freq=f"{interval_minutes}min")
    metered = np.full(n, np.nan)
    for k, t in enumerate(idx):
        if t in meter.index:  # owner_kw is NaN where not recorded yet
            metered[k] = float(meter.owner_kw[rows, meter.position(t)].sum())
    tw = twin.window(rows, n)
    day = city_mw[city_mw.index.date == call.day]
    before = meter.owner_kw[rows].sum(axis=0)
    metered_before = pd.Series(before, meter.index)[day.index[0]:start - pd.Timedelta(seconds=1)]
    loads = pd.concat([metered_before, pd.Series(tw, idx)])
    return call_measures(
        uncapped_offer_kw=uncapped_offer_kw, paid_kwh=paid_kwh, hours=call.hours,
        baseline_kw=baseline_kw, metered_kw=metered, twin_kw=tw,
        peak_hour_kw=peak_hour_load(day, loads) if call.sign > 0 else float("nan"),
        interval_minutes=interval_minutes, sign=call.sign)
