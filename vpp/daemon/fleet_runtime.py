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
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from device_adapters.adapter import ProfileAdapter
from device_adapters.factory import make_adapter
from device_adapters.profile import Profile
from device_adapters.protocol import DeviceState, SetpointResult
from vpp.cluster.commands import held_setpoints
from vpp.cluster.link import SINGLE, FleetLink
from vpp.daemon.fleet_sync import DesiredFleet, DeviceKey, load_desired, read_revision
from vpp.errors import ConfigError, DeviceError, ValidationError
from vpp.gateway_hosts import HostPolicy
from vpp.heartbeats import Heartbeats
from vpp.models import Device, DeviceStatus
from vpp.poller import DeviceStats, Poller

if TYPE_CHECKING:
    from vpp.daemon.infra import Infra

log = logging.getLogger("vpp.daemon.fleet")

#: the supervised loop that runs :meth:`FleetRuntime.heartbeat_step`
HEARTBEAT_LOOP = "heartbeat"


@dataclass(frozen=True)
class RemoteDevice:
    """A device as the planner of a cluster sees it (:mod:`vpp.cluster.states`)."""

    name: str
    online: bool
    state: DeviceState | None


class FleetRuntime:
    """``cluster`` (:class:`vpp.cluster.link.FleetLink`; the single process by default): in a
    poller worker its ``share``, the gateways it holds the leases of (only those are polled;
    :mod:`vpp.cluster.membership`); in the planner its ``remote``, how a setpoint reaches a
    device another process polls (a command, :mod:`vpp.cluster.remote`)."""

    def __init__(self, infra: Infra, poller: Poller | None = None, *,
                 cluster: FleetLink = SINGLE) -> None:
        self.infra = infra
        self.share = cluster.share
        self.remote = cluster.remote
        self._share_version = -1
        settings = infra.settings
        self.poller = poller or Poller(infra.db.engine, settings.polling)
        self._keys: dict[int, DeviceKey] = {}  # device id -> what its adapter was built from
        self._revision: int | None = None  # the fleet revision last loaded
        self._refused: dict[int, str] = {}  # gateway id -> why the host policy refuses it
        # the shared heartbeat mechanism (vpp.heartbeats), as the supervised HEARTBEAT_LOOP
        self.hb = Heartbeats(self.poller, settings.polling,
                             clock_rate=lambda: self.infra.clock_rate(),
                             on_failure=lambda: self.infra.metrics.heartbeat_errors.inc(),
                             on_period=self._set_heartbeat_period,
                             on_reassert=lambda: self.infra.metrics.setpoints_reasserted.inc())
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
        if self._need_refresh or (self.share is not None
                                  and self.share.version != self._share_version):
            return True
        try:
            return await self.infra.db.run(read_revision) != self._revision
        except Exception as exc:  # noqa: BLE001 -- database down: poll the fleet we have
            log.warning("fleet revision not read (polling the current fleet): %s",
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return False

    async def refresh(self) -> int:
        """Make the polled fleet the active fleet in the database: add new devices, rebuild
        those whose configuration changed, drop those no longer active (released first if
        they hold a setpoint). Gateways whose host the enrolment policy now refuses are not
        connected. Returns how many devices were added or rebuilt."""
        self._need_refresh = False
        want = await self.infra.db.run(load_desired)
        handed: set[int] = set()  # handed over to another worker: not released, it keeps them
        if self.share is not None:  # a poller worker: the gateways it holds only
            self._share_version = self.share.version
            mine = self.share.polled()
            handed = {i for i, v in want.devices.items() if v[1].gateway_id not in mine}
            want.devices = {i: v for i, v in want.devices.items() if i not in handed}
        refused = await self._refused_gateways(want)
        keep = {i: v for i, v in want.devices.items() if v[1].gateway_id not in refused}
        gone = [i for i, k in self._keys.items() if i not in keep or keep[i][1] != k]
        held = self._held_through_rebuild(gone, keep)
        if gone:
            await self._detach(gone, keep_held=set(held) | handed)
        added: list[int] = []
        for i, (d, key) in keep.items():
            if i in self._keys or (i in self.poller.stats and i not in self._keys):
                continue  # polled already (or an adapter someone else added)
            if await self._attach(d, key, want.stored):
                added.append(i)
        if self.share is not None and added:  # taken over: what their last owner confirmed
            interval_s = 60.0 * self.infra.settings.service.market_interval_minutes
            held.update(await self.infra.db.run(held_setpoints, added, interval_s))
        for i, kw in held.items():
            if self.has_adapter(i):
                self.restore_setpoint(i, kw)  # the device still holds it: not written again
        self._revision = want.revision
        if added or gone:
            log.info("fleet refreshed at revision %d: %d device(s) added or rebuilt, %d "
                     "dropped", want.revision, len(added), len(set(gone) - set(self._keys)))
            self.version += 1
        return len(added)

    async def _refused_gateways(self, want: DesiredFleet) -> set[int]:
        """Gateways the host policy refuses now, among those about to be connected (a new or
        changed device): checked before every connection, concurrently (host names resolve)."""
        policy = HostPolicy.from_settings(self.infra.settings.enrolment)
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
                clock=self.infra.clock)  # readings on the daemon's clock
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

    def _held_through_rebuild(self, gone: list[int],
                              keep: dict[int, tuple[Device, DeviceKey]]) -> dict[int, float]:
        """Setpoints a rebuilt device keeps (kW): same gateway, and inside its new limits."""
        out: dict[int, float] = {}
        for i in gone:
            kw, old = self.last_setpoints.get(i), self._keys[i]
            if kw is None or i not in keep:
                continue
            new = keep[i][1]
            if ((new.host, new.port, new.unit_id) == (old.host, old.port, old.unit_id)
                    and new.min_setpoint_kw <= kw <= new.max_setpoint_kw):
                out[i] = kw
        return out

    async def _detach(self, device_ids: list[int], keep_held: set[int] | None = None) -> None:
        """Stop polling these devices. A device holding a setpoint is released first (its
        owner gets it back), unless it is rebuilt with the setpoint inside its new limits
        (``keep_held``): its new adapter then keeps it without writing it again."""
        held = [i for i in device_ids if i in self.last_setpoints and i not in (keep_held or ())]
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
            self.last_setpoints.pop(i, None)
        self.hb.forget(list(drop))

    async def detach(self, device_ids: list[int]) -> None:
        """Stop polling devices another part attached (the OCPP central system's connectors),
        releasing any that hold a setpoint, as :meth:`refresh` does for its own."""
        await self._detach(device_ids)

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
        if self._priority or (self.share is not None and not self.share.current()):
            self.skipped_polls += 1  # dispatch first; or a worker whose leases may be gone
            return
        if await self.fleet_changed():
            await self.refresh()
        m = self.infra.metrics
        report = await self.poller.poll_due()  # the devices whose period ran out
        self.version += 1
        m.poll_cycle.observe(report.seconds)
        for dev_id in report.errors:
            m.poll_errors.inc()
            log.debug("poll failed", extra={"device_id": dev_id})
        for ms in report.latencies_ms:
            m.poll_latency.observe(ms / 1000.0)
        m.devices_online.set(self.online_count())
        power = self.fleet_power_kw()
        if power is not None:
            m.fleet_power_kw.set(power)
        if self.share is not None and not len(self.poller.buffer or ()):
            # dropped, their readings stored: hand the leaving gateways over
            await self.share.release_detached({u.gateway_id for u in self.poller.gateways})

    # -- heartbeats (their own loop: a slow or skipped poll cycle must not starve watchdogs) --
    @property
    def watchdog_s(self) -> dict[int, float]:
        """Device id -> its watchdog timeout (s), as read by the heartbeats."""
        return self.hb.watchdog_s

    @watchdog_s.setter
    def watchdog_s(self, value: dict[int, float]) -> None:
        self.hb.watchdog_s = value

    @property
    def heartbeats(self) -> int:
        """Heartbeat rounds done."""
        return self.hb.rounds

    @property
    def heartbeat_failures(self) -> int:
        """Failed device heartbeats."""
        return self.hb.failures

    def device_lock(self, device_id: int) -> asyncio.Lock:
        """One operation at a time per device (:meth:`Heartbeats.device_lock`)."""
        return self.hb.device_lock(device_id)

    def heartbeat_period_s(self) -> float:
        """The heartbeat period, real s (:meth:`Heartbeats.period_s`)."""
        return self.hb.period_s()

    async def heartbeat_step(self) -> None:
        """One step of the heartbeat loop (:meth:`Heartbeats.step`); runs during dispatch too."""
        await self.hb.step()

    def _set_heartbeat_period(self, period_s: float) -> None:
        if self.infra.supervisor.has(HEARTBEAT_LOOP):
            self.infra.supervisor.set_period(HEARTBEAT_LOOP, period_s)

    def set_remote_states(self, devices: dict[int, RemoteDevice]) -> None:
        """The planner of a cluster polls nothing: its view of each device is what the poller
        workers stored (:mod:`vpp.cluster.states`), kept where ``latest`` / ``is_online`` read."""
        stats = self.poller.stats
        for i in [i for i in stats if i not in devices]:
            del stats[i]
        for i, d in devices.items():
            st = stats.get(i) or DeviceStats(i, d.name)
            st.online, st.last_state = d.online, d.state
            stats[i] = st
        self.version += 1

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
        """Write a setpoint (clamped, read back): through the device's adapter when it is
        polled here, else through its owner in the cluster (``remote``)."""
        try:
            a = self.poller.adapter(device_id)
        except KeyError:
            if self.remote is None:
                return SetpointResult(device_id, setpoint_kw, 0.0, False, None, False,
                                      "device is not polled (not active or not enrolled)")
            result = await self.remote.apply(device_id, setpoint_kw)
        else:
            try:
                async with self.device_lock(device_id):
                    result = await a.apply_setpoint(setpoint_kw)
            except DeviceError as exc:
                result = SetpointResult(device_id, setpoint_kw, 0.0, False, None, False,
                                        str(exc))
        if result.error is None or result.readback_kw is not None:
            self.last_setpoints[device_id] = result.written_kw
            self.version += 1
        return result

    def setpoint_written_at(self, device_id: int) -> datetime | None:
        """When the device's adapter last wrote its control registers (daemon clock; a
        setpoint, a release, or a setpoint written again after a late heartbeat)."""
        try:
            return self.poller.adapter(device_id).setpoint_written_at
        except (KeyError, AttributeError):
            return None

    async def holds_setpoint(self, device_id: int) -> bool | None:
        """Whether the device's registers still express the setpoint it was given
        (:meth:`ProfileAdapter.holds_setpoint`); None when that cannot be told: no setpoint,
        an unreadable device, or an adapter without registers (an OCPP connector, whose
        profile the charge point confirms when it is sent)."""
        a = self._registers(device_id)
        if a is None:
            return None
        try:
            async with self.device_lock(device_id):
                return await a.holds_setpoint()
        except DeviceError as exc:
            log.debug("control state not read: %s", exc, extra={"device_id": device_id})
            return None

    async def already_holds(self, device_id: int, setpoint_kw: float) -> bool:
        """Whether the device's registers already express ``setpoint_kw`` (read as a write is
        read back); if so the adapter keeps it as its setpoint (heartbeats hold it), as after
        a restart. False when unreadable or not polled here (a command taken over from a
        worker that died, :mod:`vpp.cluster.executor`)."""
        a = self._registers(device_id)
        if a is None:
            return False
        async with self.device_lock(device_id):
            before = a.active_setpoint_kw
            a.active_setpoint_kw = setpoint_kw
            try:
                held = await a.holds_setpoint()
            except DeviceError:
                held = None
            if not held:
                a.active_setpoint_kw = before
                return False
        self.last_setpoints[device_id] = setpoint_kw
        self.version += 1
        return True

    async def reassert(self, device_id: int) -> SetpointResult | None:
        """Write the setpoint the device holds again (:meth:`ProfileAdapter.reassert`: the
        aggregator's lease is not renewed); None when it holds none or has no registers."""
        a = self._registers(device_id)
        if a is None:
            return None
        async with self.device_lock(device_id):
            return await a.reassert()

    def _registers(self, device_id: int) -> ProfileAdapter | None:
        """The device's register adapter; None when it is not polled or has no registers."""
        try:
            a = self.poller.adapter(device_id)
        except KeyError:
            return None
        return a if isinstance(a, ProfileAdapter) else None

    async def release(self, device_ids: list[int]) -> dict[int, str]:
        errors: dict[int, str] = {}

        async def one(i: int) -> None:
            try:
                try:
                    a = self.poller.adapter(i)
                except KeyError:
                    if self.remote is None:
                        raise
                    err = await self.remote.release(i)  # through its owner in the cluster
                    if err is not None:
                        raise DeviceError(err) from None
                else:
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
        await self.hb.close()
        await self.poller.close(release=False)
