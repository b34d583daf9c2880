"""The daemon's live view of the fleet, on top of :class:`vpp.poller.Poller`.

The poller (adapters engineer) owns the Modbus clients, adapters, telemetry batching and offline
detection; this module runs it as a supervised loop step, feeds the metrics, keeps the polled
fleet equal to the active fleet in the database (each poll step reads the fleet revision, one
row, and reloads when any process changed the fleet: :mod:`vpp.daemon.fleet_sync`), and gives
the control loop and the API what they need: the latest state of each device, the setpoint
last written, and ``apply`` for dispatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from device_adapters.adapter import ProfileAdapter
from device_adapters.factory import make_adapter
from device_adapters.profile import Profile
from device_adapters.protocol import DeviceState, SetpointResult
from vpp.daemon.fleet_sync import DesiredFleet, DeviceKey, load_desired, read_revision
from vpp.errors import ConfigError, DeviceError, ValidationError
from vpp.gateway_hosts import HostPolicy
from vpp.models import Device, DeviceStatus
from vpp.poller import DeviceStats, Poller

if TYPE_CHECKING:
    from vpp.daemon.services import Services

log = logging.getLogger("vpp.daemon.fleet")

#: the supervised loop that runs :meth:`FleetRuntime.heartbeat_step`
HEARTBEAT_LOOP = "heartbeat"
#: seconds per unit of a watchdog timeout point (Huawei's forced-mode duration is in minutes)
_SECONDS_PER = {"s": 1.0, "min": 60.0, "h": 3600.0}


class FleetRuntime:
    def __init__(self, services: Services, poller: Poller | None = None) -> None:
        self.services = services
        settings = services.settings
        self.poller = poller or Poller(services.db.engine, settings.polling)
        self._keys: dict[int, DeviceKey] = {}  # device id -> what its adapter was built from
        self._revision: int | None = None  # the fleet revision last loaded
        self._refused: dict[int, str] = {}  # gateway id -> why the host policy refuses it
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

    # -- membership: the fleet in the database ---------------------------------------------
    def request_refresh(self) -> None:
        """Reload the fleet on the next poll step (this process just changed it)."""
        self._need_refresh = True

    async def fleet_changed(self) -> bool:
        """One read of the fleet revision (one row, whatever the fleet's size): has any process
        enrolled, edited, retired or removed a gateway or device since the last refresh?"""
        if self._need_refresh:
            return True
        return await self.services.db.run(read_revision) != self._revision

    async def refresh(self) -> int:
        """Make the polled fleet the active fleet in the database: add new devices, rebuild
        those whose configuration changed, drop those no longer active (released first if
        they hold a setpoint). Gateways whose host the enrolment policy now refuses are not
        connected. Returns how many devices were added or rebuilt."""
        self._need_refresh = False
        want = await self.services.db.run(load_desired)
        refused = await self._refused_gateways(want)
        keep = {i: v for i, v in want.devices.items() if v[1].gateway_id not in refused}
        gone = [i for i, k in self._keys.items() if i not in keep or keep[i][1] != k]
        if gone:
            await self._detach(gone)
        added = 0
        for i, (d, key) in keep.items():
            if i in self._keys or (i in self.poller.stats and i not in self._keys):
                continue  # polled already (or an adapter someone else added)
            if await self._attach(d, key, want.stored):
                added += 1
        self._revision = want.revision
        if added or gone:
            log.info("fleet refreshed at revision %d: %d device(s) added or rebuilt, %d "
                     "dropped", want.revision, added, len(set(gone) - set(self._keys)))
            self.version += 1
        return added

    async def _refused_gateways(self, want: DesiredFleet) -> set[int]:
        """Gateways the host policy refuses now, among those about to be connected (a new or
        changed device): checked before every connection, concurrently (host names resolve)."""
        policy = HostPolicy.from_settings(self.services.settings.enrolment)
        todo = sorted({k.gateway_id for i, (_, k) in want.devices.items()
                       if self._keys.get(i) != k})
        results = await asyncio.gather(
            *(policy.check_async(want.gateways[g].host, want.gateways[g].port) for g in todo),
            return_exceptions=True)
        refused: dict[int, str] = {}
        for gid, res in zip(todo, results, strict=True):
            if isinstance(res, ValidationError):
                refused[gid] = res.message
            elif isinstance(res, BaseException):
                raise res
        for gid, reason in refused.items():
            if self._refused.get(gid) != reason:
                log.error("gateway not connected: %s", reason, extra={"gateway_id": gid})
        for i, (_, key) in want.devices.items():
            if key.gateway_id in refused:
                self.poller.load_errors[i] = refused[key.gateway_id]
        self._refused = refused
        return set(refused)

    async def _attach(self, d: Device, key: DeviceKey, stored: dict[str, Profile]) -> bool:
        unit = next((u for u in self.poller.gateways if u.gateway_id == key.gateway_id), None)
        client = unit.client if unit is not None else self.poller._client(key.host, key.port)
        device_id = int(d.id or 0)
        try:
            a = await make_adapter(
                client, device_id=device_id, unit_id=d.unit_id, kind=d.kind,
                profile=stored.get(d.profile, d.profile), rated_power_kw=d.rated_power_kw,
                min_setpoint_kw=d.min_setpoint_kw, max_setpoint_kw=d.max_setpoint_kw,
                params=d.params, profiles_dir=self.poller.profiles_dir,
                clock=self.services.clock)  # readings on the daemon's clock
        except (DeviceError, ConfigError) as exc:
            self.poller.load_errors[device_id] = str(exc)
            log.error("device not polled: %s", exc, extra={"device_id": d.id})
            if unit is None:
                await client.close()
            return False
        self.poller.load_errors.pop(device_id, None)
        if unit is not None:
            unit.adapters.append(a)
        else:
            self.poller.add_gateway(key.gateway_id, client, [a])
        self.poller.stats[device_id] = DeviceStats(
            device_id, d.name, online=d.status == DeviceStatus.ACTIVE.value)
        self._keys[device_id] = key
        return True

    async def _detach(self, device_ids: list[int]) -> None:
        """Stop polling these devices; a device holding a setpoint is released first (its
        owner gets it back; a rebuilt one is written again by the control loop)."""
        held = [i for i in device_ids if i in self.last_setpoints]
        if held:
            errors = await self.release(held)
            for i, err in errors.items():
                log.warning("device dropped from the fleet not released: %s", err,
                            extra={"device_id": i})
        drop = set(device_ids)
        for unit in list(self.poller.gateways):
            unit.adapters = [a for a in unit.adapters if a.device_id not in drop]
            if not unit.adapters:
                self.poller.gateways.remove(unit)
                await unit.client.close()
        for i in drop:
            self._keys.pop(i, None)
            self.poller.stats.pop(i, None)
            self.poller._pending_status.pop(i, None)
            self.watchdog_s.pop(i, None)
            self.last_setpoints.pop(i, None)
            task = self._hb_tasks.pop(i, None)
            if task is not None:
                task.cancel()
        self._hb_period_s = None  # the shortest watchdog may have gone

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
        if await self.fleet_changed():
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
        ``watchdog_period_s`` (real s). Watchdogs count on the devices' clock: on a simulated
        clock running ``services.clock_rate()`` times real time they expire that much sooner."""
        p = self.services.settings.polling
        rate = max(self.services.clock_rate(), 1e-9)
        known = [t for t in self.watchdog_s.values() if t is not None and t > 0]
        return min([p.watchdog_period_s] + [p.heartbeat_fraction * t / rate for t in known])

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
