"""Simulation time: real time, accelerated real time, or a manual clock for tests."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from vpp.timeutil import now as tz_now
from vpp.timeutil import require_aware


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
