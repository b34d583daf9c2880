"""Which days a season simulates: the days each call's baselines and forecast read, the meter
history they need, and the runs of consecutive days (simulated in parallel processes)."""

from __future__ import annotations

from datetime import date, timedelta

from sim.grid import GridCall
from sim.scenarios.city import is_working_day


def needed_days(calls: list[GridCall], working: int = 5, nonworking: int = 3,
                 min_days: int = 8) -> set[date]:
    """The days the calls depend on: for each call, back from its day until ``working`` non-event
    working days and ``nonworking`` non-event non-working days (the similar-days baselines) and at
    least ``min_days`` (the week-ago forecast) are covered. Days outside feed nothing.

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
               min_days: int = 8) -> list[date]:
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
