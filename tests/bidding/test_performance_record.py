"""The performance record (bidding.performance_record) under the Hunan rules: warnings,
suspension, the remedy deadline, exit; and invariants over random histories (hypothesis)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bidding.performance_record import (
    STATE_ORDER,
    PerformanceRecord,
    RecordState,
    RemedyEntry,
    SettledResult,
    add_months,
    compute_record,
)
from bidding.programme import PerformanceRules, load_programme, read_programme_file
from vpp.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")
HUNAN = PerformanceRules(warn_after_failures=1, suspend_after_failures=3,
                         failure_window_months=12, remedy_deadline_months=3,
                         expel_on_failed_first_response_after_remedy=True,
                         expel_after_suspensions=2, suspension_window_months=12)
FLOOR = Decimal("0.5")


def ev(event_id: int, day: date, ratio: float) -> SettledResult:
    start = datetime(day.year, day.month, day.day, 18, 0, tzinfo=TZ)
    return SettledResult(event_id, start, ratio, FLOOR)


def record(events: list[SettledResult], remedies: list[RemedyEntry], on: date,
           rules: PerformanceRules | None = HUNAN) -> PerformanceRecord:
    return compute_record(events, remedies, rules, TZ,
                          datetime(on.year, on.month, on.day, 23, 59, tzinfo=TZ))


def test_programme_files_carry_the_rules_with_sources() -> None:
    p = load_programme("hunan-2026", REPO / "config/programmes", date(2026, 6, 1))
    assert p.performance == HUNAN.model_copy(update={"source": p.performance.source}
                                             if p.performance else {})
    text = (REPO / "config/programmes/hunan-2026.toml").read_text()
    assert "3 months" in text and "first\n" in text.replace("first ", "first\n")
    for name in ("hunan-2026", "hainan-2025"):
        pf = read_programme_file(REPO / f"config/programmes/{name}.toml")
        assert all(v.performance is not None for v in pf.versions)


def test_warning_order_is_validated(tmp_path: Path) -> None:
    text = (REPO / "config/programmes/hainan-2025.toml").read_text()
    bad = text.replace("warn_after_failures = 1", "warn_after_failures = 4", 1)
    (tmp_path / "hainan-2025.toml").write_text(bad)
    with pytest.raises(ConfigError, match="warn_after_failures .4. exceeds"):
        read_programme_file(tmp_path / "hainan-2025.toml")


def test_verdicts_judge_the_ratio_against_the_band_floor() -> None:
    r = record([ev(1, date(2026, 3, 1), 0.5), ev(2, date(2026, 3, 2), 0.499)], [],
               date(2026, 3, 3))
    assert [v.passed for v in r.verdicts] == [True, False]
    assert r.state == RecordState.WARNED and r.since == date(2026, 3, 2)
    assert r.failures_in_window == 1 and not r.refuses_bids


def test_warning_lapses_when_its_failure_leaves_the_window() -> None:
    r = record([ev(1, date(2026, 3, 2), 0.1)], [], date(2027, 3, 10))
    assert r.state == RecordState.GOOD and r.since == date(2027, 3, 2)
    assert "warning lapsed" in r.changes[-1].rule


def test_three_failures_suspend_then_the_deadline_expels() -> None:
    fails = [ev(i, date(2026, 3, i), 0.2) for i in (1, 2, 3)]
    r = record(fails, [], date(2026, 3, 4))
    assert r.state == RecordState.SUSPENDED and r.since == date(2026, 3, 3)
    assert r.remedy_deadline == date(2026, 6, 3) and r.refuses_bids
    assert "3 failed responses" in r.reason and "remedy by 2026-06-03" in r.reason
    assert record(fails, [], date(2026, 6, 3)).state == RecordState.SUSPENDED
    late = record(fails, [], date(2026, 6, 4))
    assert late.state == RecordState.EXPELLED and late.since == date(2026, 6, 4)
    assert "not remedied within 3 months" in late.reason and late.remedy_deadline is None
    # a remedy after the deadline changes nothing
    after = record(fails, [RemedyEntry(date(2026, 6, 10), "too late")], date(2026, 7, 1))
    assert after.state == RecordState.EXPELLED and "no effect" in after.changes[-1].rule


def test_remedy_reinstates_and_the_first_response_decides() -> None:
    fails = [ev(i, date(2026, 3, i), 0.2) for i in (1, 2, 3)]
    remedy = [RemedyEntry(date(2026, 5, 1), "meters fixed")]
    r = record(fails, remedy, date(2026, 5, 2))
    assert r.state == RecordState.GOOD and r.awaiting_first_response
    assert r.failures_in_window == 0  # a clean slate
    passed = record([*fails, ev(9, date(2026, 5, 1), 0.8)], remedy, date(2026, 5, 2))
    assert passed.state == RecordState.GOOD and not passed.awaiting_first_response
    failed = record([*fails, ev(9, date(2026, 5, 1), 0.3)], remedy, date(2026, 5, 2))
    assert failed.state == RecordState.EXPELLED
    assert "first response after a remedy" in failed.reason
    lenient = HUNAN.model_copy(update={"expel_on_failed_first_response_after_remedy": False})
    assert record([*fails, ev(9, date(2026, 5, 1), 0.3)], remedy, date(2026, 5, 2),
                  lenient).state == RecordState.WARNED


def test_two_suspensions_within_a_year_expel() -> None:
    first = [ev(i, date(2026, 3, i), 0.2) for i in (1, 2, 3)]
    remedy = [RemedyEntry(date(2026, 4, 1))]
    ok = ev(10, date(2026, 4, 2), 0.9)
    second = [ev(20 + i, date(2026, 9, i), 0.1) for i in (1, 2, 3)]
    r = record([*first, ok, *second], remedy, date(2026, 9, 4))
    assert r.state == RecordState.EXPELLED and r.since == date(2026, 9, 3)
    assert "2 suspensions within 12 months" in r.reason and r.suspensions_in_window == 2
    # the same a year and more later is a second suspension, not exit
    later = [ev(30 + i, date(2027, 4, i), 0.1) for i in (1, 2, 3)]
    r2 = record([*first, ok, *later], remedy, date(2027, 4, 4))
    assert r2.state == RecordState.SUSPENDED and r2.suspensions_in_window == 1


def test_events_while_suspended_get_a_verdict_but_move_nothing() -> None:
    fails = [ev(i, date(2026, 3, i), 0.2) for i in (1, 2, 3, 4, 5)]
    r = record(fails, [], date(2026, 3, 6))
    assert r.state == RecordState.SUSPENDED and r.since == date(2026, 3, 3)
    assert [v.state_after for v in r.verdicts][-1] == RecordState.SUSPENDED
    assert len(r.verdicts) == 5


def test_without_rules_only_verdicts() -> None:
    r = record([ev(1, date(2026, 3, 1), 0.1)], [], date(2026, 3, 2), rules=None)
    assert r.state == RecordState.GOOD and not r.changes and r.verdicts[0].passed is False


def test_add_months_clips_to_the_month_end() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert add_months(date(2026, 3, 3), -12) == date(2025, 3, 3)


def test_naive_as_of_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_record([], [], HUNAN, TZ, datetime(2026, 1, 1))


# -- invariants over random histories ---------------------------------------------------------
START = date(2026, 1, 1)
days = st.integers(min_value=0, max_value=900)
ratios = st.sampled_from([0.0, 0.3, 0.49, 0.5, 0.8, 1.1])
rules_st = st.builds(
    lambda w, s, fw, d, first, n, sw: PerformanceRules(
        warn_after_failures=min(w, s), suspend_after_failures=s, failure_window_months=fw,
        remedy_deadline_months=d, expel_on_failed_first_response_after_remedy=first,
        expel_after_suspensions=n, suspension_window_months=sw),
    st.integers(1, 3), st.integers(1, 4), st.integers(1, 18), st.integers(1, 6), st.booleans(),
    st.integers(1, 3), st.integers(1, 18))


def _events(pairs: list[tuple[int, float]]) -> list[SettledResult]:
    return [ev(i, START + timedelta(days=d), r) for i, (d, r) in enumerate(pairs)]


def _remedies(offsets: list[int]) -> list[RemedyEntry]:
    return [RemedyEntry(START + timedelta(days=d)) for d in offsets]


@settings(max_examples=150, deadline=None)
@given(rules_st, st.lists(st.tuples(days, ratios), max_size=25),
       st.lists(days, max_size=4), days)
def test_expelled_is_final_and_the_record_is_consistent(
        rules: PerformanceRules, pairs: list[tuple[int, float]], remedy_days: list[int],
        cut: int) -> None:
    """Once expelled on some day, every later as-of date is expelled since the same day; a
    deadline exists exactly while suspended; bids are refused exactly when suspended or
    expelled; the verdict states never improve out of expelled."""
    events, remedies = _events(pairs), _remedies(remedy_days)
    early = record(events, remedies, START + timedelta(days=cut), rules)
    late = record(events, remedies, START + timedelta(days=cut + 200), rules)
    if early.state == RecordState.EXPELLED:
        assert late.state == RecordState.EXPELLED and late.since == early.since
    for r in (early, late):
        assert (r.remedy_deadline is not None) == (r.state == RecordState.SUSPENDED)
        assert r.refuses_bids == (r.state in (RecordState.SUSPENDED, RecordState.EXPELLED))
        assert bool(r.reason) == r.refuses_bids
        if r.state != RecordState.EXPELLED:
            assert r.suspensions_in_window < rules.expel_after_suspensions
        states = [v.state_after for v in r.verdicts]
        if RecordState.EXPELLED in states:
            assert set(states[states.index(RecordState.EXPELLED):]) == {RecordState.EXPELLED}
        assert all(c.state_from != RecordState.EXPELLED or c.state_to == RecordState.EXPELLED
                   for c in r.changes)


@settings(max_examples=150, deadline=None)
@given(rules_st, st.lists(st.tuples(days, ratios), max_size=25), st.data())
def test_without_remedies_more_failures_never_improve_the_state(
        rules: PerformanceRules, pairs: list[tuple[int, float]], data: st.DataObject) -> None:
    """Turning any passed response into a failed one never leaves the VPP better off, on any
    day. With remedies it does not hold, by the rules themselves (hypothesis finds cases): a
    remedy ends a suspension with a clean slate, so an extra failure that brings a suspension,
    remedied, can leave the VPP good where it would have stayed warned; and an earlier first
    suspension can put a later one outside the "one year" of the two-suspension exit."""
    if not pairs:
        return
    i = data.draw(st.integers(0, len(pairs) - 1))
    worse = [*pairs]
    worse[i] = (pairs[i][0], 0.0)
    on = START + timedelta(days=data.draw(days))
    base, other = record(_events(pairs), [], on, rules), record(_events(worse), [], on, rules)
    assert STATE_ORDER[other.state] >= STATE_ORDER[base.state]


@settings(max_examples=150, deadline=None)
@given(rules_st, st.lists(st.tuples(days, ratios), max_size=25), st.lists(days, max_size=4),
       days)
def test_one_more_failure_never_improves_the_state(
        rules: PerformanceRules, pairs: list[tuple[int, float]], remedy_days: list[int],
        cut: int) -> None:
    """With remedies too: a failed response on the as-of day, after everything else, leaves
    the state the same or worse."""
    on = START + timedelta(days=cut)
    kept = [(d, r) for d, r in pairs if d <= cut]
    remedies = _remedies([d for d in remedy_days if d <= cut])
    base = record(_events(kept), remedies, on, rules)
    failed = record([*_events(kept), ev(999, on, 0.0)], remedies, on, rules)
    assert STATE_ORDER[failed.state] >= STATE_ORDER[base.state]


@settings(max_examples=100, deadline=None)
@given(rules_st, st.lists(st.tuples(days, st.sampled_from([0.5, 0.8, 1.2])), max_size=25),
       st.lists(days, max_size=4), days)
def test_passing_responses_alone_keep_the_vpp_good(
        rules: PerformanceRules, pairs: list[tuple[int, float]], remedy_days: list[int],
        cut: int) -> None:
    r = record(_events(pairs), _remedies(remedy_days), START + timedelta(days=cut), rules)
    assert r.state == RecordState.GOOD and all(v.passed for v in r.verdicts)


def test_as_of_is_the_local_date() -> None:
    """The as-of date is the local date in the programme's zone (UTC 20:00 is the next day in
    Shanghai)."""
    r = compute_record([], [], HUNAN, TZ, datetime(2026, 3, 1, 20, 0, tzinfo=UTC))
    assert r.as_of == date(2026, 3, 2)
