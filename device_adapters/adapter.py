"""Profile-driven Modbus adapter: one implementation of the adapter protocol for every profile
(and for SunSpec devices, whose profile is built at discovery).

Safe writes: the setpoint is clamped to the device's declared limits (logged, reported as
``clamped``); each register value is checked against the profile's ``min``/``max`` for that
point and clamped again rather than written out of range; only points the profile marks
writable are ever written; every write is read back (from the point itself or its ``readback``
point) and a mismatch makes ``verified`` False with an error. The heartbeat feeds the device's
watchdog as the profile says; devices without one get an aggregator-side lease: if no new
setpoint arrives within ``lease_s``, :meth:`heartbeat` releases the device.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from device_adapters.codec import (
    BlockDecoder,
    compile_decoder,
    decode_points,
    encode_point,
    kw_to_point,
    point_scale,
    point_to_kw,
    quantise,
    to_canonical,
)
from device_adapters.errors import ImplausibleValue, MalformedReply, UnsafeWrite
from device_adapters.flex import flexibility
from device_adapters.modbus_client import GatewayClient, control_requests
from device_adapters.profile import (
    CURRENT_UNITS,
    MEASURE_FIELDS,
    UNIT_FACTORS,
    Action,
    Profile,
    plan_blocks,
)
from device_adapters.protocol import DeviceState, SetpointResult, clamp_setpoint
from device_adapters.registers import DataType, EncodingError, resolution
from vpp.device_kinds import DeviceKind
from vpp.errors import DeviceError
from vpp.timeutil import now as tz_now

log = logging.getLogger(__name__)

#: |power| may exceed the rating by this factor before a reading is called implausible.
PLAUSIBLE_OVER_RATING = 1.5


_P = ParamSpec("_P")
_T = TypeVar("_T")


def _control(fn: Callable[_P, Awaitable[_T]]) -> Callable[_P, Coroutine[Any, Any, _T]]:
    """The method's requests go before waiting telemetry reads on the gateway's connection
    (:func:`device_adapters.modbus_client.control_requests`)."""
    @functools.wraps(fn)
    async def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        with control_requests():
            return await fn(*args, **kwargs)
    return run


class ProfileAdapter:
    """A device (unit id) behind a :class:`GatewayClient`, driven by its :class:`Profile`."""

    def __init__(
        self,
        client: GatewayClient,
        profile: Profile,
        *,
        device_id: int,
        unit_id: int,
        kind: DeviceKind,
        rated_power_kw: float,
        min_setpoint_kw: float,
        max_setpoint_kw: float,
        params: dict[str, Any] | None = None,
        clock: Callable[[], datetime] = tz_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.profile = profile
        self.device_id = device_id
        self.unit_id = unit_id
        self.kind = kind
        self.rated_power_kw = rated_power_kw
        self.min_setpoint_kw = min_setpoint_kw
        self.max_setpoint_kw = max_setpoint_kw
        self.params = dict(params or {})
        self._clock = clock
        self._monotonic = monotonic
        self._poll_names = profile.poll_points()
        self._poll_blocks = plan_blocks(profile, self._poll_names)
        self._poll_decoder = compile_decoder(profile, self._poll_names, self._poll_blocks)
        # field -> (point, its unit's factor to the canonical unit, or None: via the current
        # factor, sign); None: the profile does not measure it
        self._measures: dict[str, tuple[str, float | None, int] | None] = {}
        for f in MEASURE_FIELDS:
            ref = getattr(profile.measure, f)
            if ref is None:
                self._measures[f] = None
                continue
            unit = profile.points[ref.point].unit
            self._measures[f] = (ref.point, None if unit in CURRENT_UNITS else UNIT_FACTORS[unit],
                                 ref.sign)
        self._context: dict[str, float | str] = {}
        self.active_setpoint_kw: float | None = None
        self.setpoint_written_at: datetime | None = None  # the last control write (clock)
        self._control_writes = 0
        self._lease_started: float | None = None
        self._counter = 0

    @functools.cached_property
    def energy_resolution_kwh(self) -> float | None:
        """One step of the energy counter in kWh (None: no counter, or SunSpec-scaled); the
        profile's, computed once (read on every poll)."""
        ref = self.profile.measure.energy_kwh
        if ref is None or self.profile.points[ref.point].scale_sf is not None:
            return None
        p = self.profile.points[ref.point]
        return to_canonical(self.profile, ref.point, resolution(p.type, p.scale))

    # -- reading --------------------------------------------------------------------------
    async def read_points(self, names: list[str]) -> dict[str, float | str]:
        """Read and decode the named points (in as few requests as the profile allows)."""
        if names is self._poll_names and self._poll_decoder is not None:
            return await self._read_poll_points(self._poll_decoder)
        names = list(dict.fromkeys(names))
        for n in list(names):
            sf = self.profile.points[n].scale_sf
            if sf:
                names.append(sf)
        blocks = (self._poll_blocks if names == self._poll_names
                  else plan_blocks(self.profile, names))
        regs: dict[tuple[str, int], int] = {}
        for b in blocks:
            words = await self.client.read(self.unit_id, b.function, b.address, b.count)
            for i, w in enumerate(words):
                regs[(b.function, b.address + i)] = w
        try:
            values = decode_points(self.profile, names, regs)
        except EncodingError as exc:
            raise MalformedReply(f"device {self.device_id}: {exc}") from None
        for n in names:
            self._check_valid(n, values[n])
        self._context.update(values)
        return values

    async def _read_poll_points(self, decoder: BlockDecoder) -> dict[str, float | str]:
        """:meth:`read_points` of the poll's points through their compiled decoder: the same
        reads, values and checks, without a dictionary of registers."""
        words = [await self.client.read(self.unit_id, b.function, b.address, b.count)
                 for b in self._poll_blocks]
        try:
            values = decoder.decode(words)
        except EncodingError as exc:
            raise MalformedReply(f"device {self.device_id}: {exc}") from None
        for n, v in values.items():
            self._check_valid(n, v)
        self._context.update(values)
        return values

    def _check_valid(self, name: str, value: float | str) -> None:
        p = self.profile.points[name]
        if isinstance(value, str):
            return
        if (p.valid_min is not None and value < p.valid_min) or (
            p.valid_max is not None and value > p.valid_max
        ):
            raise ImplausibleValue(
                f"device {self.device_id}: {name} = {value:g} outside plausible range "
                f"[{p.valid_min}, {p.valid_max}]"
            )

    def _measure(self, values: dict[str, float | str], field: str) -> float | None:
        m = self._measures[field]
        if m is None:
            return None
        point, factor, sign = m
        raw = values[point]
        if isinstance(raw, str):
            raise MalformedReply(f"device {self.device_id}: {point} is not a number")
        canonical = raw * factor if factor is not None else to_canonical(self.profile, point, raw)
        return canonical * sign + 0.0  # no "-0.0"

    async def read_state(self) -> DeviceState:
        t0 = time.perf_counter()
        writes = self._control_writes
        values = await self.read_points(self._poll_names)
        power = self._measure(values, "power_kw")
        assert power is not None
        limit = self.rated_power_kw * PLAUSIBLE_OVER_RATING + 0.5
        if abs(power) > limit:
            raise ImplausibleValue(
                f"device {self.device_id}: power {power:.1f} kW beyond {PLAUSIBLE_OVER_RATING}x "
                f"its rating of {self.rated_power_kw:g} kW"
            )
        soc = self._measure(values, "soc_pct")
        if soc is not None and not 0.0 <= soc <= 100.0:
            raise ImplausibleValue(f"device {self.device_id}: state of charge {soc:g} %")
        temp = self._measure(values, "indoor_temp_c")
        down, up = flexibility(self.kind, power, self.min_setpoint_kw, self.max_setpoint_kw,
                               soc, self.params)
        return DeviceState(
            device_id=self.device_id, ts=self._clock(), power_kw=power,
            energy_kwh=self._measure(values, "energy_kwh"), soc_pct=soc, indoor_temp_c=temp,
            available=True, flex_down_kw=down, flex_up_kw=up,
            site_import_kw=self._measure(values, "site_import_kw"),
            detail={"latency_ms": (time.perf_counter() - t0) * 1000.0,
                    "active_setpoint_kw": self.active_setpoint_kw,
                    # a control write landed while these registers were read: the reading may
                    # show the device before it (not judged against the new setpoint)
                    "written_during_read": self._control_writes != writes},
        )

    # -- writing --------------------------------------------------------------------------
    def _context_points(self, actions: list[Action]) -> list[str]:
        need: list[str] = []
        for a in actions:
            p = self.profile.points[a.point]
            if p.percent_of:
                need.append(p.percent_of)
            if p.scale_sf:
                need.append(p.scale_sf)
            if isinstance(a.value, str) and a.value.startswith("@"):
                need.append(a.value[1:])
        return [n for n in dict.fromkeys(need) if n not in self._context]

    def _action_value(self, a: Action, magnitude_kw: float) -> float:
        if isinstance(a.value, int | float):
            return float(a.value)
        if a.value.startswith("@"):
            v = self._context[a.value[1:]]
            if isinstance(v, str):
                raise EncodingError(f"{a.value} is not a number")
            return float(v)
        kw = magnitude_kw if a.value == "magnitude" else -magnitude_kw
        return kw_to_point(self.profile, a.point, kw, self._context)

    def _inside(self, name: str, value: float, bounds_kw: tuple[float, float], lo: float,
                hi: float) -> float:
        """Rounding to a register step must not leave the declared limits: move a quantised
        magnitude one step back inside ``bounds_kw`` (magnitudes, kW) when it fell outside,
        as long as the point's own range allows it."""
        p = self.profile.points[name]
        step = resolution(p.type, point_scale(self.profile, name, self._context))
        if step == 0.0:
            return value
        if self._within(name, value, bounds_kw):
            return value
        kw = abs(point_to_kw(self.profile, name, value, self._context))
        direction = 1.0 if value >= 0 else -1.0
        moved = value - direction * step if kw > bounds_kw[1] else value + direction * step
        if lo <= moved <= hi and self._within(name, moved, bounds_kw):
            return moved
        # the declared range is narrower than one register step: no value is safe to write
        raise UnsafeWrite(
            f"device {self.device_id}: no value of {name} (step {step:g}) lies within the "
            f"declared limits [{bounds_kw[0]:g}, {bounds_kw[1]:g}] kW; nothing written"
        )

    def _within(self, name: str, value: float, bounds_kw: tuple[float, float]) -> bool:
        kw = abs(point_to_kw(self.profile, name, value, self._context))
        tol = 1e-9 * max(1.0, abs(kw))
        return bounds_kw[0] - tol <= kw <= bounds_kw[1] + tol

    async def _plan_actions(
        self, actions: list[Action], magnitude_kw: float,
        bounds_kw: tuple[float, float] | None = None,
    ) -> tuple[list[tuple[str, float, int, list[int]]], bool]:
        """The value each action writes, checked and encoded: ([(point, value, address,
        registers)], clamped_by_point_limits). Nothing is written."""
        missing = self._context_points(actions)
        if missing:
            await self.read_points(missing)
        planned: list[tuple[str, float, int, list[int]]] = []
        clamped = False
        for a in actions:
            p = self.profile.points[a.point]
            if not p.writable:  # the profile validator prevents this; defend anyway
                raise UnsafeWrite(f"point {a.point} is not writable")
            value = self._action_value(a, magnitude_kw)
            lo = p.min if p.min is not None else float("-inf")
            hi = p.max if p.max is not None else float("inf")
            if not lo <= value <= hi:
                log.warning("device %s: %s = %g outside [%s, %s]; clamped", self.device_id,
                            a.point, value, p.min, p.max)
                value = min(max(value, lo), hi)
                clamped = True
            value = quantise(self.profile, a.point, value, self._context)
            if bounds_kw is not None and a.value in ("magnitude", "-magnitude"):
                value = self._inside(a.point, value, bounds_kw, lo, hi)
            planned.append((a.point, value, p.address,
                            encode_point(self.profile, a.point, value, self._context)))
        return planned, clamped

    async def _write_actions(
        self, actions: list[Action], magnitude_kw: float,
        bounds_kw: tuple[float, float] | None = None,
    ) -> tuple[list[tuple[str, float]], bool]:
        """Write the actions; returns ([(point, written value)], clamped_by_point_limits).
        Every value is worked out and checked before any is written, so a refusal writes
        nothing."""
        planned, clamped = await self._plan_actions(actions, magnitude_kw, bounds_kw)
        written: list[tuple[str, float]] = []
        for name, value, address, regs in planned:
            await self.client.write(self.unit_id, address, regs)
            written.append((name, value))
        return written, clamped

    async def _verify(self, written: list[tuple[str, float]]) -> tuple[dict[str, float], list[str]]:
        targets = {name: (self.profile.points[name].readback or name) for name, _ in written}
        values = await self.read_points(list(dict.fromkeys(targets.values())))
        back: dict[str, float] = {}
        mismatches: list[str] = []
        for name, value in written:
            got = values[targets[name]]
            if isinstance(got, str):
                mismatches.append(f"{name}: read back text {got!r}")
                continue
            back[name] = got
            p = self.profile.points[targets[name]]
            # the value written was quantised to the register's step: it reads back exactly,
            # but for the scale's float rounding (within half a step; one whole step would
            # let an enable flag written 1 read back 0)
            tol = max(resolution(p.type, p.scale) * 0.5, 1e-5 * max(abs(value), 1.0))
            if p.type in (DataType.FLOAT32, DataType.FLOAT64):
                tol = max(tol, 1e-6 * abs(value) + 1e-6)
            if abs(got - value) > tol:
                mismatches.append(f"{name} wrote {value:g}, read back {got:g}")
        return back, mismatches

    def _bounds_kw(self, value: float) -> tuple[float, float]:
        """The magnitude limits (kW) of a setpoint of ``value``'s sign."""
        if value >= 0:
            return max(self.min_setpoint_kw, 0.0), self.max_setpoint_kw
        return max(-self.max_setpoint_kw, 0.0), -self.min_setpoint_kw

    @_control
    async def holds_setpoint(self) -> bool | None:
        """Whether the device's control registers still express the setpoint this adapter
        holds, read back as a write is (None: it holds none, or its profile cannot express
        it). False when the device left it by itself -- its watchdog fell back, or it
        restarted -- which is not the owner overriding it: the registers say so, where an
        owner's override (a plant's own limit, a building's comfort protection) leaves them
        as written and shows only in the power. Raises DeviceError when unreadable."""
        value = self.active_setpoint_kw
        if value is None:
            return None
        actions = self.profile.control.branch(value)
        if not actions:
            return None
        try:
            planned, _ = await self._plan_actions(actions, abs(value), self._bounds_kw(value))
        except (EncodingError, UnsafeWrite):
            return None
        _, mismatches = await self._verify([(name, v) for name, v, _, _ in planned])
        return not mismatches

    @_control
    async def apply_setpoint(self, setpoint_kw: float) -> SetpointResult:
        """Clamp to the declared limits, write the profile's control writes, read back."""
        try:
            value, clamped = clamp_setpoint(float(setpoint_kw), self.min_setpoint_kw,
                                            self.max_setpoint_kw)
        except ValueError as exc:
            return SetpointResult(self.device_id, setpoint_kw, 0.0, False, None, False, str(exc))
        if clamped:
            log.warning("device %s: setpoint %g kW outside [%g, %g]; clamped to %g",
                        self.device_id, setpoint_kw, self.min_setpoint_kw,
                        self.max_setpoint_kw, value)
        actions = self.profile.control.branch(value)
        if not actions:
            return SetpointResult(self.device_id, setpoint_kw, value, clamped, None, False,
                                  f"profile {self.profile.name} cannot apply {value:g} kW")
        sign = 1.0 if value >= 0 else -1.0
        try:
            written, point_clamped = await self._write_actions(actions, abs(value),
                                                               self._bounds_kw(value))
            written_kw = value
            mag = [(n, v) for (n, v), a in zip(written, actions, strict=True)
                   if a.value in ("magnitude", "-magnitude")]
            if mag:
                written_kw = sign * abs(point_to_kw(self.profile, mag[0][0], mag[0][1],
                                                    self._context))
            # the register value back in kW can land a rounding step outside the limits it
            # was clamped to (-56.66900000001 for -56.669); hold the value inside them
            self.active_setpoint_kw = min(max(written_kw, self.min_setpoint_kw),
                                          self.max_setpoint_kw)
            self._lease_started = self._monotonic()
            self._note_write()
            back, mismatches = await self._verify(written)
        except (DeviceError, EncodingError) as exc:
            return SetpointResult(self.device_id, setpoint_kw, value, clamped, None, False,
                                  str(exc))
        readback_kw = None
        if mag:
            readback_kw = sign * abs(point_to_kw(self.profile, mag[0][0], back[mag[0][0]],
                                                 self._context))
        error = None
        if mismatches:
            error = f"read-back mismatch on device {self.device_id}: " + "; ".join(mismatches)
            log.error(error)
        return SetpointResult(
            device_id=self.device_id, requested_kw=setpoint_kw, written_kw=written_kw,
            clamped=clamped or point_clamped, readback_kw=readback_kw,
            verified=not mismatches, error=error,
        )

    @_control
    async def release(self) -> None:
        """Write the profile's release writes (device back to its own default behaviour)."""
        if self.profile.control.release:
            await self._write_actions(self.profile.control.release, 0.0)
            self._note_write()
        self.active_setpoint_kw = None
        self._lease_started = None

    def _note_write(self) -> None:
        self.setpoint_written_at = self._clock()
        self._control_writes += 1

    @_control
    async def reassert(self) -> SetpointResult | None:
        """Write the held setpoint again (the device's watchdog expired before a feed: it fell
        back meanwhile), without renewing the aggregator's lease on it; None when none is
        held."""
        if self.active_setpoint_kw is None:
            return None
        lease = self._lease_started
        result = await self.apply_setpoint(self.active_setpoint_kw)
        self._lease_started = lease
        return result

    @property
    def lease_expired(self) -> bool:
        return (self._lease_started is not None
                and self._monotonic() - self._lease_started > self.profile.heartbeat.lease_s)

    @_control
    async def heartbeat(self) -> None:
        """Feed the device's watchdog; release the device when our own lease has expired."""
        if self.active_setpoint_kw is not None and self._lease_started is None:
            self._lease_started = self._monotonic()  # a setpoint restored after a restart
        if self.active_setpoint_kw is not None and self.lease_expired:
            log.warning("device %s: lease expired without a new setpoint; releasing",
                        self.device_id)
            await self.release()
            return
        hb = self.profile.heartbeat
        if hb.mode == "rewrite":
            if self.active_setpoint_kw is not None:
                # the limits may have been narrowed since the setpoint was written
                value, clamped = clamp_setpoint(self.active_setpoint_kw, self.min_setpoint_kw,
                                                self.max_setpoint_kw)
                if clamped:
                    log.warning("device %s: held setpoint %g kW now outside [%g, %g]; "
                                "re-written as %g", self.device_id, self.active_setpoint_kw,
                                self.min_setpoint_kw, self.max_setpoint_kw, value)
                    self.active_setpoint_kw = value
                bounds = ((max(self.min_setpoint_kw, 0.0), self.max_setpoint_kw) if value >= 0
                          else (max(-self.max_setpoint_kw, 0.0), -self.min_setpoint_kw))
                await self._write_actions(self.profile.control.branch(value), abs(value), bounds)
        elif hb.mode == "write" and hb.point is not None:
            p = self.profile.points[hb.point]
            v = hb.value if hb.value is not None else 1.0
            await self.client.write(self.unit_id, p.address,
                                    encode_point(self.profile, hb.point, v, self._context))
        elif hb.mode == "counter" and hb.point is not None:
            self._counter = (self._counter + 1) % 65536
            p = self.profile.points[hb.point]
            await self.client.write(
                self.unit_id, p.address,
                encode_point(self.profile, hb.point, float(self._counter), self._context))
