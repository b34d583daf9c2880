"""A simulated device: physics behind a register image that follows a device profile.

The same :class:`~device_adapters.profile.Profile` the adapters use defines what is served:
measurement points are encoded from the physics (with the profile's unit, scale, word order and
sign); writable points accept writes within their declared limits (else exception 3, illegal
data value), other addresses refuse writes (exception 2); write-only points mirror into their
``readback`` point. The control state is decoded back from the registers by inverting the
profile's ``control`` section, so any profile is simulated without code. The device watchdog
(``watchdog`` section) falls back by itself when not fed. Time is lazy: the physics advance
whenever the device is accessed, by the clock's elapsed time (real, accelerated, or a jump of
the shared clock). A jump is integrated in the models' own sub-steps (buildings and industrial
loads one simulated minute, chargers 15 minutes; a battery's energy is clamped to its SoC
limits), a watchdog that expired inside it falls back at its expiry, and a gap longer than
:data:`MAX_CATCHUP_S` is integrated over its last ``MAX_CATCHUP_S`` only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from device_adapters.codec import (
    decode_points,
    encode_point,
    from_canonical,
    point_to_kw,
    quantise,
)
from device_adapters.profile import MEASURE_FIELDS, Action, Profile
from device_adapters.registers import DataType, EncodingError
from sim.physics.factory import Physics

log = logging.getLogger(__name__)

ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3
READ_GAP_ALLOWED = 64
#: A device not read for longer than this (simulated s; a ``clock skip``) integrates only the
#: last MAX_CATCHUP_S of the gap: its state has long settled by then, and a 30-day skip would
#: otherwise hold the simulator's event loop for ~43,000 sub-steps per building.
MAX_CATCHUP_S = 2 * 86400.0


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass
class Faults:
    """Faults injected on command (see :mod:`sim.server` for gateway-wide ones)."""

    exception_code: int | None = None  # every request answered with this Modbus exception
    delay_s: float = 0.0  # reply this much later (slow device)
    stuck: bool = False  # registers frozen at their current values
    garbage: bool = False  # replies corrupted on the wire
    silent: bool = False  # requests never answered
    word_swap: bool = False  # 32-bit values served with the wrong word order
    ignore_writes: bool = False  # acknowledges writes but keeps the old values (read-back)

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]


class SimulatedDevice:
    def __init__(self, profile: Profile, physics: Physics, clock: Clock, unit_id: int,
                 min_step_s: float = 0.0) -> None:
        """``min_step_s``: reads closer together than this (in simulated seconds) serve the
        registers as they are, without advancing the physics (cheap under heavy polling)."""
        self.min_step_s = min_step_s
        self.profile = profile
        self.physics = physics
        self.clock = clock
        self.unit_id = unit_id
        self.faults = Faults()
        self.regs: dict[tuple[str, int], int] = {}
        self.values: dict[str, float | str] = {}
        self._owner: dict[tuple[str, int], str] = {}
        for name, p in profile.points.items():
            for i in range(p.count):
                self._owner[(p.function, p.address + i)] = name
        for name, p in sorted(profile.points.items(), key=lambda kv: kv[1].scale_sf is not None):
            if p.default is not None:
                self._store(name, p.default)
            else:
                self._store(name, "" if p.type is DataType.STRING else 0.0)
        self._readable = self._readable_ranges()
        self._last = clock.now()
        self._fed_at: datetime | None = None
        self.watchdog_tripped = False
        self.setpoint_kw: float | None = self.decode_setpoint()
        self.writes = 0
        self._sync_time()
        self.physics.step(0.0, self.setpoint_kw)
        self._publish()

    # -- register image --------------------------------------------------------------------
    def _store(self, name: str, value: float | str) -> None:
        p = self.profile.points[name]
        if not isinstance(value, str):
            value = quantise(self.profile, name, float(value), self.values)
        regs = encode_point(self.profile, name, value, self.values)
        for i, w in enumerate(regs):
            self.regs[(p.function, p.address + i)] = w
        self.values[name] = value

    def _readable_ranges(self) -> dict[str, list[tuple[int, int]]]:
        """Readable address ranges: readable points plus small gaps between them."""
        out: dict[str, list[tuple[int, int]]] = {}
        for fn in ("holding", "input"):
            spans = sorted((p.address, p.address + p.count) for p in self.profile.points.values()
                           if p.function == fn and p.readable)
            merged: list[tuple[int, int]] = []
            for a, b in spans:
                if merged and a - merged[-1][1] <= READ_GAP_ALLOWED and not self._has_writeonly(
                        fn, merged[-1][1], a):
                    merged[-1] = (merged[-1][0], max(merged[-1][1], b))
                else:
                    merged.append((a, b))
            out[fn] = merged
        return out

    def _has_writeonly(self, fn: str, a: int, b: int) -> bool:
        return any(p.function == fn and not p.readable and a <= p.address < b
                   for p in self.profile.points.values())

    def _in_ranges(self, fn: str, address: int, count: int) -> bool:
        return any(a <= address and address + count <= b for a, b in self._readable[fn])

    # -- time, watchdog, physics ----------------------------------------------------------
    def _sync_time(self) -> None:
        set_time = getattr(self.physics, "set_time", None)
        if set_time is not None:
            set_time(self._last)

    def set_watchdog_timeout(self, seconds: float) -> bool:
        """Configure the watchdog's timeout register (as an integrator sets a PLC's), where the
        profile has one, converted to its unit (s or min) and kept within its limits. False
        when the device has no such register."""
        wd = self.profile.watchdog
        if wd.mode != "timer" or wd.timeout_point is None:
            return False
        p = self.profile.points[wd.timeout_point]
        value = seconds / (60.0 if p.unit == "min" else 1.0)
        lo = p.min if p.min is not None else value
        hi = p.max if p.max is not None else value
        self._store(wd.timeout_point, min(max(value, lo), hi))
        self._mirror(wd.timeout_point)
        return True

    def _watchdog_timeout_s(self) -> float | None:
        wd = self.profile.watchdog
        if wd.mode != "timer":
            return None
        if wd.timeout_point is not None:
            v = self.values.get(wd.timeout_point)
            if not isinstance(v, float) or v <= 0:
                return None
            unit = self.profile.points[wd.timeout_point].unit
            return v * (60.0 if unit == "min" else 1.0)
        return wd.timeout_s

    def fall_back(self) -> None:
        """Do what the watchdog does when it expires: write the profile's fall-back (or its
        release) into the control registers; the device then follows them."""
        self._fallback()
        self.setpoint_kw = self.decode_setpoint()
        self.physics.step(0.0, self.setpoint_kw)
        self._publish()

    def _fallback(self) -> None:
        wd = self.profile.watchdog
        actions = self.profile.control.release if wd.fallback == "release" else wd.fallback
        for a in actions:
            self._store(a.point, self._constant(a))
            self._mirror(a.point)
        self.watchdog_tripped = True
        self._fed_at = None
        log.warning("unit %s: watchdog expired, fell back", self.unit_id)

    def _constant(self, a: Action) -> float:
        if isinstance(a.value, str):
            if a.value.startswith("@"):
                v = self.values[a.value[1:]]
                return float(v) if not isinstance(v, str) else 0.0
            return 0.0
        return float(a.value)

    def refresh(self) -> None:
        """Advance physics and watchdog to the clock's now, then publish the registers."""
        now = self.clock.now()
        dt = (now - self._last).total_seconds()
        if dt < self.min_step_s:
            return  # registers are at most min_step_s old: cheap under heavy polling
        if dt > MAX_CATCHUP_S:  # a clock skip: integrate the end of the gap only
            self._last = now - timedelta(seconds=MAX_CATCHUP_S)
            dt = MAX_CATCHUP_S
        timeout = self._watchdog_timeout_s()
        if timeout is not None and self._fed_at is not None:
            trip_at = (self._fed_at - self._last).total_seconds() + timeout
            if trip_at <= dt:
                first = max(trip_at, 0.0)
                self.physics.step(first, self.setpoint_kw)
                self._fallback()
                self.setpoint_kw = self.decode_setpoint()
                dt -= first
        self.physics.step(dt, self.setpoint_kw)
        self._last = now
        self._sync_time()
        self._publish()

    def _publish(self) -> None:
        if self.faults.stuck:
            return
        m = self.profile.measure
        for field_name in MEASURE_FIELDS:  # the physics' attributes have the same names
            ref = getattr(m, field_name)
            value = getattr(self.physics, field_name, None)
            if ref is None or value is None:
                continue
            try:
                self._store(ref.point, from_canonical(self.profile, ref.point, value * ref.sign))
            except EncodingError:
                log.warning("unit %s: cannot encode %s=%s", self.unit_id, ref.point, value)
        wd = self.profile.watchdog
        if wd.remaining_point is not None:
            timeout = self._watchdog_timeout_s() or 0.0
            left = 0.0
            if self._fed_at is not None:
                left = max(0.0, timeout - (self._last - self._fed_at).total_seconds())
            self._store(wd.remaining_point, left)
        extras = {"curtail_remaining": "curtail_remaining_s", "makeup_backlog": "backlog_kwh",
                  "override": "override"}
        for point, attr in extras.items():
            if point in self.profile.points and hasattr(self.physics, attr):
                self._store(point, float(getattr(self.physics, attr)))

    # -- control inversion ----------------------------------------------------------------
    def _branch_setpoint(self, actions: list[Action], sign: float) -> float | None:
        magnitude: float | None = None
        for a in actions:
            v = self.values.get(a.point)
            if not isinstance(v, float):
                return None
            if isinstance(a.value, str) and a.value in ("magnitude", "-magnitude"):
                kw = point_to_kw(self.profile, a.point, v, self.values)
                kw = kw if a.value == "magnitude" else -kw
                if kw < -1e-9 or (magnitude is not None and abs(kw - magnitude) > 1e-6):
                    return None
                magnitude = max(kw, 0.0)
            elif abs(v - self._constant(a)) > 1e-6 * max(1.0, abs(v)):
                return None
        return sign * (magnitude or 0.0)

    def decode_setpoint(self) -> float | None:
        """The setpoint the registers currently express (None = device default behaviour)."""
        c = self.profile.control
        for actions, sign in ((c.positive, 1.0), (c.negative, -1.0), (c.zero or [], 1.0)):
            if actions:
                sp = self._branch_setpoint(actions, sign)
                if sp is not None:
                    return sp
        return None

    def _mirror(self, name: str) -> None:
        p = self.profile.points[name]
        if p.readback is not None:
            self._store(p.readback, self.values[name])

    # -- Modbus access (called by the server) ---------------------------------------------
    def read(self, function: str, address: int, count: int) -> list[int] | int:
        """Registers, or a Modbus exception code."""
        if not self._in_ranges(function, address, count):
            return ILLEGAL_ADDRESS
        self.refresh()
        out = [self.regs.get((function, address + i), 0) for i in range(count)]
        if self.faults.word_swap:
            for i in range(0, count - 1, 2):
                out[i], out[i + 1] = out[i + 1], out[i]
        return out

    def echo(self, address: int, count: int) -> list[int]:
        return [self.regs.get(("holding", address + i), 0) for i in range(count)]

    def write(self, address: int, words: list[int]) -> int | None:
        """Apply a holding-register write; returns a Modbus exception code or None."""
        names: list[str] = []
        for i in range(len(words)):
            owner = self._owner.get(("holding", address + i))
            if owner is None or not self.profile.points[owner].writable:
                return ILLEGAL_ADDRESS
            if owner not in names:
                names.append(owner)
        for n in names:
            p = self.profile.points[n]
            if p.address < address or p.address + p.count > address + len(words):
                return ILLEGAL_ADDRESS  # partial write of a multi-register value
        trial = dict(self.regs)
        for i, w in enumerate(words):
            trial[("holding", address + i)] = w
        try:
            decoded = decode_points(self.profile, names, trial | {})
        except EncodingError:
            return ILLEGAL_VALUE
        for n in names:
            p = self.profile.points[n]
            v = decoded[n]
            if isinstance(v, float) and ((p.min is not None and v < p.min - 1e-9)
                                         or (p.max is not None and v > p.max + 1e-9)):
                return ILLEGAL_VALUE
        self.refresh()
        self.writes += 1
        if self.faults.ignore_writes:
            return None
        fed = False
        for n in names:
            self._store(n, decoded[n])
            self._mirror(n)
            fed = fed or n in self.profile.watchdog.feed_points
        if fed:
            self._fed_at = self._last
            self.watchdog_tripped = False
        self.setpoint_kw = self.decode_setpoint()
        self.physics.step(0.0, self.setpoint_kw)
        self._publish()
        return None

    def snapshot(self) -> dict[str, Any]:
        return {"unit_id": self.unit_id, "profile": self.profile.name,
                "setpoint_kw": self.setpoint_kw, "power_kw": self.physics.power_kw,
                "watchdog_tripped": self.watchdog_tripped}
