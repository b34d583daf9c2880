"""Which days a season simulates: the days each call's baselines and forecast read, the meter
history they need, and the runs of consecutive days (simulated in parallel processes)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np

from bidding.bid_inputs import BID_HISTORY_DAYS
from sim.grid import GridCall, GridOperator
from sim.scenarios.city import is_working_day, season_days, simulate_weather
from sim.scenarios.scenario import Scenario
from vpp.errors import ValidationError

if TYPE_CHECKING:
    from sim.season import RunOptions

#: Days back from a call's day that are simulated at least: the metered days the offer reads
#: (:data:`bidding.bid_inputs.BID_HISTORY_DAYS` before the event). The daemon's LightGBM
#: forecaster needs about 42 days (14, and about 28 more to calibrate its quantiles,
#: :meth:`forecasting.models.GbmQuantileModel.fit`): until a run of simulated days holds them,
#: the season bids from metered history, as a daemon with a fleet that young does. Until
#: 2026-12-07: 8 (the week-ago seasonal-naive forecast the simulator bid from).
OFFER_HISTORY_DAYS = BID_HISTORY_DAYS + 1


def needed_days(calls: list[GridCall], working: int = 5, nonworking: int = 3,
                 min_days: int = OFFER_HISTORY_DAYS) -> set[date]:
    """The days the calls depend on: for each call, back from its day until ``working`` non-event
    working days and ``nonworking`` non-event non-working days (the similar-days baselines) and at
    least ``min_days`` (the offer's history, :data:`OFFER_HISTORY_DAYS`) are covered. Days
    outside feed nothing.

    A day counts towards the baseline days only if its call window has ended when the call is
    issued (the offer's baseline is computed at the invitation): the day before a day-ahead
    call, invited at 17:00 for an evening window, is simulated but not counted.
    """
    events = {c.day for c in calls}
    out: set[date] = set()
    for c in calls:
        out.update(call_days(c, events, working, nonworking, min_days))
    return out


def call_days(c: GridCall, events: set[date], working: int = 5, nonworking: int = 3,
               min_days: int = OFFER_HISTORY_DAYS) -> list[date]:
    """The days one call depends on (see :func:`needed_days`), from its own day back."""
    out: list[date] = []
    w = nw = 0
    d = c.day
    back = 0
    while back < 60 and (w < working or nw < nonworking or back < min_days):
        out.append(d)
        d -= timedelta(days=1)
        back += 1
        if d in events or c.end - timedelta(days=back) > c.issued_at:
            continue
        if is_working_day(d):
            w += 1
        else:
            nw += 1
    out.append(d)
    return out


def device_history_days(calls: list[GridCall], minimum: int = 16) -> int:
    """Days of per-device meter history to keep (:class:`MeterStore` ring): enough to hold every
    day a call's baseline reads, back to its furthest one. Event days are skipped by the
    baselines, so after a run of calls the baseline days lie further back than two weeks
    (2026-01-12: 2026-01-05..09 were events, the fifth working day is 2025-12-26, 17 days back);
    with a 16-day ring the per-device baseline behind the envelope and the dispatch plan was the
    mean of 4 of the owner's 5 baseline days and no longer added up to the owner's baseline."""
    events = {c.day for c in calls}
    reach = max(((c.day - min(call_days(c, events))).days for c in calls), default=0)
    return max(minimum, reach + 1)


def blocks(days: list[date]) -> list[list[date]]:
    """``days`` (ascending) cut into runs of consecutive days: each can be simulated apart."""
    out: list[list[date]] = []
    for d in days:
        if out and (d - out[-1][-1]).days == 1:
            out[-1].append(d)
        else:
            out.append([d])
    return out


def select_days(scn: Scenario, calls: list[GridCall], opts: RunOptions,
                ) -> tuple[list[date], list[GridCall]]:
    """The days to simulate and the calls on them, for ``opts`` (:class:`sim.season.RunOptions`)."""
    hist = opts.history_days or scn.season.history_days
    days: list[date] = []
    if opts.event_days is not None:
        if opts.periods is not None:
            ranges = [scn.season.periods[k] for k in opts.periods]
            calls = [c for c in calls if any(a <= c.day <= b for a, b in ranges)]
        tests = [c for c in calls if c.test]  # capability tests run whatever is chosen
        chosen = [c for c in calls if not c.test][: opts.event_days]
        if not chosen:
            raise ValidationError("the scenario issues no calls")
        first, last = chosen[0].day, chosen[-1].day
        spans = [(first, last)] + [(t.day, t.day) for t in tests]
        picked = {d for a, b in spans for d in _span(a - timedelta(days=hist), b)}
        return sorted(picked), [c for c in calls if first <= c.day <= last or c.test]
    left = opts.days
    for k, (a, b) in enumerate(scn.season.periods):
        if opts.periods is not None and k not in opts.periods:
            continue
        if left is not None and left <= 0:
            break
        d = a - timedelta(days=hist)
        while d <= b and (left is None or d < a or left > 0):
            days.append(d)
            if d >= a and left is not None:
                left -= 1
            d += timedelta(days=1)
    keep = set(days)
    calls = [c for c in calls if c.day in keep and c.day - timedelta(days=hist) in keep]
    if opts.skip_idle_days:
        needed = needed_days(calls)
        days = [d for d in days if d in needed]
    if opts.blocks is not None:
        runs = blocks(days)
        days = [d for k in opts.blocks if k < len(runs) for d in runs[k]]
        keep = set(days)
        calls = [c for c in calls if c.day in keep]
    return days, calls


def _span(a: date, b: date) -> list[date]:
    return [a + timedelta(days=k) for k in range((b - a).days + 1)]


def count_blocks(scn: Scenario, opts: RunOptions) -> int:
    """How many runs of consecutive days ``opts`` selects (they can run in parallel)."""
    all_days = season_days(scn)
    weather = simulate_weather(scn, all_days, np.random.default_rng([scn.scenario.seed, 1]))
    period = [d for d in all_days if any(a <= d <= b for a, b in scn.season.periods)]
    op = GridOperator(scn, weather)
    calls = op.season_calls(period, opts.capability_test)
    days, _ = select_days(scn, calls, opts)
    return len(blocks(days))
