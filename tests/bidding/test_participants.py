"""Who takes part in a call (bidding.participants): the one rule the daemon's planner and the
season simulator apply."""

from __future__ import annotations

from bidding.participants import DeviceStanding, can_take_part, opted_out, participants


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
    assert opted_out({"participate": False})
    assert not opted_out(None) and not opted_out({}) and not opted_out({"participate": True})
    assert not opted_out({"participate": 0})  # a stored 0 is not the owner's "false"
