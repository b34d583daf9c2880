"""Edit, retire and remove gateways and devices (the CLI and the API call these).

History is kept: a gateway or device with telemetry or setpoints is never deleted (settlements,
baselines and audits refer to it); :func:`remove_gateway` / :func:`remove_device` refuse it
with the reason and ask to retire it instead. Retiring keeps every row and takes the device(s)
out of polling, planning and bidding (status ``retired``); probing a retired gateway again
returns it to service. Every change writes an :class:`~vpp.models.AuditLog` row with who did
it and what changed.

Edits are validated like enrolment: the edited device must pass :class:`~vpp.config.DeviceSpec`
(kind, limits, parameters) and its profile :func:`vpp.profiles.check_device_profile`; a new
host or port must pass the gateway host policy. What an edit invalidates is probed again: a
new host or port puts the gateway back to ``registered`` (its devices ``pending``); a new kind,
profile or unit id puts that device back to ``pending``. Limits, rating, parameters and name
take effect at once (a running daemon rebuilds the device's adapter within one poll cycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pydantic
from sqlmodel import Session, col, select

from vpp.config import DeviceSpec, first_error
from vpp.errors import ConflictError, NotFoundError, ValidationError
from vpp.gateway_hosts import HostPolicy
from vpp.models import (
    AuditLog,
    Device,
    DeviceStatus,
    EnrolmentState,
    Gateway,
    Setpoint,
    TelemetryReading,
)
from vpp.profiles import check_device_profile

#: device fields whose change needs the device probed again before it is polled
REPROBE_FIELDS = frozenset({"kind", "profile", "unit_id"})


@dataclass(frozen=True)
class GatewayEdit:
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class DeviceEdit:
    """Fields left ``None`` keep their value; ``params`` replaces the kind's parameters."""

    name: str | None = None
    kind: str | None = None
    unit_id: int | None = None
    profile: str | None = None
    rated_power_kw: float | None = None
    min_setpoint_kw: float | None = None
    max_setpoint_kw: float | None = None
    params: dict[str, Any] | None = None


# -- history ----------------------------------------------------------------------------------
def device_history(session: Session, device_ids: list[int]) -> str | None:
    """What history the devices have (telemetry, setpoints), or ``None``."""
    if not device_ids:
        return None
    tel = session.exec(select(TelemetryReading.id).where(
        col(TelemetryReading.device_id).in_(device_ids)).limit(1)).first()
    sp = session.exec(select(Setpoint.id).where(
        col(Setpoint.device_id).in_(device_ids)).limit(1)).first()
    found = [w for w, hit in (("telemetry", tel), ("setpoints", sp)) if hit is not None]
    return " and ".join(found) or None


def gateway_history(session: Session, gateway_id: int) -> str | None:
    return device_history(session, _device_ids(session, gateway_id))


def _device_ids(session: Session, gateway_id: int) -> list[int]:
    return [int(i) for i in session.exec(
        select(Device.id).where(Device.gateway_id == gateway_id)).all() if i is not None]


# -- lookups with the owner's scope -----------------------------------------------------------
def get_gateway(session: Session, gateway_id: int, owner_scope: int | None = None) -> Gateway:
    """The gateway; an owner (``owner_scope``) sees only its own (others: not found)."""
    gw = session.get(Gateway, gateway_id)
    if gw is None or (owner_scope is not None and gw.owner_id != owner_scope):
        raise NotFoundError(f"no gateway {gateway_id}")
    return gw


def get_device(session: Session, device_id: int, owner_scope: int | None = None) -> Device:
    d = session.get(Device, device_id)
    if d is None or (owner_scope is not None and d.owner_id != owner_scope):
        raise NotFoundError(f"no device {device_id}")
    return d


# -- gateways ---------------------------------------------------------------------------------
def edit_gateway(session: Session, gw: Gateway, edit: GatewayEdit, actor: str,
                 hosts: HostPolicy | None) -> dict[str, Any]:
    """Move the gateway to a new host and/or port; returns the changes (empty: nothing).
    An OCPP charge point has neither (it connects to the daemon): refused."""
    if gw.protocol == "ocpp":
        raise ValidationError(
            f"gateway {gw.id} is OCPP charge point {gw.host!r}: it has no host or port to "
            "move (it connects to the daemon's central system); to change its identity, "
            "retire or remove it and register the new one (`vpp gateway add-ocpp`)")
    host = gw.host if edit.host is None else edit.host.strip()
    port = gw.port if edit.port is None else edit.port
    if not host:
        raise ValidationError("host must not be empty")
    if not 1 <= port <= 65535:
        raise ValidationError(f"port {port} is outside 1-65535")
    if (host, port) == (gw.host, gw.port):
        return {}
    if hosts is not None:
        hosts.check(host, port)
    taken = session.exec(select(Gateway).where(Gateway.host == host, Gateway.port == port,
                                               Gateway.id != gw.id)).first()
    if taken is not None:
        raise ConflictError(f"gateway {host}:{port} is already registered (gateway {taken.id})")
    changes = {"host": [gw.host, host], "port": [gw.port, port]}
    gw.host, gw.port = host, port
    if gw.enrolment_state != EnrolmentState.RETIRED.value:
        gw.enrolment_state = EnrolmentState.REGISTERED.value
        for d in session.exec(select(Device).where(Device.gateway_id == gw.id)).all():
            if d.status != DeviceStatus.RETIRED.value:
                d.status, d.status_detail = DeviceStatus.PENDING.value, "gateway moved: probe again"
                session.add(d)
    session.add(gw)
    session.add(AuditLog(actor=actor, action="gateway_edited", subject=f"gateway:{gw.id}",
                         detail={"changes": changes}))
    return changes


def retire_gateway(session: Session, gw: Gateway, actor: str) -> int:
    """Take the gateway and all its devices out of service; returns how many devices."""
    n = 0
    for d in session.exec(select(Device).where(Device.gateway_id == gw.id)).all():
        if d.status != DeviceStatus.RETIRED.value:
            d.status, d.status_detail = DeviceStatus.RETIRED.value, f"gateway retired by {actor}"
            session.add(d)
            n += 1
    gw.enrolment_state = EnrolmentState.RETIRED.value
    session.add(gw)
    session.add(AuditLog(actor=actor, action="gateway_retired", subject=f"gateway:{gw.id}",
                         detail={"devices_retired": n}))
    return n


def remove_gateway(session: Session, gw: Gateway, actor: str) -> None:
    """Delete a gateway and its devices that have no history; otherwise refuse."""
    history = gateway_history(session, int(gw.id or 0))
    if history:
        raise ConflictError(f"gateway {gw.id} has history ({history}) and is kept: retire it "
                            f"instead (`vpp gateway retire {gw.id}`)")
    remove_gateway_rows(session, gw, actor)


def remove_gateway_rows(session: Session, gw: Gateway, actor: str,
                        action: str = "gateway_removed") -> None:
    """Delete the rows (callers have checked there is no history)."""
    devices = session.exec(select(Device).where(Device.gateway_id == gw.id)).all()
    detail = {"host": gw.host, "port": gw.port, "owner_id": gw.owner_id,
              "state": gw.enrolment_state,
              "devices": {str(d.id): f"unit {d.unit_id} {d.kind} {d.profile}" for d in devices}}
    for d in devices:
        session.delete(d)
    session.flush()
    session.delete(gw)
    session.flush()
    session.add(AuditLog(actor=actor, action=action, subject=f"gateway:{gw.id}", detail=detail))


# -- devices ----------------------------------------------------------------------------------
def edit_device(session: Session, d: Device, edit: DeviceEdit, actor: str) -> dict[str, Any]:
    """Apply ``edit`` after validating the result like an enrolment; returns the changes."""
    current = {"name": d.name, "kind": d.kind, "unit_id": d.unit_id, "profile": d.profile,
               "rated_power_kw": d.rated_power_kw, "min_setpoint_kw": d.min_setpoint_kw,
               "max_setpoint_kw": d.max_setpoint_kw, "params": dict(d.params or {})}
    wanted = {k: v for k, v in vars(edit).items() if v is not None}
    merged = {**current, **wanted}
    try:
        spec = DeviceSpec.model_validate(merged)
    except pydantic.ValidationError as exc:
        reason = first_error(exc).removeprefix("key (top level): ")
        raise ValidationError(f"device {d.id}: {reason}") from None
    check_device_profile(session, spec.profile, spec.kind, d.owner_id)
    new = {**spec.model_dump(mode="json"), "kind": spec.kind.value}
    changes = {k: [current[k], new[k]] for k in current if current[k] != new[k]}
    if not changes:
        return {}
    if "unit_id" in changes and session.exec(select(Device.id).where(
            Device.gateway_id == d.gateway_id, Device.unit_id == spec.unit_id,
            Device.id != d.id)).first() is not None:
        raise ConflictError(f"unit id {spec.unit_id} is already enrolled on gateway "
                            f"{d.gateway_id}")
    for k in changes:
        setattr(d, k, new[k])
    if REPROBE_FIELDS & changes.keys() and d.status != DeviceStatus.RETIRED.value:
        d.status = DeviceStatus.PENDING.value
        d.status_detail = f"{', '.join(sorted(REPROBE_FIELDS & changes.keys()))} changed: " \
                          "probe the gateway again"
    session.add(d)
    session.add(AuditLog(actor=actor, action="device_edited", subject=f"device:{d.id}",
                         detail={"changes": changes}))
    return changes


def retire_device(session: Session, d: Device, actor: str) -> None:
    d.status, d.status_detail = DeviceStatus.RETIRED.value, f"retired by {actor}"
    session.add(d)
    session.add(AuditLog(actor=actor, action="device_retired", subject=f"device:{d.id}"))


def remove_device(session: Session, d: Device, actor: str) -> None:
    """Delete a device without history; otherwise refuse (retire it instead)."""
    history = device_history(session, [int(d.id or 0)])
    if history:
        raise ConflictError(f"device {d.id} has history ({history}) and is kept: retire it "
                            f"instead (`vpp device retire {d.id}`)")
    detail = {"gateway_id": d.gateway_id, "unit_id": d.unit_id, "kind": d.kind,
              "profile": d.profile, "owner_id": d.owner_id}
    session.delete(d)
    session.flush()
    session.add(AuditLog(actor=actor, action="device_removed", subject=f"device:{d.id}",
                         detail=detail))
