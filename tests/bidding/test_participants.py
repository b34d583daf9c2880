"""Who takes part in a call (bidding.participants): the one rule the daemon's planner and the
season simulator apply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from bidding.participants import (
    DeviceStanding,
    can_take_part,
    current_preferences,
    opt_out_until,
    opted_out,
    participants,
)

T0 = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)


def test_each_condition_keeps_a_device_out() -> None:
    fleet = [
        DeviceStanding(1, owner_id=10),
        DeviceStanding(2, owner_id=10, active=False),  # pending, retired, quarantined...
        DeviceStanding(3, owner_id=10, opted_out=True),
        DeviceStanding(4, owner_id=10, online=False),
        DeviceStanding(5, owner_id=10, excluded=True),  # taken out by the operator / a fault
        DeviceStanding(6, owner_id=20),  # its owner declared 0
        DeviceStanding(7, owner_id=30),  # its owner is not in the bid
    ]
    assert participants(fleet, {10: 120.0, 20: 0.0}) == [1]
    assert [d.device_id for d in fleet if can_take_part(d)] == [1, 6, 7]


def test_a_bid_without_owner_shares_does_not_narrow_the_devices() -> None:
    fleet = [DeviceStanding(1, owner_id=10), DeviceStanding(2, owner_id=20, online=False)]
    assert participants(fleet, None) == [1]
    assert participants(fleet, {}) == []


def test_only_an_explicit_false_opts_out() -> None:
    assert opted_out({"participate": False}, T0)
    assert not opted_out(None, T0) and not opted_out({}, T0)
    assert not opted_out({"participate": True}, T0)
    assert not opted_out({"participate": 0}, T0)  # a stored 0 is not the owner's "false"


def test_an_opt_out_for_a_while_ends_by_itself() -> None:
    """Out of the events that start before the expiry (one in progress included), in again
    from the expiry on; an expired or unreadable value does nothing."""
    until = T0 + timedelta(hours=20)
    prefs = {"opt_out_until": until.astimezone(timezone(timedelta(hours=8))).isoformat()}  # any offset
    assert opt_out_until(prefs) == until
    assert opted_out(prefs, T0) and opted_out(prefs, until - timedelta(minutes=15))
    assert not opted_out(prefs, until) and not opted_out(prefs, until + timedelta(days=1))
    assert opted_out({**prefs, "participate": False}, until + timedelta(days=1))
    for bad in ("2026-07-16T02:00", "tomorrow", 5):  # naive, not a time, not a string
        assert opt_out_until({"opt_out_until": bad}) is None
        assert not opted_out({"opt_out_until": bad}, T0)
    assert current_preferences(prefs, T0) == prefs
    assert current_preferences({**prefs, "comfort_min_c": 23}, until) == {"comfort_min_c": 23}
