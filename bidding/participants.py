"""Who takes part in a grid call: one rule for the daemon's planner and the season simulator.

A device takes part when it is active (enrolled and in service), its owner has not opted it out
(``preferences.participate = false``, or for a while: ``preferences.opt_out_until``, see
:func:`opted_out`), it is reachable now (polled: its state is known) and its owner declared a
share above zero in the event's bid. Settlement settles only those owners, so
planning dispatches only their devices: the two count the same response, and an owner who
declared nothing is not asked to shed without pay. A bid without per-owner shares (``None``)
does not narrow the devices.

Pure: the daemon builds :class:`DeviceStanding` from its ``device`` rows and the poller, the
simulator from its fleet and the plant's states.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: the longest an owner may opt a device out for a while (``opt_out_until``): a day off, a long
#: weekend, a week's holiday; longer than that is ``participate = false``, which the owner
#: lifts himself
OPT_OUT_MAX = timedelta(days=7)


@dataclass(frozen=True)
class DeviceStanding:
    """What the participation rule reads of one device."""

    device_id: int
    owner_id: int
    active: bool = True
    opted_out: bool = False
    online: bool = True
    excluded: bool = False  # taken out of this event by the operator or a fault


def opt_out_until(preferences: Mapping[str, Any] | None) -> datetime | None:
    """The end of the owner's opt-out for a while (aware), None without one (or unreadable:
    the API stores only aware ISO 8601 times)."""
    raw = (preferences or {}).get("opt_out_until")
    if not isinstance(raw, str):
        return None
    try:
        until = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return until if until.tzinfo is not None else None


def opted_out(preferences: Mapping[str, Any] | None, at: datetime) -> bool:
    """The owner's ``participate = false``, or an ``opt_out_until`` after ``at`` (aware): the
    start of the event in question (the offer's, the plan's). A device opted out until ``T``
    takes no part in an event that starts before ``T``, the whole event (a plan does not take
    it in half-way), and takes part again, with nothing to undo, in those that start at ``T``
    or later."""
    if (preferences or {}).get("participate", True) is False:
        return True
    until = opt_out_until(preferences)
    return until is not None and at < until


def current_preferences(preferences: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The preferences without an opt-out that has ended by ``now`` (it no longer does
    anything; a later change is checked without it)."""
    out = dict(preferences or {})
    until = opt_out_until(out)
    if "opt_out_until" in out and (until is None or until <= now):
        del out["opt_out_until"]
    return out


def can_take_part(d: DeviceStanding) -> bool:
    """Active, not opted out, online and not excluded."""
    return d.active and not d.opted_out and d.online and not d.excluded


def declared_owners(owner_declared_kw: Mapping[int, float] | None) -> set[int] | None:
    """Owners with a declared share above zero (kW); None: no per-owner shares."""
    if owner_declared_kw is None:
        return None
    return {int(o) for o, kw in owner_declared_kw.items() if float(kw) > 0}


def participants(devices: Sequence[DeviceStanding],
                 owner_declared_kw: Mapping[int, float] | None) -> list[int]:
    """Ids of the devices that take part (module docstring), in the order given."""
    owners = declared_owners(owner_declared_kw)
    return [d.device_id for d in devices
            if can_take_part(d) and (owners is None or d.owner_id in owners)]
