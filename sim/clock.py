"""Simulation time: real time, accelerated real time, a manual clock for tests, and a clock
file that several processes on one machine share (``vpp sim gateways --sim-clock FILE`` and
``vpp serve --sim-clock FILE``).

A :class:`ClockDefinition` says: simulated time was ``start`` when ``time.monotonic()`` read
``monotonic_origin``, and runs ``accel`` simulated seconds per real second from there.
``time.monotonic()`` is CLOCK_MONOTONIC, one system-wide counter on Linux, so two processes on
the same machine (same boot) that read the same definition agree on the simulated time to the
microsecond without talking to each other. The simulator writes the file; :class:`FileClock`
re-reads it whenever it changes (a ``stat`` per call, cached for ``recheck_s`` real seconds), so
a ``clock speed 120`` or ``clock skip 23h`` typed on the simulator's stdin reaches the daemon
within that time. Simulated time never runs backwards: a speed change keeps the current
simulated time (it re-anchors the definition), a skip only goes forward.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from vpp.errors import ValidationError
from vpp.timeutil import now as tz_now
from vpp.timeutil import require_aware

log = logging.getLogger(__name__)

FORMAT = "xiang-vpp-sim-clock/1"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
MAX_ACCEL = 100_000.0  # simulated seconds per real second


class SimClock:
    """``now()`` = ``start + (monotonic elapsed) * accel``; ``accel=60`` runs a minute per second."""

    def __init__(self, accel: float = 1.0, start: datetime | None = None) -> None:
        if accel <= 0:
            raise ValueError(f"acceleration must be > 0, got {accel}")
        self.accel = accel
        self.start = require_aware(start) if start is not None else tz_now()
        self._m0 = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._m0) * self.accel)


class ManualClock:
    """Time moves only when a test calls :meth:`advance`."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = require_aware(start) if start is not None else tz_now()

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


def _boot_id() -> str | None:
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def _check_accel(accel: float) -> float:
    if not 0 < accel <= MAX_ACCEL:
        raise ValidationError(f"clock speed must be > 0 and <= {MAX_ACCEL:g} simulated seconds "
                              f"per second, got {accel:g}")
    return float(accel)


@dataclass(frozen=True)
class ClockDefinition:
    """Simulated time ``start`` (aware) at ``time.monotonic() == monotonic_origin``, running
    ``accel`` simulated seconds per real second. ``boot_id``: the machine boot the monotonic
    origin belongs to (None where the system does not say)."""

    start: datetime
    accel: float
    monotonic_origin: float
    boot_id: str | None = None

    @classmethod
    def starting(cls, start: datetime | None = None, accel: float = 1.0) -> ClockDefinition:
        """A clock at ``start`` (default: now, in Asia/Shanghai) from this moment on."""
        begin = require_aware(start, "simulated start") if start is not None else tz_now()
        return cls(begin, _check_accel(accel), time.monotonic(), _boot_id())

    def at(self, monotonic_s: float) -> datetime:
        """The simulated time when ``time.monotonic()`` reads ``monotonic_s``."""
        return self.start + timedelta(seconds=(monotonic_s - self.monotonic_origin) * self.accel)

    def now(self) -> datetime:
        return self.at(time.monotonic())

    def with_speed(self, accel: float) -> ClockDefinition:
        """From now on at ``accel``; the simulated time carries on from where it is."""
        m = time.monotonic()
        return ClockDefinition(self.at(m), _check_accel(accel), m, self.boot_id)

    def skipped(self, seconds: float) -> ClockDefinition:
        """Jump ``seconds`` (> 0) ahead at once; the speed is kept."""
        if not seconds > 0:
            raise ValidationError(f"a clock skip must go forward, got {seconds:g} s")
        m = time.monotonic()
        return ClockDefinition(self.at(m) + timedelta(seconds=seconds), self.accel, m,
                               self.boot_id)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "start": self.start.isoformat(),
                           "accel": self.accel, "monotonic_origin": self.monotonic_origin,
                           "boot_id": self.boot_id}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "clock file") -> ClockDefinition:
        try:
            raw = json.loads(text)
            if raw.get("format") != FORMAT:
                raise ValueError(f"format is {raw.get('format')!r}, expected {FORMAT!r}")
            start = require_aware(datetime.fromisoformat(raw["start"]), "start")
            d = cls(start, _check_accel(float(raw["accel"])), float(raw["monotonic_origin"]),
                    raw.get("boot_id"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValidationError(f"{source}: not a simulation clock definition: {exc}") from None
        here = _boot_id()
        if d.boot_id is not None and here is not None and d.boot_id != here:
            raise ValidationError(f"{source}: written on another machine or before a reboot "
                                  "(its monotonic origin means nothing here); restart the "
                                  "simulator")
        return d


def write_definition(path: Path, definition: ClockDefinition) -> None:
    """Write ``definition`` to ``path`` atomically (readers see the old or the new, never half)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(definition.to_json())
    os.replace(tmp, path)


def read_definition(path: Path) -> ClockDefinition:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValidationError(f"simulation clock {path}: {exc.strerror or exc}; start the "
                              f"simulator with --sim-clock {path} first") from None
    return ClockDefinition.from_json(text, str(path))


class FileClock:
    """The simulated time of a clock file, following its changes.

    ``now()`` re-reads the file when its identity (inode, size, mtime) changed, checked at most
    every ``recheck_s`` real seconds; a file that disappears or cannot be parsed keeps the last
    good definition (logged once). ``now()`` never returns less than it returned before.
    """

    def __init__(self, path: Path, recheck_s: float = 0.1) -> None:
        self.path = Path(path)
        self.recheck_s = recheck_s
        self.definition = read_definition(self.path)
        self._key = self._stat_key()
        self._checked = time.monotonic()
        self._last: datetime | None = None
        self._warned = False

    def _stat_key(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _refresh(self) -> None:
        m = time.monotonic()
        if m - self._checked < self.recheck_s:
            return
        self._checked = m
        key = self._stat_key()
        if key == self._key:
            return
        try:
            new = read_definition(self.path)
        except ValidationError as exc:
            if not self._warned:
                log.warning("simulation clock not re-read, keeping the last one: %s", exc.message)
                self._warned = True
            return
        self._key, self._warned = key, False
        if new != self.definition:
            log.info("simulation clock changed: %s at %gx", new.now().isoformat(), new.accel)
            self.definition = new

    @property
    def accel(self) -> float:
        """Simulated seconds per real second, now."""
        self._refresh()
        return self.definition.accel

    def rate(self) -> float:
        return self.accel

    def now(self) -> datetime:
        self._refresh()
        t = self.definition.now()
        if self._last is not None and t < self._last:
            return self._last
        self._last = t
        return t


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """``23h``, ``90m``, ``1h30m``, ``45s``, ``1d`` -> seconds."""
    t = text.strip().lower()
    parts = _DURATION.findall(t)
    if not t or "".join(n + u for n, u in parts) != t:
        raise ValidationError(f"not a duration: {text!r} (use e.g. 23h, 90m, 1h30m, 45s)")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


class ClockControl:
    """What the simulator's ``clock ...`` commands do to its clock file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def show(self) -> str:
        d = read_definition(self.path)
        return f"clock: simulated {d.now().isoformat(timespec='seconds')}, speed {d.accel:g}x"

    def speed(self, accel: float) -> str:
        write_definition(self.path, read_definition(self.path).with_speed(accel))
        return self.show()

    def skip(self, seconds: float) -> str:
        write_definition(self.path, read_definition(self.path).skipped(seconds))
        return self.show()

    def skip_to(self, when: datetime) -> str:
        d = read_definition(self.path)
        ahead = (require_aware(when, "clock skip-to time") - d.now()).total_seconds()
        if ahead <= 0:
            raise ValidationError(f"{when.isoformat()} is not ahead of the simulated time "
                                  f"{d.now().isoformat(timespec='seconds')}")
        return self.skip(ahead)

    def command(self, args: list[str]) -> str:
        """``clock``, ``clock speed X``, ``clock skip DURATION``, ``clock skip-to ISO-TIME``."""
        if not args:
            return self.show()
        verb = args[0].lower()
        if verb == "speed" and len(args) == 2:
            try:
                accel = float(args[1].removesuffix("x"))
            except ValueError:
                raise ValidationError(f"clock speed: not a number: {args[1]!r}") from None
            return self.speed(accel)
        if verb == "skip" and len(args) == 2:
            return self.skip(parse_duration(args[1]))
        if verb == "skip-to" and len(args) == 2:
            try:
                when = datetime.fromisoformat(args[1])
            except ValueError:
                raise ValidationError(f"clock skip-to: not an ISO time: {args[1]!r}") from None
            if when.tzinfo is None:
                raise ValidationError(f"clock skip-to: give a UTC offset: {args[1]!r}")
            return self.skip_to(when)
        raise ValidationError("usage: clock | clock speed X | clock skip DURATION (23h, 90m) | "
                              "clock skip-to 2026-07-15T13:50+08:00")
