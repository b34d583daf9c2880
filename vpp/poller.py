"""Async poller over every active device: one connection per gateway, bounded concurrency,
timeouts and retries with backoff (in :class:`~device_adapters.modbus_client.GatewayClient`),
offline detection, batched telemetry, per-device latency and error statistics.

One cycle (:meth:`Poller.poll_once`) reads all devices: gateways in parallel (at most
``max_gateways`` at once), the devices of one gateway through its single connection. The loop
(:meth:`Poller.run`, the daemon's ``poll`` loop) ticks every ``polling.interval_s`` and reads
only the devices that are due (:meth:`Poller.poll_due`): each kind has its telemetry period
(``polling.period_s``), and a device holding a setpoint we wrote (an event and its tail) is read
every ``polling.event_period_s``; periods count on the devices' clock. A device
that fails ``offline_after_failures`` polls in a row is marked ``offline`` (and ``active`` again
when it answers); a failed poll is stored as an unavailable reading, so gaps are visible. An
offline device is tried again every ``offline_retry_s`` (0: every cycle), not every cycle: a
silent device costs ``timeout_s x (retries + 1)`` of its gateway's cycle each time it is
tried. A gateway that cannot be reached fails all its devices in the cycle after one connect
attempt, and when one of them goes offline they all do, in one step (a re-plan sees the whole
gateway gone, never half of it). A bad device never stops the others. Readings go to
:class:`vpp.telemetry_store.TelemetryBuffer`, flushed in a thread (database work stays off the event loop). :meth:`Poller.run` feeds
watchdogs and enforces the aggregator's leases on a loop of its own (:mod:`vpp.heartbeats`);
:meth:`Poller.heartbeat_all` is one round of it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import col, select

from device_adapters.adapter import ProfileAdapter
from device_adapters.errors import GatewayUnreachable
from device_adapters.factory import make_adapter
from device_adapters.modbus_client import GatewayClient
from device_adapters.profile import Profile
from device_adapters.protocol import DeviceState
from vpp.config import PollingSettings
from vpp.db import session_scope
from vpp.errors import ConfigError, DeviceError, ValidationError
from vpp.gateway_hosts import HostPolicy
from vpp.heartbeats import Heartbeats
from vpp.models import Device, DeviceStatus, EnrolmentState, Gateway
from vpp.telemetry_store import Reading, TelemetryBuffer

log = logging.getLogger(__name__)


class StuckValues(DeviceError):
    code = "stuck_values"


@dataclass
class DeviceStats:
    device_id: int
    name: str = ""
    polls: int = 0
    errors: int = 0
    consecutive_failures: int = 0
    online: bool = True
    last_latency_ms: float | None = None
    latency_ms_total: float = 0.0
    last_error: str | None = None
    last_state: DeviceState | None = None
    energy_since: tuple[float, float] | None = None  # (monotonic s, counter kWh) of last change
    min_power_kw: float | None = None  # least power seen since the counter last changed
    retry_at: float = 0.0  # monotonic s: while offline, not polled before this
    polled_at: datetime | None = None  # the device's clock at its last poll (due: period later)
    skipped: int = 0  # cycles skipped while offline (``polling.offline_retry_s``)

    @property
    def mean_latency_ms(self) -> float | None:
        ok = self.polls - self.errors
        return self.latency_ms_total / ok if ok > 0 else None


def stuck_reason(
    st: DeviceStats, state: DeviceState, now_s: float, resolution_kwh: float | None,
    stuck_after_s: float,
) -> str | None:
    """Pure check for frozen registers: a device that has drawn power all along since its
    energy counter last moved, long enough for the counter to move by >= 5 steps, is stuck.
    Updates the tracking fields of ``st``; returns the reason or None."""
    energy = state.energy_kwh
    if energy is None or resolution_kwh is None:
        return None
    if st.energy_since is None or energy != st.energy_since[1]:
        st.energy_since = (now_s, energy)
        st.min_power_kw = state.power_kw
        return None
    st.min_power_kw = min(st.min_power_kw if st.min_power_kw is not None else state.power_kw,
                          state.power_kw)
    elapsed = now_s - st.energy_since[0]
    expected_kwh = max(st.min_power_kw, 0.0) * elapsed / 3600.0
    step = max(resolution_kwh, 1e-6)
    if elapsed >= stuck_after_s and expected_kwh >= 5 * step:
        return (f"device {state.device_id}: stuck values: energy counter at {energy:g} kWh for "
                f"{elapsed:.0f} s while drawing >= {st.min_power_kw:.2f} kW")
    return None


@dataclass
class CycleReport:
    started: float
    seconds: float
    devices: int
    ok: int
    failed: int
    requests: int
    errors: dict[int, str] = field(default_factory=dict)
    skipped: int = 0  # offline devices not due for a retry (not polled, not in ``ok``)
    not_due: int = 0  # devices whose period had not run out (:meth:`Poller.poll_due`)
    latencies_ms: list[float] = field(default_factory=list)  # of this cycle's good polls


@dataclass
class _GatewayUnit:
    gateway_id: int
    client: GatewayClient
    adapters: list[ProfileAdapter]


class Poller:
    def __init__(
        self, engine: Engine | None, settings: PollingSettings | None = None, *,
        profiles_dir: Path | None = None, max_gateways: int = 64,
        buffer: TelemetryBuffer | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings or PollingSettings()
        self.profiles_dir = profiles_dir
        self._gw_sem = asyncio.Semaphore(max_gateways)
        self.gateways: list[_GatewayUnit] = []
        self.stats: dict[int, DeviceStats] = {}
        self.buffer = buffer or (TelemetryBuffer(engine, self.settings.telemetry_batch_size)
                                 if engine is not None else None)
        self._pending_status: dict[int, tuple[str, str | None]] = {}
        self.load_errors: dict[int, str] = {}

    # -- set-up ---------------------------------------------------------------------------
    def _client(self, host: str, port: int) -> GatewayClient:
        s = self.settings
        return GatewayClient(host, port, timeout_s=s.timeout_s, retries=s.retries,
                             backoff_base_s=s.backoff_base_s)

    def _rows(self) -> list[tuple[Gateway, list[Device]]]:
        assert self.engine is not None
        with session_scope(self.engine) as s:
            gws = s.exec(select(Gateway).where(Gateway.enrolment_state.in_(  # type: ignore[attr-defined]
                [EnrolmentState.ACTIVE.value, EnrolmentState.OFFLINE.value]),
                Gateway.protocol == "modbus")  # OCPP charge points connect to the daemon
                .order_by(col(Gateway.id))).all()
            out = []
            for g in gws:
                devs = s.exec(select(Device).where(
                    Device.gateway_id == g.id,
                    Device.status.in_([DeviceStatus.ACTIVE.value,  # type: ignore[attr-defined]
                                       DeviceStatus.OFFLINE.value]))
                    .order_by(col(Device.unit_id))).all()
                out.append((g, list(devs)))
            return out

    async def load(self, hosts: HostPolicy | None = None) -> int:
        """Build clients and adapters for the active devices in the database (their stored
        profiles too); with ``hosts``, a gateway the host policy refuses is not connected
        (its devices get the reason in ``load_errors``)."""
        rows = await asyncio.to_thread(self._rows)
        stored = await asyncio.to_thread(self._stored, [d for _, devs in rows for d in devs])
        for g, devs in rows:
            if hosts is not None:
                try:
                    await hosts.check_async(g.host, g.port)
                except ValidationError as exc:
                    for d in devs:
                        self.load_errors[d.id or 0] = exc.message
                    continue
            client = self._client(g.host, g.port)
            unit = _GatewayUnit(g.id or 0, client, [])
            for d in devs:
                try:
                    a = await make_adapter(
                        client, device_id=d.id or 0, unit_id=d.unit_id, kind=d.kind,
                        profile=stored.get(d.profile, d.profile),
                        rated_power_kw=d.rated_power_kw,
                        min_setpoint_kw=d.min_setpoint_kw, max_setpoint_kw=d.max_setpoint_kw,
                        params=d.params, profiles_dir=self.profiles_dir)
                except (DeviceError, ConfigError) as exc:
                    self.load_errors[d.id or 0] = str(exc)
                    log.error("device %s not polled: %s", d.id, exc)
                    continue
                unit.adapters.append(a)
                self.stats[a.device_id] = DeviceStats(a.device_id, d.name,
                                                      online=d.status == DeviceStatus.ACTIVE.value)
            self.gateways.append(unit)
        return sum(len(u.adapters) for u in self.gateways)

    def _stored(self, devices: list[Device]) -> dict[str, Profile]:
        """The owner-submitted profiles these devices name (:mod:`vpp.profiles`)."""
        from vpp.profiles import load_stored

        assert self.engine is not None
        with session_scope(self.engine) as s:
            return load_stored(s, {d.profile for d in devices})

    def add_gateway(self, gateway_id: int, client: GatewayClient,
                    adapters: list[ProfileAdapter]) -> None:
        """Poll these adapters too (no database needed: benchmarks, tests)."""
        self.gateways.append(_GatewayUnit(gateway_id, client, adapters))
        for a in adapters:
            self.stats[a.device_id] = DeviceStats(a.device_id)

    def adapter(self, device_id: int) -> ProfileAdapter:
        for u in self.gateways:
            for a in u.adapters:
                if a.device_id == device_id:
                    return a
        raise KeyError(device_id)

    # -- polling --------------------------------------------------------------------------
    async def _poll_device(self, a: ProfileAdapter, readings: list[Reading]
                           ) -> DeviceError | None:
        st = self.stats[a.device_id]
        st.polls += 1
        st.polled_at = a._clock()  # its period runs from the start of the poll
        t0 = time.perf_counter()
        try:
            state = await a.read_state()
            stuck = stuck_reason(st, state, time.monotonic(), a.energy_resolution_kwh,
                                 self.settings.stuck_after_s)
            if stuck is not None:
                st.last_state = state
                raise StuckValues(stuck)
        except Exception as exc:  # one device must never stop the others
            if not isinstance(exc, DeviceError):
                log.exception("device %s: unexpected error while polling", a.device_id)
                exc = DeviceError(f"device {a.device_id}: unexpected {type(exc).__name__}: {exc}")
            self._record_failure(a, exc, readings)
            return exc
        latency_ms = (time.perf_counter() - t0) * 1000.0
        st.last_latency_ms = latency_ms
        st.latency_ms_total += latency_ms
        st.consecutive_failures = 0
        st.last_error = None
        st.last_state = state
        if not st.online:
            st.online = True
            self._pending_status[a.device_id] = (DeviceStatus.ACTIVE.value, None)
        readings.append(Reading(a.device_id, state.ts, state.power_kw, state.energy_kwh,
                                state.soc_pct, True, state.flex_down_kw, latency_ms,
                                state.site_import_kw))
        return None

    def _record_failure(self, a: ProfileAdapter, exc: DeviceError,
                        readings: list[Reading]) -> None:
        """Count one failed poll of ``a``: offline after ``offline_after_failures`` in a row;
        an unavailable reading records the gap."""
        st = self.stats[a.device_id]
        st.errors += 1
        st.consecutive_failures += 1
        st.last_error = str(exc)
        if st.online and st.consecutive_failures >= self.settings.offline_after_failures:
            self._set_offline(a, str(exc))
        elif not st.online:
            st.retry_at = time.monotonic() + self.settings.offline_retry_s
        readings.append(Reading(a.device_id, a._clock(), None, available=False))

    def _set_offline(self, a: ProfileAdapter, reason: str) -> None:
        st = self.stats[a.device_id]
        st.online = False
        st.retry_at = time.monotonic() + self.settings.offline_retry_s
        self._pending_status[a.device_id] = (DeviceStatus.OFFLINE.value, reason)
        log.warning("device %s offline: %s", a.device_id, reason)

    def period_s(self, a: ProfileAdapter) -> float:
        """The device's telemetry period (s on its clock): ``event_period_s`` while it holds a
        setpoint we wrote (set by dispatch, kept through the event's tail, cleared by its
        release), else its kind's ``period_s``."""
        p = self.settings
        return p.event_period_s if a.active_setpoint_kw is not None else p.period_s[a.kind]

    def due(self, a: ProfileAdapter) -> bool:
        """Has the device's period run out since its last poll (on its clock)? Half a tick of
        slack, so that loop jitter does not put a device off to the next tick."""
        st = self.stats[a.device_id]
        if st.polled_at is None:
            return True
        left = self.period_s(a) - (a._clock() - st.polled_at).total_seconds()
        return left <= self.settings.interval_s / 2

    async def _poll_gateway(self, unit: _GatewayUnit, readings: list[Reading],
                            errors: dict[int, str], skipped: list[int],
                            not_due: list[int] | None) -> None:
        # One request at a time goes through a gateway's connection anyway: poll its devices
        # in turn (no contention on the connection's semaphore), gateways in parallel.
        async with self._gw_sem:
            for k, a in enumerate(unit.adapters):
                st = self.stats[a.device_id]
                if not_due is not None and not self.due(a):
                    not_due.append(a.device_id)
                    continue
                if not st.online and time.monotonic() < st.retry_at:
                    st.skipped += 1
                    skipped.append(a.device_id)
                    continue
                err = await self._poll_device(a, readings)
                if err is None:
                    continue
                errors[a.device_id] = str(err)
                if isinstance(err, GatewayUnreachable):
                    self._gateway_down(unit, k, err, readings, errors)
                    return

    def _gateway_down(self, unit: _GatewayUnit, k: int, err: GatewayUnreachable,
                      readings: list[Reading], errors: dict[int, str]) -> None:
        """The gateway itself cannot be reached (device ``k`` could not connect): the rest of
        its devices fail this cycle without a request each (no connect timeout per device),
        and once any of them goes offline all of them do, in the same synchronous step, so
        that the re-plan that follows sees the whole gateway gone rather than half of it."""
        for a in unit.adapters[k + 1:]:
            self.stats[a.device_id].polls += 1
            self.stats[a.device_id].polled_at = a._clock()
            self._record_failure(a, err, readings)
            errors[a.device_id] = str(err)
        down = DeviceStatus.OFFLINE.value
        if any(self._pending_status.get(a.device_id, ("",))[0] == down
               for a in unit.adapters[k:]):
            for a in unit.adapters:
                if self.stats[a.device_id].online:
                    self._set_offline(a, str(err))

    async def poll_due(self) -> CycleReport:
        """One tick: read the devices whose period has run out (:meth:`due`), as
        :meth:`poll_once` does."""
        return await self._cycle(due_only=True)

    async def poll_once(self) -> CycleReport:
        """Read every device once; buffer the readings; flush and record status changes."""
        return await self._cycle(due_only=False)

    async def _cycle(self, due_only: bool) -> CycleReport:
        t0 = time.perf_counter()
        req0 = sum(u.client.stats.requests for u in self.gateways)
        readings: list[Reading] = []
        errors: dict[int, str] = {}
        skipped: list[int] = []
        not_due: list[int] | None = [] if due_only else None
        await asyncio.gather(*(self._poll_gateway(u, readings, errors, skipped, not_due)
                               for u in self.gateways))
        seconds = time.perf_counter() - t0
        if self.buffer is not None:
            for r in readings:
                self.buffer.add(r)
            await self.flush()
        if self._pending_status and self.engine is not None:
            pending, self._pending_status = self._pending_status, {}
            await asyncio.to_thread(self._write_status, pending)
        n = sum(len(u.adapters) for u in self.gateways)
        waiting = len(not_due or ())
        return CycleReport(t0, seconds, n, n - len(errors) - len(skipped) - waiting,
                           len(errors), sum(u.client.stats.requests for u in self.gateways) - req0,
                           errors, len(skipped), waiting,
                           [r.latency_ms for r in readings if r.latency_ms is not None])

    async def flush(self) -> None:
        if self.buffer is None or not len(self.buffer):
            return
        try:
            await asyncio.to_thread(self.buffer.flush)
        except Exception as exc:  # database down: readings stay buffered, retried next cycle
            log.error("telemetry flush failed (%d readings kept): %s", len(self.buffer),
                      str(exc).splitlines()[0])

    def _write_status(self, pending: dict[int, tuple[str, str | None]]) -> None:
        assert self.engine is not None
        with session_scope(self.engine) as s:
            for device_id, (status, detail) in pending.items():
                row = s.get(Device, device_id)
                # only the poller's own bookkeeping: never over a status set meanwhile by
                # enrolment or an edit (a retired or re-probed device stays as they left it)
                if row is not None and row.status in (DeviceStatus.ACTIVE.value,
                                                      DeviceStatus.OFFLINE.value):
                    row.status = status
                    row.status_detail = detail[:2000] if detail else None
                    s.add(row)

    async def heartbeat_all(self) -> dict[int, str]:
        """Feed every device's watchdog / check leases; returns errors by device id."""
        errors: dict[int, str] = {}

        async def one(a: ProfileAdapter) -> None:
            try:
                await a.heartbeat()
            except (DeviceError, ValueError) as exc:  # ValueError: a value that cannot encode
                errors[a.device_id] = str(exc)

        await asyncio.gather(*(one(a) for u in self.gateways for a in u.adapters))
        return errors

    async def run(self, stop: asyncio.Event, cycles: int | None = None) -> None:
        """Every ``interval_s`` poll the devices that are due (:meth:`poll_due`) until ``stop``
        (or ``cycles`` ticks); meanwhile feed the watchdogs on their own loop
        (:class:`vpp.heartbeats.Heartbeats`, the daemon's): a cycle held up by a silent device,
        or a long poll period, never delays the devices' heartbeats."""
        heartbeats = Heartbeats(self, self.settings)
        hb_stop = asyncio.Event()
        hb_task = asyncio.create_task(heartbeats.run(hb_stop), name="vpp-poll-heartbeats")
        done = 0
        try:
            while not stop.is_set() and (cycles is None or done < cycles):
                t0 = time.monotonic()
                report = await self.poll_due()
                done += 1
                if report.failed:
                    log.info("cycle: %d/%d devices failed", report.failed, report.devices)
                if hb_task.done():  # the heartbeat loop died: no polling without it
                    hb_task.result()
                wait = max(0.0, self.settings.interval_s - (time.monotonic() - t0))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
        finally:
            hb_stop.set()
            hb_task.cancel()
            await asyncio.gather(hb_task, return_exceptions=True)
            await heartbeats.close()

    async def close(self, release: bool = True) -> None:
        """Release devices under our control (restores devices without a watchdog) and close."""
        for u in self.gateways:
            if release:
                for a in u.adapters:
                    if a.active_setpoint_kw is not None:
                        try:
                            await a.release()
                        except (DeviceError, ValueError) as exc:
                            log.error("device %s not released: %s", a.device_id, exc)
            await u.client.close()
        await self.flush()
