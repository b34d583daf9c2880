"""Who takes part in a grid call: one rule for the daemon's planner and the season simulator.

A device takes part when it is active (enrolled and in service), its owner has not opted it out
(``preferences.participate = false``), it is reachable now (polled: its state is known) and its
owner declared a share above zero in the event's bid. Settlement settles only those owners, so
planning dispatches only their devices: the two count the same response, and an owner who
declared nothing is not asked to shed without pay. A bid without per-owner shares (``None``)
does not narrow the devices.

Pure: the daemon builds :class:`DeviceStanding` from its ``device`` rows and the poller, the
simulator from its fleet and the plant's states.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeviceStanding:
    """What the participation rule reads of one device."""

    device_id: int
    owner_id: int
    active: bool = True
    opted_out: bool = False
    online: bool = True
    excluded: bool = False  # taken out of this event by the operator or a fault


def opted_out(preferences: Mapping[str, Any] | None) -> bool:
    """The owner's ``participate = false`` preference."""
    return (preferences or {}).get("participate", True) is False


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
