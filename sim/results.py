"""What a simulated season produced, and the headline against the city's goal (pure arithmetic).

Powers in kW inside, MW in the headline; money in integer fen. ``delivered`` is always the
settlement's own figure: baseline minus metered energy over the event window divided by its
duration. Nothing here estimates or adjusts; it only adds up what the run measured.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bidding.capacity import CapacityPayment, EventCapacity
from sim.grid import GridCall

if TYPE_CHECKING:
    from sim.metrics import CallMeasures


@dataclass
class EventOutcome:
    """One call, the aggregator's answer, and how it went."""

    call: GridCall
    declared_kw: float
    price_yuan_per_kwh: str  # exact decimal as text
    available_flex_kw: float  # sum of the devices' reported flex_down at the call
    index: pd.DatetimeIndex  # the event's intervals
    baseline_kw: np.ndarray  # fleet baseline per interval (settlement baseline)
    metered_kw: np.ndarray  # fleet metered load per interval
    band_lower_pct: float
    band_upper_pct: float
    revenue_fen: int
    penalty_fen: int
    fee_fen: int
    payouts_fen: dict[str, int]  # owner -> payout (negative: owes)
    baseline_error_pct: float | None  # proxy-day error of the same baseline method
    comfort_violations: int  # building device-intervals outside the comfort band
    soc_violations: int  # battery device-intervals outside the SoC limits
    faults: dict[str, int] = field(default_factory=dict)
    setpoints_written: int = 0
    setpoints_failed: int = 0
    solve_seconds: float = 0.0
    settled_response_kwh: float = 0.0  # bidding.settlement's own (integer-Wh) response
    system_load_mw: float = 0.0  # the city's load at the event (mean over the window)
    notes: list[str] = field(default_factory=list)
    plan_path: str = ""  # how the dispatch plan was solved (scheduler / partitioned on Dask)
    season: str = ""  # the market calendar's season of the call day (summer / winter)
    measures: CallMeasures | None = None  # sim.metrics: twin, rebound, credited, uncapped
    capacity: EventCapacity | None = None  # what the month's capacity payment needs of it

    @property
    def delivered_kw(self) -> float:
        """Mean response over the window: (baseline - metered) energy / duration for peak
        shaving, (metered - baseline) for valley filling (the call's sign, as settled)."""
        if not len(self.index):
            return 0.0
        return float(self.call.sign * np.mean(self.baseline_kw - self.metered_kw))

    @property
    def performance_ratio(self) -> float:
        return self.delivered_kw / self.declared_kw if self.declared_kw > 0 else 0.0

    @property
    def in_band(self) -> bool:
        r = self.performance_ratio * 100
        return self.band_lower_pct <= r

    @property
    def payouts_total_fen(self) -> int:
        return sum(self.payouts_fen.values())

    @property
    def balanced(self) -> bool:
        """Payouts + aggregator fee == revenue - penalty, to the fen."""
        return self.payouts_total_fen + self.fee_fen == self.revenue_fen - self.penalty_fen


@dataclass
class SeasonResult:
    scenario: str
    scale: str
    system_peak_mw: float
    goal_pct: float
    n_devices: int
    n_owners: int
    fleet_rated_mw: dict[str, float]
    fleet_count: dict[str, int]
    days: list[Any]
    events: list[EventOutcome]
    city_load_mw: pd.Series  # per interval
    fleet_load_mw: pd.Series  # per interval, metered
    wall_seconds: float = 0.0
    simulated_days: int = 0
    started_at: datetime | None = None
    seams: list[str] = field(default_factory=list)  # capabilities not yet wired (named honestly)
    # the months' capacity payments (sim.aggregator.with_capacity), per programme and month
    capacity: list[CapacityPayment] = field(default_factory=list)

    def headline(self) -> Headline:
        """Over the season's peak-shaving calls (capability tests and valley filling are
        reported apart: the goal is a share of the peak)."""
        return headline(self.calls, self.system_peak_mw, self.goal_pct)

    @property
    def calls(self) -> list[EventOutcome]:
        """The season's peak-shaving calls, without the capability tests."""
        return [e for e in self.events if not e.call.test and e.call.direction == "peak_shaving"]

    @property
    def valley_calls(self) -> list[EventOutcome]:
        """The season's valley-filling calls (the fleet asked to raise its load)."""
        return [e for e in self.events if e.call.direction == "valley_filling"]


@dataclass(frozen=True)
class Headline:
    events: int
    system_peak_mw: float
    goal_pct: float
    goal_mw: float
    capability_mw: float  # median declared (committed) capacity over the events
    capability_pct: float
    flex_mw: float  # median instantaneous flexibility the devices reported
    flex_pct: float
    delivered_mw: float  # mean delivered response over the events
    delivered_pct: float
    delivered_min_mw: float
    delivered_max_mw: float
    events_in_band: int
    revenue_yuan: float
    penalty_yuan: float
    payouts_yuan: float
    fee_yuan: float
    meets_goal: bool

    def text(self) -> str:
        verdict = "meets" if self.meets_goal else "falls short of"
        return (
            f"{self.events} events: DR capability {self.capability_mw:.1f} MW "
            f"({self.capability_pct:.2f}% of the {self.system_peak_mw:,.0f} MW peak), "
            f"delivered {self.delivered_mw:.1f} MW on average ({self.delivered_pct:.2f}%; "
            f"range {self.delivered_min_mw:.1f}-{self.delivered_max_mw:.1f} MW); "
            f"goal {self.goal_pct:g}% = {self.goal_mw:.1f} MW: delivered response {verdict} "
            f"the goal"
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def headline(events: list[EventOutcome], system_peak_mw: float, goal_pct: float) -> Headline:
    """Capability (median declared MW), delivered (mean MW) and money over the events, as shares
    of the system peak; ``meets_goal`` compares the mean delivered share with the goal."""
    goal_mw = system_peak_mw * goal_pct / 100
    if not events:
        return Headline(0, system_peak_mw, goal_pct, goal_mw, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                        0, 0, False)
    decl = np.array([e.declared_kw for e in events]) / 1000
    flex = np.array([e.available_flex_kw for e in events]) / 1000
    dlv = np.array([e.delivered_kw for e in events]) / 1000
    cap = float(np.median(decl))
    fx = float(np.median(flex))
    mean_dlv = float(dlv.mean())
    return Headline(
        events=len(events), system_peak_mw=system_peak_mw, goal_pct=goal_pct, goal_mw=goal_mw,
        capability_mw=cap, capability_pct=100 * cap / system_peak_mw,
        flex_mw=fx, flex_pct=100 * fx / system_peak_mw,
        delivered_mw=mean_dlv, delivered_pct=100 * mean_dlv / system_peak_mw,
        delivered_min_mw=float(dlv.min()), delivered_max_mw=float(dlv.max()),
        events_in_band=sum(e.in_band for e in events),
        revenue_yuan=sum(e.revenue_fen for e in events) / 100,
        penalty_yuan=sum(e.penalty_fen for e in events) / 100,
        payouts_yuan=sum(e.payouts_total_fen for e in events) / 100,
        fee_yuan=sum(e.fee_fen for e in events) / 100,
        meets_goal=100 * mean_dlv / system_peak_mw >= goal_pct,
    )


def merge_results(parts: list[SeasonResult]) -> SeasonResult:
    """One result from runs of separate season periods (same scenario and fleet), without
    the months' capacity payments: pass it to :func:`sim.aggregator.with_capacity`."""
    if not parts:
        raise ValueError("nothing to merge")
    first = parts[0]
    events = sorted((e for p in parts for e in p.events), key=lambda e: e.call.start)
    return SeasonResult(
        scenario=first.scenario, scale=first.scale, system_peak_mw=first.system_peak_mw,
        goal_pct=first.goal_pct, n_devices=first.n_devices, n_owners=first.n_owners,
        fleet_rated_mw=first.fleet_rated_mw, fleet_count=first.fleet_count,
        days=sorted(d for p in parts for d in p.days), events=events,
        city_load_mw=pd.concat([p.city_load_mw for p in parts]).sort_index(),
        fleet_load_mw=pd.concat([p.fleet_load_mw for p in parts]).sort_index(),
        wall_seconds=max(p.wall_seconds for p in parts),
        simulated_days=sum(p.simulated_days for p in parts),
        seams=sorted({s for p in parts for s in p.seams}),
        # a month's capacity payment is over all its calls, which two parts may share: made
        # anew by sim.aggregator.with_capacity from the merged events
        capacity=[],
    )


def fault_totals(events: list[EventOutcome]) -> dict[str, int]:
    c: Counter[str] = Counter()
    for e in events:
        c.update(e.faults)
    return dict(c)
