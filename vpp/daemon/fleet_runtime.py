"""The daemon's live view of the fleet, on top of :class:`vpp.poller.Poller`.

The poller (adapters engineer) owns the Modbus clients, adapters, telemetry batching and offline
detection; this module runs it as a supervised loop step, feeds the metrics, picks up gateways
that enrolment has just activated, and gives the control loop and the API what they need: the
latest state of each device, the setpoint last written, and ``apply`` for dispatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from device_adapters.adapter import ProfileAdapter
from device_adapters.factory import make_adapter
from device_adapters.protocol import DeviceState, SetpointResult
from vpp.errors import ConfigError, DeviceError
from vpp.models import Device, DeviceStatus, EnrolmentState, Gateway
from vpp.poller import DeviceStats, Poller

if TYPE_CHECKING:
    from vpp.daemon.services import Services

log = logging.getLogger("vpp.daemon.fleet")

#: the supervised loop that runs :meth:`FleetRuntime.heartbeat_step`
HEARTBEAT_LOOP = "heartbeat"
#: seconds per unit of a watchdog timeout point (Huawei's forced-mode duration is in minutes)
_SECONDS_PER = {"s": 1.0, "min": 60.0, "h": 3600.0}


def _active_rows(s: Session) -> list[tuple[Gateway, list[Device]]]:
    gws = s.exec(select(Gateway).where(Gateway.enrolment_state.in_(  # type: ignore[attr-defined]
        [EnrolmentState.ACTIVE.value, EnrolmentState.OFFLINE.value])).order_by(col(Gateway.id))).all()
    out = []
    for g in gws:
        devs = s.exec(select(Device).where(
            Device.gateway_id == g.id,
            Device.status.in_([DeviceStatus.ACTIVE.value,  # type: ignore[attr-defined]
                               DeviceStatus.OFFLINE.value])).order_by(col(Device.unit_id))).all()
        out.append((g, list(devs)))
    return out


class FleetRuntime:
    def __init__(self, services: Services, poller: Poller | None = None) -> None:
        self.services = services
        settings = services.settings
        self.poller = poller or Poller(services.db.engine, settings.polling)
        self._known: set[tuple[int, int]] = set()  # (gateway id, device id) being polled
        self._device_locks: dict[int, asyncio.Lock] = {}
        self.watchdog_s: dict[int, float] = {}  # device id -> its watchdog timeout (s)
        self.heartbeats = 0  # heartbeat rounds done
        self._hb_period_s: float | None = None
        self._hb_tasks: dict[int, asyncio.Task[None]] = {}  # device id -> its heartbeat
        self.heartbeat_failures = 0  # failed device heartbeats
        self._need_refresh = True
        self.last_setpoints: dict[int, float] = {}
        self._priority = 0
        self.skipped_polls = 0
        # moves whenever what latest() / last_setpoint() answer may have changed: after each
        # poll cycle and each setpoint written or released (the API's device listing cache)
        self.version = 0

    # -- membership -----------------------------------------------------------------------
    def request_refresh(self) -> None:
        """Look for newly active gateways/devices on the next poll step."""
        self._need_refresh = True

    async def refresh(self) -> int:
        """Start polling gateways and devices that became active; returns how many were added."""
        rows = await self.services.db.run(_active_rows)
        added = 0
        for g, devs in rows:
            new = [d for d in devs if (int(g.id or 0), int(d.id or 0)) not in self._known]
            if not new:
                continue
            unit = next((u for u in self.poller.gateways if u.gateway_id == g.id), None)
            client = unit.client if unit is not None else self.poller._client(g.host, g.port)
            adapters = []
            names: dict[int, Device] = {}
            for d in new:
                try:
                    a = await make_adapter(
                        client, device_id=int(d.id or 0), unit_id=d.unit_id, kind=d.kind,
                        profile=d.profile, rated_power_kw=d.rated_power_kw,
                        min_setpoint_kw=d.min_setpoint_kw, max_setpoint_kw=d.max_setpoint_kw,
                        params=d.params, profiles_dir=self.poller.profiles_dir,
                        clock=self.services.clock)  # readings on the daemon's clock
                except (DeviceError, ConfigError) as exc:
                    self.poller.load_errors[int(d.id or 0)] = str(exc)
                    log.error("device not polled: %s", exc, extra={"device_id": d.id})
                    continue
                adapters.append(a)
                names[a.device_id] = d
                self._known.add((int(g.id or 0), int(d.id or 0)))
            if unit is not None:
                unit.adapters.extend(adapters)
                for a in adapters:
                    self.poller.stats[a.device_id] = DeviceStats(a.device_id)
            else:
                self.poller.add_gateway(int(g.id or 0), client, adapters)
            for a in adapters:
                d = names[a.device_id]
                self.poller.stats[a.device_id].name = d.name
                self.poller.stats[a.device_id].online = d.status == DeviceStatus.ACTIVE.value
            added += len(adapters)
        if added:
            log.info("polling %d more device(s)", added)
        self._need_refresh = False
        return added

    @contextlib.asynccontextmanager
    async def priority(self) -> AsyncIterator[None]:
        """Dispatch first: while setpoints are being written, poll cycles are skipped, so that
        writes do not queue behind reads on the gateways' single connections."""
        self._priority += 1
        try:
            yield
        finally:
            self._priority -= 1

    # -- the loop step --------------------------------------------------------------------
    async def poll_step(self) -> None:
        if self._priority:
            self.skipped_polls += 1
            return
        if self._need_refresh:
            await self.refresh()
        m = self.services.metrics
        report = await self.poller.poll_once()
        self.version += 1
        m.poll_cycle.observe(report.seconds)
        for dev_id in report.errors:
            m.poll_errors.inc()
            log.debug("poll failed", extra={"device_id": dev_id})
        for st in self.poller.stats.values():
            if st.last_latency_ms is not None and st.device_id not in report.errors:
                m.poll_latency.observe(st.last_latency_ms / 1000.0)
        m.devices_online.set(self.online_count())
        power = self.fleet_power_kw()
        if power is not None:
            m.fleet_power_kw.set(power)

    # -- heartbeats (their own loop: a slow or skipped poll cycle must not starve watchdogs) --
    def device_lock(self, device_id: int) -> asyncio.Lock:
        """Held while a setpoint is written to / released from the device, and while it is
        fed: one operation at a time per device (the gateway client serialises requests, not
        a write-and-read-back sequence)."""
        lock = self._device_locks.get(device_id)
        if lock is None:
            lock = self._device_locks[device_id] = asyncio.Lock()
        return lock

    def heartbeat_period_s(self) -> float:
        """``heartbeat_fraction`` of the shortest known device watchdog timeout, at most
        ``watchdog_period_s`` (s)."""
        p = self.services.settings.polling
        known = [t for t in self.watchdog_s.values() if t is not None and t > 0]
        return min([p.watchdog_period_s] + [p.heartbeat_fraction * t for t in known])

    def _watchdog_known(self, a: ProfileAdapter) -> bool:
        """True when the device has no timer watchdog or its timeout is known; takes the
        profile's ``timeout_s`` when it declares one."""
        wd = a.profile.watchdog
        if a.device_id in self.watchdog_s or wd.mode != "timer":
            return True
        if wd.timeout_s is not None:
            self.watchdog_s[a.device_id] = float(wd.timeout_s)
            return True
        return wd.timeout_point is None

    async def _heartbeat_one(self, a: ProfileAdapter) -> None:
        """Feed one device; then, if its watchdog timeout is not known yet, read its
        ``watchdog.timeout_point`` (retried at the next heartbeat until read)."""
        try:
            async with self.device_lock(a.device_id):
                await a.heartbeat()
        except (DeviceError, ValueError) as exc:  # ValueError: a value that cannot encode
            self.heartbeat_failures += 1
            self.services.metrics.heartbeat_errors.inc()
            log.warning("heartbeat failed: %s", exc, extra={"device_id": a.device_id})
            return
        if self._watchdog_known(a):
            return
        point = a.profile.watchdog.timeout_point
        assert point is not None
        try:
            value = (await a.read_points([point]))[point]
        except (DeviceError, ValueError) as exc:
            log.debug("watchdog timeout not read: %s", exc, extra={"device_id": a.device_id})
            return
        per = _SECONDS_PER.get(a.profile.points[point].unit)
        if per is None:  # a unit we cannot convert: keep watchdog_period_s for this device
            self.watchdog_s[a.device_id] = 0.0
            log.warning("watchdog timeout point %s has unit %r (not s/min/h); heartbeat period "
                        "not derived from it", point, a.profile.points[point].unit,
                        extra={"device_id": a.device_id})
        elif isinstance(value, float | int) and value > 0:
            self.watchdog_s[a.device_id] = float(value) * per

    async def heartbeat_step(self) -> None:
        """Feed every watchdog / check leases (:meth:`ProfileAdapter.heartbeat`), then set the
        loop's period from the shortest device watchdog.

        Each device is fed on its own: the step waits at most one period, and a heartbeat still
        waiting on a slow device carries on into the next step (that device is not fed twice)
        instead of holding up the others. Skipped: a device whose setpoint is being written
        (that write feeds its watchdog; never two operations on one device at once), and a
        device known offline (the poller retries it, ``polling.offline_retry_s``; it gets
        heartbeats again once it answers) so that it does not hold up its gateway's connection.
        Runs during dispatch too."""
        for u in self.poller.gateways:
            for a in u.adapters:
                task = self._hb_tasks.get(a.device_id)
                if task is not None and not task.done():
                    continue
                st = self.poller.stats.get(a.device_id)
                if (st is not None and not st.online) or self.device_lock(a.device_id).locked():
                    continue
                self._hb_tasks[a.device_id] = asyncio.create_task(
                    self._heartbeat_one(a), name=f"vpp-heartbeat-{a.device_id}")
        self.heartbeats += 1
        period = self._hb_period_s or self.heartbeat_period_s()
        running = [t for t in self._hb_tasks.values() if not t.done()]
        if running:
            await asyncio.wait(running, timeout=period)
        for u in self.poller.gateways:
            for a in u.adapters:
                self._watchdog_known(a)
        period = self.heartbeat_period_s()
        if period != self._hb_period_s:
            self._hb_period_s = period
            log.info("heartbeat period %.3g s (shortest device watchdog %s s)", period,
                     min(self.watchdog_s.values(), default=None))
            if self.services.supervisor.has(HEARTBEAT_LOOP):
                self.services.supervisor.set_period(HEARTBEAT_LOOP, period)

    # -- what others read -----------------------------------------------------------------
    def latest(self, device_id: int) -> DeviceState | None:
        st = self.poller.stats.get(device_id)
        return st.last_state if st is not None else None

    def is_online(self, device_id: int) -> bool:
        st = self.poller.stats.get(device_id)
        return bool(st and st.online and st.last_state is not None)

    def known_offline(self, device_id: int) -> bool:
        """Polled and found offline; a device not polled yet (just after a restart) is not."""
        st = self.poller.stats.get(device_id)
        return bool(st and not st.online)

    def online_count(self) -> int:
        return sum(1 for st in self.poller.stats.values() if st.online and st.last_state)

    def fleet_power_kw(self, device_ids: list[int] | None = None) -> float | None:
        ids = device_ids if device_ids is not None else list(self.poller.stats)
        states = [self.latest(i) for i in ids]
        vals = [s.power_kw for s in states if s is not None]
        return float(sum(vals)) if vals else None

    def last_setpoint(self, device_id: int) -> float | None:
        return self.last_setpoints.get(device_id)

    def interleave(self, device_ids: list[int]) -> list[int]:
        """Order writes round-robin across gateways: each gateway serialises its own requests,
        so a fan-out that took one gateway's devices first would leave the others idle."""
        rank: dict[int, tuple[int, int]] = {}
        for g, unit in enumerate(self.poller.gateways):
            for k, a in enumerate(unit.adapters):
                rank[a.device_id] = (k, g)
        return sorted(device_ids, key=lambda i: rank.get(i, (1 << 30, i)))

    def has_adapter(self, device_id: int) -> bool:
        return device_id in self.poller.stats

    def restore_setpoint(self, device_id: int, setpoint_kw: float) -> None:
        """After a restart: remember what the device already holds (written before the crash)
        so that heartbeats keep it, without writing it again."""
        self.last_setpoints[device_id] = setpoint_kw
        self.version += 1
        try:
            a = self.poller.adapter(device_id)
        except KeyError:
            return
        if a.active_setpoint_kw is None:
            a.active_setpoint_kw = setpoint_kw

    async def apply(self, device_id: int, setpoint_kw: float) -> SetpointResult:
        try:
            a = self.poller.adapter(device_id)
        except KeyError:
            return SetpointResult(device_id, setpoint_kw, 0.0, False, None, False,
                                  "device is not polled (not active or not enrolled)")
        try:
            async with self.device_lock(device_id):
                result = await a.apply_setpoint(setpoint_kw)
        except DeviceError as exc:
            result = SetpointResult(device_id, setpoint_kw, 0.0, False, None, False, str(exc))
        if result.error is None or result.readback_kw is not None:
            self.last_setpoints[device_id] = result.written_kw
            self.version += 1
        return result

    async def release(self, device_ids: list[int]) -> dict[int, str]:
        errors: dict[int, str] = {}

        async def one(i: int) -> None:
            try:
                a = self.poller.adapter(i)
                async with self.device_lock(i):
                    await a.release()
                self.last_setpoints.pop(i, None)
                self.version += 1
            except KeyError:
                pass
            except DeviceError as exc:
                errors[i] = str(exc)

        await asyncio.gather(*(one(i) for i in device_ids))
        return errors

    async def close(self) -> None:
        """Close connections without releasing: a restarted daemon resumes the event, and the
        devices' watchdogs/leases return them to their own behaviour if it does not."""
        tasks = [t for t in self._hb_tasks.values() if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.poller.close(release=False)
