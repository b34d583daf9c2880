"""The VPP's performance record under its programme's rules (issue 20 item 4), pure logic.

From the settled events (each with its performance ratio and the band floor of the programme
version it was settled under) and the operator's remedies, :func:`compute_record` replays the
programme's :class:`~bidding.programme.PerformanceRules` day by day:

* A **failed response** is a settled event whose performance ratio (VPP response over declared
  energy, :mod:`bidding.settlement`) is below the band's ``lower_pct``: nothing is paid for it.
* Failures count within the ``failure_window_months`` up to each one, and only those after the
  last reinstatement (a remedy starts a clean slate). ``warn_after_failures`` of them put the
  VPP under **warning**; ``suspend_after_failures`` **suspend** it. A warning lapses when its
  failures leave the window.
* A suspension gives a **remedy deadline**: the suspension's date plus
  ``remedy_deadline_months``. A remedy recorded on or before it reinstates the VPP that day
  (events on the remedy's date come after it); none by then means **exit** the day after.
* Exit also follows ``expel_after_suspensions`` suspensions within
  ``suspension_window_months`` (the latest one ends in exit instead of a suspension) and, when
  the programme says so, a failed first response after a remedy.
* Exit (``expelled``) is final. Events settled while suspended get their verdict but move
  nothing (the VPP does not bid then; an event accepted before the suspension may still settle).

Days are local dates in the programme's zone; months are calendar months (a deadline from
31 January is 30 April's last day, clipped: 30 April). Not modelled: exit for an unpaid bond or
insurance (the rules' other exit reason; the VPP holds no such data).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from bidding.programme import PerformanceRules
from vpp.timeutil import require_aware


class RecordState(StrEnum):
    """The VPP's standing, from best to worst (:data:`STATE_ORDER`)."""

    GOOD = "good"
    WARNED = "warned"
    SUSPENDED = "suspended"
    EXPELLED = "expelled"


#: rank of each state: higher is worse
STATE_ORDER = {RecordState.GOOD: 0, RecordState.WARNED: 1, RecordState.SUSPENDED: 2,
               RecordState.EXPELLED: 3}


@dataclass(frozen=True)
class SettledResult:
    """One settled event: its start (aware), performance ratio (response / declared energy)
    and the band floor it was judged against (``lower_pct`` / 100 of its programme version)."""

    event_id: int
    start: datetime
    performance_ratio: float
    floor_ratio: Decimal

    @property
    def passed(self) -> bool:
        return Decimal(repr(self.performance_ratio)) >= self.floor_ratio


@dataclass(frozen=True)
class RemedyEntry:
    """A remedy the operator recorded: the local date it was done, and what was done."""

    remedied_on: date
    note: str = ""


@dataclass(frozen=True)
class EventVerdict:
    event_id: int
    day: date  # local date of the event's start
    performance_ratio: float
    floor_ratio: Decimal
    passed: bool
    state_after: RecordState


@dataclass(frozen=True)
class StateChange:
    """One change of state (or a remedy without effect: ``state_from == state_to``), with the
    rule that caused it in plain words."""

    on: date
    state_from: RecordState
    state_to: RecordState
    rule: str
    event_id: int | None = None


@dataclass(frozen=True)
class PerformanceRecord:
    """The record as of ``as_of`` (a local date). ``since``: the day the current state began
    (None: good from the start); ``remedy_deadline``: the last day a remedy is accepted (only
    while suspended); ``awaiting_first_response``: reinstated, the next response decides."""

    as_of: date
    state: RecordState
    since: date | None
    remedy_deadline: date | None
    awaiting_first_response: bool
    failures_in_window: int
    suspensions_in_window: int
    verdicts: list[EventVerdict]
    changes: list[StateChange]
    rules: PerformanceRules | None

    @property
    def refuses_bids(self) -> bool:
        """True while suspended or expelled: the daemon makes no offer."""
        return self.state in (RecordState.SUSPENDED, RecordState.EXPELLED)

    @property
    def reason(self) -> str:
        """Why bids are refused (the last change's rule), or ``""``."""
        if not self.refuses_bids:
            return ""
        last = next((c for c in reversed(self.changes)
                     if c.state_to == self.state and c.state_from != c.state_to), None)
        why = f": {last.rule}" if last else ""
        if self.state == RecordState.SUSPENDED:
            return (f"the VPP is suspended since {self.since}{why}; "
                    f"remedy by {self.remedy_deadline}")
        return f"the VPP is expelled from the programme since {self.since}{why}"


def add_months(day: date, months: int) -> date:
    """``day`` plus calendar ``months`` (the day clipped to the month's last day)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


@dataclass
class _Replay:
    """The running state of :func:`compute_record`."""

    rules: PerformanceRules
    state: RecordState = RecordState.GOOD
    since: date | None = None
    deadline: date | None = None
    awaiting: bool = False
    clean_from: date | None = None  # failures before this day no longer count
    failures: list[date] = field(default_factory=list)
    suspensions: list[date] = field(default_factory=list)
    changes: list[StateChange] = field(default_factory=list)

    def move(self, on: date, to: RecordState, rule: str, event_id: int | None = None) -> None:
        self.changes.append(StateChange(on, self.state, to, rule, event_id))
        self.state, self.since = to, on
        if to != RecordState.SUSPENDED:
            self.deadline = None

    def failures_within(self, on: date) -> int:
        start = add_months(on, -self.rules.failure_window_months)
        return sum(1 for f in self.failures
                   if start < f <= on and (self.clean_from is None or f >= self.clean_from))

    def suspensions_within(self, on: date) -> int:
        start = add_months(on, -self.rules.suspension_window_months)
        return sum(1 for s in self.suspensions if start < s <= on)

    def lapse(self, on: date) -> None:
        """What time alone does by ``on``: an unremedied suspension past its deadline ends in
        exit the day after; a warning whose failures left the window lapses."""
        r = self.rules
        if self.state == RecordState.SUSPENDED and self.deadline is not None \
                and on > self.deadline:
            self.move(self.deadline + timedelta(days=1), RecordState.EXPELLED,
                      f"suspension not remedied within {r.remedy_deadline_months} months "
                      f"(deadline {self.deadline})")
        elif self.state == RecordState.WARNED and self.failures_within(on) < r.warn_after_failures:
            # the first day the count fell below the threshold: a failure leaving the window
            leaving = sorted(add_months(f, r.failure_window_months) for f in self.failures)
            day = next((d for d in leaving if (self.since is None or d > self.since) and d <= on
                        and self.failures_within(d) < r.warn_after_failures), on)
            self.move(day, RecordState.GOOD,
                      f"warning lapsed: fewer than {r.warn_after_failures} failed response(s) "
                      f"within {r.failure_window_months} months")

    def remedy(self, entry: RemedyEntry) -> None:
        on = entry.remedied_on
        note = f" ({entry.note})" if entry.note else ""
        if self.state != RecordState.SUSPENDED:
            self.changes.append(StateChange(on, self.state, self.state,
                                            f"remedy{note} recorded while {self.state.value}: "
                                            "no effect"))
            return
        self.move(on, RecordState.GOOD, f"remedy recorded{note}: reinstated, the next response "
                  "must pass")
        self.awaiting = self.rules.expel_on_failed_first_response_after_remedy
        self.clean_from = on

    def suspend(self, on: date, event_id: int, n_failures: int) -> None:
        r = self.rules
        self.suspensions.append(on)
        because = (f"{n_failures} failed responses within {r.failure_window_months} months "
                   f"(suspension after {r.suspend_after_failures})")
        n = self.suspensions_within(on)
        if n >= r.expel_after_suspensions:
            self.move(on, RecordState.EXPELLED,
                      f"{n} suspensions within {r.suspension_window_months} months "
                      f"(latest: {because})", event_id)
            return
        self.move(on, RecordState.SUSPENDED, because, event_id)
        self.deadline = add_months(on, r.remedy_deadline_months)

    def event(self, day: date, ev: SettledResult) -> None:
        r = self.rules
        if self.state in (RecordState.SUSPENDED, RecordState.EXPELLED):
            return
        if self.awaiting:
            self.awaiting = False
            if not ev.passed:
                self.move(day, RecordState.EXPELLED, "failed the first response after a remedy "
                          f"(ratio {ev.performance_ratio:.2f} below {ev.floor_ratio})",
                          ev.event_id)
            return
        if ev.passed:
            return
        self.failures.append(day)
        n = self.failures_within(day)
        if n >= r.suspend_after_failures:
            self.suspend(day, ev.event_id, n)
        elif n >= r.warn_after_failures and self.state == RecordState.GOOD:
            self.move(day, RecordState.WARNED,
                      f"{n} failed response(s) within {r.failure_window_months} months "
                      f"(ratio {ev.performance_ratio:.2f} below {ev.floor_ratio})", ev.event_id)


def compute_record(events: Sequence[SettledResult], remedies: Sequence[RemedyEntry],
                   rules: PerformanceRules | None, tz: ZoneInfo, as_of: datetime
                   ) -> PerformanceRecord:
    """The record as of ``as_of`` (aware); events that start after it are left out. With no
    rules (``rules`` None: the programme keeps no record) every event still gets its verdict
    and the state stays good."""
    require_aware(as_of, "as_of")
    today = as_of.astimezone(tz).date()
    timeline: list[tuple[date, int, datetime, SettledResult | RemedyEntry]] = []
    for ev in events:
        require_aware(ev.start, f"event {ev.event_id} start")
        if ev.start <= as_of:
            timeline.append((ev.start.astimezone(tz).date(), 1, ev.start, ev))
    for rem in remedies:
        if rem.remedied_on <= today:
            timeline.append((rem.remedied_on, 0, as_of, rem))
    timeline.sort(key=lambda t: (t[0], t[1], t[2]))
    replay = _Replay(rules) if rules is not None else None
    verdicts: list[EventVerdict] = []
    for day, _, _, item in timeline:
        if replay is not None:
            replay.lapse(day)
            if isinstance(item, RemedyEntry):
                replay.remedy(item)
            else:
                replay.event(day, item)
        if isinstance(item, SettledResult):
            verdicts.append(EventVerdict(
                item.event_id, day, item.performance_ratio, item.floor_ratio, item.passed,
                replay.state if replay is not None else RecordState.GOOD))
    if replay is None:
        return PerformanceRecord(today, RecordState.GOOD, None, None, False,
                                 sum(1 for v in verdicts if not v.passed), 0, verdicts, [], None)
    replay.lapse(today)
    return PerformanceRecord(
        as_of=today, state=replay.state, since=replay.since, remedy_deadline=replay.deadline,
        awaiting_first_response=replay.awaiting and replay.state == RecordState.GOOD,
        failures_in_window=replay.failures_within(today),
        suspensions_in_window=replay.suspensions_within(today),
        verdicts=verdicts, changes=replay.changes, rules=rules)
