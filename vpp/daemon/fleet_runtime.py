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
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from device_adapters.factory import make_adapter
from device_adapters.protocol import DeviceState, SetpointResult
from vpp.errors import ConfigError, DeviceError
from vpp.models import Device, DeviceStatus, EnrolmentState, Gateway
from vpp.poller import DeviceStats, Poller

if TYPE_CHECKING:
    from vpp.daemon.services import Services

log = logging.getLogger("vpp.daemon.fleet")


def _active_rows(s: Session) -> list[tuple[Gateway, list[Device]]]:
    gws = s.exec(select(Gateway).where(Gateway.enrolment_state.in_(  # type: ignore[attr-defined]
        [EnrolmentState.ACTIVE.value, EnrolmentState.OFFLINE.value])).order_by(Gateway.id)).all()
    out = []
    for g in gws:
        devs = s.exec(select(Device).where(
            Device.gateway_id == g.id,
            Device.status.in_([DeviceStatus.ACTIVE.value,  # type: ignore[attr-defined]
                               DeviceStatus.OFFLINE.value])).order_by(Device.unit_id)).all()
        out.append((g, list(devs)))
    return out


class FleetRuntime:
    def __init__(self, services: Services, poller: Poller | None = None) -> None:
        self.services = services
        settings = services.settings
        self.poller = poller or Poller(services.db.engine, settings.polling)
        self._known: set[tuple[int, int]] = set()  # (gateway id, device id) being polled
        self._last_hb = 0.0
        self._need_refresh = True
        self.last_setpoints: dict[int, float] = {}
        self._priority = 0
        self.skipped_polls = 0

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
                        params=d.params, profiles_dir=self.poller.profiles_dir)
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
        if time.monotonic() - self._last_hb >= self.services.settings.polling.watchdog_period_s:
            errors = await self.poller.heartbeat_all()
            self._last_hb = time.monotonic()
            for dev_id, err in errors.items():
                log.warning("heartbeat failed: %s", err, extra={"device_id": dev_id})

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
            result = await a.apply_setpoint(setpoint_kw)
        except DeviceError as exc:
            result = SetpointResult(device_id, setpoint_kw, 0.0, False, None, False, str(exc))
        if result.error is None or result.readback_kw is not None:
            self.last_setpoints[device_id] = result.written_kw
        return result

    async def release(self, device_ids: list[int]) -> dict[int, str]:
        errors: dict[int, str] = {}

        async def one(i: int) -> None:
            try:
                await self.poller.adapter(i).release()
                self.last_setpoints.pop(i, None)
            except KeyError:
                pass
            except DeviceError as exc:
                errors[i] = str(exc)

        await asyncio.gather(*(one(i) for i in device_ids))
        return errors

    async def close(self) -> None:
        """Close connections without releasing: a restarted daemon resumes the event, and the
        devices' watchdogs/leases return them to their own behaviour if it does not."""
        await self.poller.close(release=False)
