"""Heartbeats: feed every polled device's watchdog and check the aggregator's leases, on a loop
of their own, apart from the poll cycle.

One place for the heartbeat mechanism, used by the daemon
(:class:`vpp.daemon.fleet_runtime.FleetRuntime`, as its supervised ``heartbeat`` loop) and by
``vpp poll`` (:meth:`vpp.poller.Poller.run`). A poll cycle held up by a silent device (timeouts
x retries) must never delay the heartbeats past a device's watchdog, so:

- the period is ``heartbeat_fraction`` of the shortest known device watchdog timeout, at most
  ``polling.watchdog_period_s`` (real seconds; a simulated clock running ``clock_rate()`` times
  real time shortens it that much);
- each device is fed by its own task: a step waits at most one period, and a heartbeat still
  waiting on a slow device carries on into the next step (that device is not fed twice)
  instead of holding up the others;
- one operation at a time per device (:meth:`Heartbeats.device_lock`, held by setpoint writes
  too); a device known offline is skipped (the poller retries it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from device_adapters.adapter import ProfileAdapter
from vpp.config import PollingSettings
from vpp.errors import DeviceError

if TYPE_CHECKING:
    from vpp.poller import Poller

log = logging.getLogger("vpp.heartbeats")

#: seconds per unit of a watchdog timeout point (Huawei's forced-mode duration is in minutes)
SECONDS_PER = {"s": 1.0, "min": 60.0, "h": 3600.0}


#: at most one "heartbeats late" warning this often (real s)
LATE_LOG_S = 60.0


def _real_rate() -> float:
    return 1.0


class Heartbeats:
    """The heartbeat loop over the devices of ``poller`` (its gateways' adapters, read at each
    step, so devices added or dropped meanwhile are followed).

    ``clock_rate``: the devices' clock's seconds per real second; ``on_failure``: called once
    per failed device heartbeat (the daemon's metric); ``on_period``: called with the new
    period (real s) when it changes (the daemon's supervisor); ``on_reassert``: called per
    setpoint written again after a late feed (the daemon's metric)."""

    def __init__(self, poller: Poller, settings: PollingSettings, *,
                 clock_rate: Callable[[], float] = _real_rate,
                 on_failure: Callable[[], None] | None = None,
                 on_period: Callable[[float], None] | None = None,
                 on_reassert: Callable[[], None] | None = None) -> None:
        self.poller = poller
        self.settings = settings
        self.clock_rate = clock_rate
        self.on_failure = on_failure
        self.on_period = on_period
        self.on_reassert = on_reassert
        self.watchdog_s: dict[int, float] = {}  # device id -> its watchdog timeout (s)
        self.rounds = 0  # heartbeat steps done
        self.failures = 0  # failed device heartbeats
        self._locks: dict[int, asyncio.Lock] = {}
        self._period_s: float | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}  # device id -> its heartbeat
        self._fed_at: dict[int, float] = {}  # device id -> last feed (loop time, real s)
        self.late = 0  # feeds that came after the device's watchdog had expired
        self.reasserted = 0  # held setpoints written again after such a feed
        self._late_step = 0  # ... since the last warning (at most one a LATE_LOG_S)
        self._late_logged_at: float | None = None
        self._failing: set[int] = set()  # devices whose last heartbeat failed (logged once)

    def device_lock(self, device_id: int) -> asyncio.Lock:
        """Held while a setpoint is written to / released from the device, and while it is
        fed: one operation at a time per device (the gateway client serialises requests, not
        a write-and-read-back sequence)."""
        lock = self._locks.get(device_id)
        if lock is None:
            lock = self._locks[device_id] = asyncio.Lock()
        return lock

    def period_s(self) -> float:
        """``heartbeat_fraction`` of the shortest known device watchdog timeout, at most
        ``watchdog_period_s`` (real s). Watchdogs count on the devices' clock: on a simulated
        clock running ``clock_rate()`` times real time they expire that much sooner."""
        p = self.settings
        rate = max(self.clock_rate(), 1e-9)
        known = [t for t in self.watchdog_s.values() if t is not None and t > 0]
        return min([p.watchdog_period_s] + [p.heartbeat_fraction * t / rate for t in known])

    def forget(self, device_ids: list[int]) -> None:
        """These devices are no longer polled: cancel their heartbeat, drop their timeout."""
        for i in device_ids:
            self.watchdog_s.pop(i, None)
            self._fed_at.pop(i, None)
            self._failing.discard(i)
            task = self._tasks.pop(i, None)
            if task is not None:
                task.cancel()
        self._period_s = None  # the shortest watchdog may have gone

    def _adapters(self) -> Iterator[ProfileAdapter]:
        for u in self.poller.gateways:
            yield from u.adapters

    def _watchdog_known(self, a: ProfileAdapter) -> bool:
        """True when the device has no timer watchdog or its timeout is known; takes the
        profile's ``timeout_s`` when it declares one. An adapter without a register map (an
        OCPP connector, whose charging profile ends by itself) has none to read."""
        if not isinstance(a, ProfileAdapter):
            return True
        wd = a.profile.watchdog
        if a.device_id in self.watchdog_s or wd.mode != "timer":
            return True
        if wd.timeout_s is not None:
            self.watchdog_s[a.device_id] = float(wd.timeout_s)
            return True
        return wd.timeout_point is None

    async def _one(self, a: ProfileAdapter) -> None:
        """Feed one device; then, if its watchdog timeout is not known yet, read its
        ``watchdog.timeout_point`` (retried at the next heartbeat until read)."""
        try:
            async with self.device_lock(a.device_id):
                await a.heartbeat()
        except (DeviceError, ValueError) as exc:  # ValueError: a value that cannot encode
            self.failures += 1
            if self.on_failure is not None:
                self.on_failure()
            # one warning while a device keeps failing (a charge point that rejects every
            # renewal would log each round); the later ones, and the recovery, at lower levels
            first = a.device_id not in self._failing
            self._failing.add(a.device_id)
            log.log(logging.WARNING if first else logging.DEBUG, "heartbeat failed%s: %s",
                    "" if first else " again", exc, extra={"device_id": a.device_id})
            return
        if a.device_id in self._failing:
            self._failing.discard(a.device_id)
            log.info("heartbeat recovered", extra={"device_id": a.device_id})
        if self._note_feed(a.device_id) and a.active_setpoint_kw is not None:
            await self._reassert(a)
        if self._watchdog_known(a):
            return
        point = a.profile.watchdog.timeout_point
        assert point is not None
        try:
            value = (await a.read_points([point]))[point]
        except (DeviceError, ValueError) as exc:
            log.debug("watchdog timeout not read: %s", exc, extra={"device_id": a.device_id})
            return
        per = SECONDS_PER.get(a.profile.points[point].unit)
        if per is None:  # a unit we cannot convert: keep watchdog_period_s for this device
            self.watchdog_s[a.device_id] = 0.0
            log.warning("watchdog timeout point %s has unit %r (not s/min/h); heartbeat period "
                        "not derived from it", point, a.profile.points[point].unit,
                        extra={"device_id": a.device_id})
        elif isinstance(value, float | int) and value > 0:
            self.watchdog_s[a.device_id] = float(value) * per

    def _note_feed(self, device_id: int) -> bool:
        """Count a feed that came after the device's watchdog (on its clock) had expired:
        the device fell back meanwhile. True when it did."""
        now = asyncio.get_running_loop().time()
        last = self._fed_at.get(device_id)
        self._fed_at[device_id] = now
        timeout = self.watchdog_s.get(device_id)
        if last is not None and timeout and (now - last) * self.clock_rate() > timeout:
            self.late += 1
            self._late_step += 1
            return True
        return False

    async def _reassert(self, a: ProfileAdapter) -> None:
        """A late feed: the device fell back to its own control meanwhile; write the setpoint
        it held again at once, rather than wait for its power to show it."""
        try:
            async with self.device_lock(a.device_id):
                result = await a.reassert()
        except DeviceError as exc:
            log.warning("setpoint not written again after a late feed: %s", exc,
                        extra={"device_id": a.device_id})
            return
        if result is not None and result.verified:
            self.reasserted += 1
            if self.on_reassert is not None:
                self.on_reassert()

    async def step(self) -> None:
        """Feed every watchdog / check leases (:meth:`ProfileAdapter.heartbeat`), then update
        the period from the shortest device watchdog (``on_period``).

        Each device is fed on its own: the step waits at most one period, and a heartbeat still
        waiting on a slow device carries on into the next step (that device is not fed twice)
        instead of holding up the others. Skipped: a device whose setpoint is being written
        (that write feeds its watchdog; never two operations on one device at once), and a
        device known offline (the poller retries it, ``polling.offline_retry_s``; it gets
        heartbeats again once it answers) so that it does not hold up its gateway's connection."""
        for a in self._adapters():
            task = self._tasks.get(a.device_id)
            if task is not None and not task.done():
                continue
            st = self.poller.stats.get(a.device_id)
            if (st is not None and not st.online) or self.device_lock(a.device_id).locked():
                continue
            self._tasks[a.device_id] = asyncio.create_task(
                self._one(a), name=f"vpp-heartbeat-{a.device_id}")
        self.rounds += 1
        period = self._period_s or self.period_s()
        running = [t for t in self._tasks.values() if not t.done()]
        if running:
            await asyncio.wait(running, timeout=period)
        for a in self._adapters():
            self._watchdog_known(a)
        now = asyncio.get_running_loop().time()
        if self._late_step and (self._late_logged_at is None
                                or now - self._late_logged_at >= LATE_LOG_S):
            log.warning("%d feed(s) came after the device's watchdog expired (heartbeats late: "
                        "the gateways' connections cannot keep up; %d so far)",
                        self._late_step, self.late)
            self._late_step = 0
            self._late_logged_at = now
        period = self.period_s()
        if period != self._period_s:
            self._period_s = period
            log.info("heartbeat period %.3g s (shortest device watchdog %s s)", period,
                     min(self.watchdog_s.values(), default=None))
            if self.on_period is not None:
                self.on_period(period)

    async def run(self, stop: asyncio.Event) -> None:
        """Run :meth:`step` every period (fixed rate, real s) until ``stop`` is set; for a
        process without the daemon's supervisor (``vpp poll``)."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t0 = loop.time()
            await self.step()
            wait = max(0.0, self.period_s() - (loop.time() - t0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    async def close(self) -> None:
        """Cancel the heartbeats still running (a silent device's)."""
        tasks = [t for t in self._tasks.values() if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
