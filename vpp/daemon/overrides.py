"""Devices that override their setpoints: recognised from telemetry, taken out of the event.

A device *holds* a setpoint once a write of it was verified (read back: outcome ``written`` or
``clamped``). Each control step compares its latest reading with that setpoint: a reading
taken after the write, while the adapter still held it, that shows the device consuming more
than the setpoint plus its kind's tolerance (``[daemon.control] tolerance_pct`` of its rated
power, at least ``min_tolerance_kw``) is an override -- a building's comfort protection lifting
its demand limit, a plant ending a curtailment, a battery that stopped discharging. For its
kind's ``response_s`` after a write the device may still be ramping: the higher of the new and
the previous setpoint is the limit then, and a first setpoint is not judged until that time
has passed. One reading decides (a device that flaps between its cap and its own need is
caught at the first reading above), so an override is found within one poll period. A reading
counts from when it was measured (``DeviceState.measured_at``), not when it was polled: an OCPP
charger's last meter value, pushed before the profile was sent, says nothing about the profile
however late a poll reads it.

Power is in kW, > 0 consumption. Only consumption *above* the setpoint counts: a load drawing
less than its cap is not overriding it. (A valley-filling call's charge that falls short shows
as the event's shortfall, not here.)

A device above its setpoint whose control registers no longer hold it did not override: it
dropped the setpoint by itself -- its watchdog fell back when heartbeats came late, or it
restarted -- and the owner's own protection (a plant's limit, a building's comfort band) leaves
the registers as written. Such a setpoint is written again (:meth:`OverrideWatch.reassert`), at
most ``[daemon.control] reassert_max`` times a device and event; after that, or when its
registers cannot be read, the device is treated as overriding.

An overriding device leaves the event for good: it is recorded in ``GridEvent.detail
["excluded_devices"]`` (reason, setpoint, reading, tolerance, when), audit logged, its pending
setpoint rows of the active plan become ``excluded`` (never sent), it is released to its own
control once (the one write it gets; a device we no longer steer is not left capped) and every
later plan of the event is made without it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from device_adapters.protocol import DeviceState
from vpp.config import ControlSettings
from vpp.device_kinds import GENERATORS, DeviceKind
from vpp.domain.grid_calls import ExcludedDeviceOut
from vpp.errors import DeviceError
from vpp.models import AuditLog, Device, DispatchPlan, GridEvent, Setpoint

if TYPE_CHECKING:
    from vpp.daemon.fleet_runtime import FleetRuntime
    from vpp.daemon.infra import Infra

log = logging.getLogger("vpp.daemon.overrides")

EXCLUDED = "excluded"  # Setpoint.status of rows never sent because the device left the event


@dataclass(frozen=True)
class Held:
    """A verified setpoint a device holds (kW), written at ``written_at`` (daemon clock)."""

    device_id: int
    kind: DeviceKind
    rated_power_kw: float
    setpoint_kw: float
    previous_kw: float | None
    written_at: datetime


@dataclass(frozen=True)
class Override:
    """A reading that broke a held setpoint (kW), taken at ``reading_at``."""

    device_id: int
    kind: str
    setpoint_kw: float
    limit_kw: float
    measured_kw: float
    tolerance_kw: float
    reading_at: datetime

    @property
    def reason(self) -> str:
        return (f"override: measured {self.measured_kw:.1f} kW against a setpoint of "
                f"{self.limit_kw:.1f} kW (tolerance {self.tolerance_kw:.1f} kW)")


def tolerance_kw(c: ControlSettings, kind: DeviceKind, rated_power_kw: float) -> float:
    """How far (kW) above its setpoint a device of ``kind`` may read before it overrides."""
    return max(c.min_tolerance_kw, c.tolerance_pct[kind] / 100.0 * abs(rated_power_kw))


def judge(held: Held, state: DeviceState | None, c: ControlSettings,
          rewritten_at: datetime | None = None) -> Override | None:
    """The override ``state`` shows against ``held``, if any (see the module docstring).
    ``rewritten_at``: the device's last control write; when later than ``held`` (a setpoint
    written again after a late heartbeat) a reading within the kind's response time of it, or
    taken while a write landed, is not judged."""
    if state is None or not state.available:
        return None
    measured = state.measured_at or state.ts  # a pushed meter value may predate the poll
    if measured <= held.written_at or state.detail.get("written_during_read"):
        return None
    if rewritten_at is not None and rewritten_at > held.written_at and (
            (measured - rewritten_at).total_seconds() < c.response_s[held.kind]):
        return None  # still within its response time of the setpoint written again
    active = state.detail.get("active_setpoint_kw", held.setpoint_kw)
    if active is None or abs(float(active) - held.setpoint_kw) > 1e-3:
        return None  # read while the adapter held something else (released, or not yet)
    gen = held.kind in GENERATORS  # its setpoint caps output: it overrides by generating more
    limit = held.setpoint_kw
    if (measured - held.written_at).total_seconds() < c.response_s[held.kind]:
        if held.previous_kw is None:
            return None
        limit = min(limit, held.previous_kw) if gen else max(limit, held.previous_kw)
    tol = tolerance_kw(c, held.kind, held.rated_power_kw)
    if (state.power_kw >= limit - tol) if gen else (state.power_kw <= limit + tol):
        return None
    return Override(held.device_id, held.kind.value, held.setpoint_kw, limit,
                    float(state.power_kw), tol, state.ts)


def device_kinds(s: Session, device_ids: list[int]) -> dict[int, tuple[DeviceKind, float]]:
    """Kind and rated power (kW) of each device."""
    if not device_ids:
        return {}
    return {int(d.id or 0): (DeviceKind(d.kind), float(d.rated_power_kw))
            for d in s.exec(select(Device).where(col(Device.id).in_(device_ids)))}


def excluded_ids(ev: GridEvent) -> set[int]:
    """Devices taken out of this event (for good)."""
    return {int(k) for k in (ev.detail or {}).get("excluded_devices", {})}


def excluded_out(ev: GridEvent) -> list[ExcludedDeviceOut]:
    """The event's excluded devices, for the API."""
    return [ExcludedDeviceOut(device_id=int(k), **v)
            for k, v in sorted((ev.detail or {}).get("excluded_devices", {}).items(),
                               key=lambda kv: int(kv[0]))]


def exclusion_entry(o: Override, at: datetime) -> dict[str, Any]:
    """What the event's record keeps of an exclusion (JSON: kW, ISO times)."""
    return {"reason": o.reason, "at": at.isoformat(),
            **{k: v for k, v in asdict(o).items() if k not in ("device_id", "reading_at")},
            "reading_at": o.reading_at.isoformat()}


def record_exclusions(s: Session, event_id: int, found: list[Override], at: datetime) -> int:
    """Write ``found`` into the event's record and the audit log; mark the devices' pending
    rows of the event's active plans ``excluded``. Returns how many were new."""
    ev = s.get(GridEvent, event_id)
    if ev is None:
        return 0
    detail = dict(ev.detail or {})
    excluded = dict(detail.get("excluded_devices", {}))
    new = [o for o in found if str(o.device_id) not in excluded]
    for o in new:
        excluded[str(o.device_id)] = entry = exclusion_entry(o, at)
        s.add(AuditLog(actor="daemon", action="device_excluded", subject=f"device:{o.device_id}",
                       detail={"event_id": event_id, **entry}))
    if not new:
        return 0
    ev.detail = {**detail, "excluded_devices": excluded}
    s.add(ev)
    plans = [int(p.id or 0) for p in s.exec(select(DispatchPlan).where(
        DispatchPlan.event_id == event_id, DispatchPlan.status == "active"))]
    if plans:
        s.execute(update(Setpoint).where(
            col(Setpoint.plan_id).in_(plans), col(Setpoint.status) == "pending",
            col(Setpoint.device_id).in_([o.device_id for o in new])).values(status=EXCLUDED))
    return len(new)


class OverrideWatch:
    """Per event: the setpoints each device holds, judged against its readings every step."""

    def __init__(self, infra: Infra, fleet: FleetRuntime) -> None:
        self.infra = infra
        self.fleet = fleet
        self._held: dict[int, dict[int, Held]] = {}
        self._reasserted: dict[int, dict[int, int]] = {}  # event -> device -> re-writes
        self._kinds: dict[int, tuple[DeviceKind, float]] = {}

    async def wrote(self, event_id: int, written: dict[int, float], at: datetime) -> None:
        """Record verified writes (device -> kW) made at ``at`` (daemon clock)."""
        missing = [d for d in written if d not in self._kinds]
        if missing:
            self._kinds.update(await self.infra.db.run(device_kinds, missing))
        held = self._held.setdefault(event_id, {})
        for did, kw in written.items():
            if did not in self._kinds:
                continue
            kind, rated = self._kinds[did]
            prev = held.get(did)
            held[did] = Held(did, kind, rated, float(kw),
                             prev.setpoint_kw if prev is not None else None, at)

    def check(self, event_id: int, excluded: set[int]) -> list[Override]:
        """Overrides in the latest readings of the event's devices (not yet excluded)."""
        fleet = self.fleet
        c = self.infra.settings.daemon.control
        found = []
        for did, held in self._held.get(event_id, {}).items():
            if did in excluded:
                continue
            o = judge(held, fleet.latest(did), c, fleet.setpoint_written_at(did))
            if o is not None:
                found.append(o)
        return found

    async def reassert(self, event_id: int, found: list[Override], at: datetime
                       ) -> list[Override]:
        """Write the setpoint again to those of ``found`` whose registers no longer hold it
        (see the module docstring); returns the others: the overrides."""
        budget = self.infra.settings.daemon.control.reassert_max
        counts = self._reasserted.setdefault(event_id, {})
        held = self._held.get(event_id, {})
        overrides = []
        for o in found:
            h = held.get(o.device_id)
            n = counts.get(o.device_id, 0)
            if (h is None or n >= budget
                    or await self.fleet.holds_setpoint(o.device_id) is not False):
                overrides.append(o)
                continue
            counts[o.device_id] = n + 1
            try:
                result = await self.fleet.reassert(o.device_id)
            except DeviceError:
                result = None
            if result is None or not result.verified:
                overrides.append(o)
                continue
            self.infra.metrics.setpoints_reasserted.inc()
            # ramping down from what it read: that reading is the limit for its response time
            held[o.device_id] = Held(h.device_id, h.kind, h.rated_power_kw, h.setpoint_kw,
                                     o.measured_kw, at)
            log.warning("device dropped its setpoint by itself (watchdog fell back or "
                        "restart); written again",
                        extra={"event_id": event_id, "device_id": o.device_id,
                               "setpoint_kw": round(h.setpoint_kw, 3),
                               "measured_kw": round(o.measured_kw, 3), "times": n + 1})
        return overrides

    async def exclude(self, event_id: int, found: list[Override], at: datetime) -> int:
        """Take ``found`` out of the event: record, audit, release (see the module docstring)."""
        infra = self.infra
        n = await infra.db.run(record_exclusions, event_id, found, at)
        held = self._held.get(event_id, {})
        for o in found:
            held.pop(o.device_id, None)
            log.warning("device overrides its setpoint; taken out of the event",
                        extra={"event_id": event_id, "device_id": o.device_id,
                               "setpoint_kw": round(o.limit_kw, 3),
                               "measured_kw": round(o.measured_kw, 3),
                               "tolerance_kw": round(o.tolerance_kw, 3)})
        if found:
            errors = await self.fleet.release([o.device_id for o in found])
            for device_id, err in errors.items():
                log.error("excluded device not released: %s", err,
                          extra={"event_id": event_id, "device_id": device_id})
        return n

    def forget(self, event_id: int) -> None:
        self._held.pop(event_id, None)
        self._reasserted.pop(event_id, None)
