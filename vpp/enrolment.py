"""Enrolment: probe a registered gateway and mark its devices active, or say what failed.

:func:`probe_gateway` (async; the API calls it) connects to the gateway, and for every device
behind it resolves the profile (a file, or ``sunspec`` by scanning), checks that the profile is
for the declared kind, reads the identity registers and checks them against the profile's
expectations, reads the state and checks it is plausible for the declared kind and rating. Each
device ends ``active`` or ``failed`` with the reason in ``status_detail``; the gateway ends
``active`` (at least one device works) or ``failed`` with ``last_error``. Reasons name the
failure: unreachable host, timeout, wrong unit id, illegal address, profile mismatch,
implausible values. Database work runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from device_adapters.adapter import ProfileAdapter
from device_adapters.errors import (
    ExceptionReply,
    GatewayUnreachable,
    ImplausibleValue,
    MalformedReply,
    RequestTimeout,
)
from device_adapters.factory import make_adapter
from device_adapters.modbus_client import GatewayClient
from device_adapters.profile import Profile
from vpp.config import PollingSettings
from vpp.db import session_scope
from vpp.device_kinds import MAY_EXPORT
from vpp.errors import ConfigError, DeviceError, NotFoundError, ValidationError
from vpp.gateway_hosts import HostPolicy
from vpp.models import AuditLog, Device, DeviceStatus, EnrolmentState, Gateway, utcnow
from vpp.profiles import load_stored


@dataclass
class DeviceProbe:
    device_id: int
    unit_id: int
    name: str
    ok: bool
    reason: str | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    power_kw: float | None = None


@dataclass
class ProbeReport:
    gateway_id: int
    endpoint: str
    state: str
    error: str | None
    devices: list[DeviceProbe]

    @property
    def ok(self) -> bool:
        return self.state == EnrolmentState.ACTIVE.value and all(d.ok for d in self.devices)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ExceptionReply):
        if exc.exception_code == 11:
            return f"wrong unit id: {exc}"
        if exc.exception_code == 2:
            return f"illegal address (profile mismatch?): {exc}"
        return f"exception reply: {exc}"
    if isinstance(exc, RequestTimeout):
        return f"timeout: {exc}"
    if isinstance(exc, GatewayUnreachable):
        return f"unreachable host: {exc}"
    if isinstance(exc, ImplausibleValue):
        return f"implausible values: {exc}"
    if isinstance(exc, MalformedReply):
        return f"malformed reply: {exc}"
    if isinstance(exc, ConfigError):
        return f"profile: {exc}"
    return str(exc)


async def _probe_device(adapter: ProfileAdapter, name: str) -> DeviceProbe:
    probe = DeviceProbe(adapter.device_id, adapter.unit_id, name, ok=False)
    prof = adapter.profile
    if prof.kind != adapter.kind:
        probe.reason = (f"profile mismatch: profile {prof.name} is for {prof.kind.value}, "
                        f"device declared {adapter.kind.value}")
        return probe
    if prof.identity.points:
        probe.identity = await adapter.read_points(prof.identity.points)
        for point, prefixes in prof.identity.expect.items():
            got = str(probe.identity.get(point, ""))
            if not any(got.startswith(p) for p in prefixes):
                probe.reason = (f"profile mismatch: {point} = {got!r}, expected one starting "
                                f"with {', '.join(repr(p) for p in prefixes)}")
                return probe
        for point, value in probe.identity.items():
            if value == "":
                probe.reason = f"profile mismatch: identity register {point} is empty"
                return probe
    state = await adapter.read_state()
    probe.power_kw = state.power_kw
    if adapter.kind not in MAY_EXPORT and state.power_kw < -0.05 * adapter.rated_power_kw:
        probe.reason = (f"implausible values: a {adapter.kind.value} exporting "
                        f"{-state.power_kw:.1f} kW")
        return probe
    probe.ok = True
    return probe


def _load(engine: Engine, gateway_id: int) -> tuple[Gateway, list[Device], dict[str, Profile]]:
    """The gateway (now ``probing``), the devices to probe and their stored profiles. A retired
    device stays retired when its gateway is re-probed; probing a retired gateway returns all
    of it to service."""
    with session_scope(engine) as s:
        gw = s.get(Gateway, gateway_id)
        if gw is None:
            raise NotFoundError(f"no gateway {gateway_id}")
        if gw.protocol != "modbus":
            raise ValidationError(f"gateway {gateway_id} is an OCPP charge point ({gw.host}): "
                                  "it enrols itself when it connects to the daemon and boots")
        devices = list(s.exec(select(Device).where(Device.gateway_id == gateway_id)
                              .order_by(col(Device.unit_id))).all())
        if gw.enrolment_state != EnrolmentState.RETIRED.value:
            devices = [d for d in devices if d.status != DeviceStatus.RETIRED.value]
        gw.enrolment_state = EnrolmentState.PROBING.value
        s.add(gw)
        return gw, devices, load_stored(s, {d.profile for d in devices})


def _store(engine: Engine, report: ProbeReport) -> None:
    with session_scope(engine) as s:
        gw = s.get(Gateway, report.gateway_id)
        assert gw is not None
        gw.enrolment_state = report.state
        gw.last_probe_at = utcnow()
        gw.last_error = report.error[:2000] if report.error else None
        s.add(gw)
        for d in report.devices:
            row = s.get(Device, d.device_id)
            if row is None:
                continue
            row.status = DeviceStatus.ACTIVE.value if d.ok else DeviceStatus.FAILED.value
            row.status_detail = None if d.ok else (d.reason or "")[:2000]
            s.add(row)
        s.add(AuditLog(actor="enrolment", action="gateway_probed",
                       subject=f"gateway:{report.gateway_id}",
                       detail={"state": report.state, "error": report.error,
                               "devices": {str(d.device_id): d.reason or "ok"
                                           for d in report.devices}}))


async def probe_gateway(
    engine: Engine, gateway_id: int, settings: PollingSettings | None = None,
    profiles_dir: Path | None = None, hosts: HostPolicy | None = None,
) -> ProbeReport:
    """Probe gateway ``gateway_id`` and record the outcome (see the module docstring).

    ``hosts``: the gateway host policy, checked again before connecting (a name may resolve
    elsewhere than at enrolment); a refused host fails the probe with the reason."""
    settings = settings or PollingSettings()
    gw, devices, stored = await asyncio.to_thread(_load, engine, gateway_id)
    endpoint = f"{gw.host}:{gw.port}"
    if hosts is not None:
        try:
            await hosts.check_async(gw.host, gw.port)
        except ValidationError as exc:
            refused = [DeviceProbe(d.id or 0, d.unit_id, d.name, False, exc.message)
                       for d in devices]
            report = ProbeReport(gateway_id, endpoint, EnrolmentState.FAILED.value,
                                 exc.message, refused)
            await asyncio.to_thread(_store, engine, report)
            return report
    client = GatewayClient(gw.host, gw.port, timeout_s=settings.probe_timeout_s,
                           retries=settings.probe_retries, backoff_base_s=settings.backoff_base_s)
    probes: list[DeviceProbe] = []
    error: str | None = None
    try:
        try:
            await client.connect()
        except GatewayUnreachable as exc:
            error = _reason(exc)
            probes = [DeviceProbe(d.id or 0, d.unit_id, d.name, False, error) for d in devices]
        else:
            for d in devices:
                try:
                    adapter = await make_adapter(
                        client, device_id=d.id or 0, unit_id=d.unit_id, kind=d.kind,
                        profile=stored.get(d.profile, d.profile),
                        rated_power_kw=d.rated_power_kw,
                        min_setpoint_kw=d.min_setpoint_kw, max_setpoint_kw=d.max_setpoint_kw,
                        params=d.params, profiles_dir=profiles_dir)
                    probes.append(await _probe_device(adapter, d.name))
                except (DeviceError, ConfigError) as exc:
                    probes.append(DeviceProbe(d.id or 0, d.unit_id, d.name, False, _reason(exc)))
    finally:
        await client.close()
    if not devices:
        error = error or "no devices behind this gateway"
    failed = [p for p in probes if not p.ok]
    if error is None and failed:
        error = "; ".join(f"unit {p.unit_id}: {p.reason}" for p in failed)
    state = (EnrolmentState.ACTIVE.value if any(p.ok for p in probes)
             else EnrolmentState.FAILED.value)
    report = ProbeReport(gateway_id, endpoint, state, error, probes)
    await asyncio.to_thread(_store, engine, report)
    return report


def probe_gateway_sync(engine: Engine, gateway_id: int, settings: PollingSettings | None = None,
                       profiles_dir: Path | None = None,
                       hosts: HostPolicy | None = None) -> ProbeReport:
    """:func:`probe_gateway` for callers without an event loop (the CLI)."""
    return asyncio.run(probe_gateway(engine, gateway_id, settings, profiles_dir, hosts))
