"""What the daemon should poll, read from the database: the fleet's desired state.

:func:`load_desired` reads the fleet revision (:class:`vpp.models.FleetRevision`, moved by
every committed fleet change, from any process) and the active gateways and devices, each
device with a :class:`DeviceKey`: everything its adapter is built from. The runtime compares
keys with what it polls: a device whose key changed (limits, profile, gateway moved) is
rebuilt, one that is no longer active (retired, removed, failed) is dropped, a new one added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from device_adapters.profile import Profile
from vpp.models import Device, DeviceStatus, EnrolmentState, Gateway, fleet_revision
from vpp.profiles import load_stored

#: gateways whose devices are polled (``probing``: an active gateway being re-probed)
LIVE_GATEWAY = (EnrolmentState.ACTIVE.value, EnrolmentState.OFFLINE.value,
                EnrolmentState.PROBING.value)
LIVE_DEVICE = (DeviceStatus.ACTIVE.value, DeviceStatus.OFFLINE.value)


@dataclass(frozen=True)
class DeviceKey:
    """Everything a device's adapter is built from; a change means a rebuild."""

    gateway_id: int
    host: str
    port: int
    unit_id: int
    kind: str
    profile: str
    rated_power_kw: float
    min_setpoint_kw: float
    max_setpoint_kw: float
    params_json: str
    profile_json: str  # a stored profile's body ("" for packaged ones)


@dataclass
class DesiredFleet:
    revision: int
    gateways: dict[int, Gateway] = field(default_factory=dict)
    devices: dict[int, tuple[Device, DeviceKey]] = field(default_factory=dict)
    stored: dict[str, Profile] = field(default_factory=dict)


def load_desired(s: Session) -> DesiredFleet:
    """The revision first, then the rows: a change committed in between moves the revision
    again, so the next check reloads (never a stale fleet under a new revision)."""
    out = DesiredFleet(fleet_revision(s))
    gws = s.exec(select(Gateway).where(col(Gateway.enrolment_state).in_(LIVE_GATEWAY),
                                       Gateway.protocol == "modbus")).all()  # OCPP: vpp.ocpp
    out.gateways = {int(g.id or 0): g for g in gws}
    if not out.gateways:
        return out
    devs = s.exec(select(Device).where(col(Device.status).in_(LIVE_DEVICE),
                                       col(Device.gateway_id).in_(sorted(out.gateways)))
                  .order_by(col(Device.gateway_id), col(Device.unit_id))).all()
    out.stored = load_stored(s, {d.profile for d in devs})
    for d in devs:
        g = out.gateways[d.gateway_id]
        prof = out.stored.get(d.profile)
        out.devices[int(d.id or 0)] = (d, DeviceKey(
            d.gateway_id, g.host, g.port, d.unit_id, d.kind, d.profile, d.rated_power_kw,
            d.min_setpoint_kw, d.max_setpoint_kw, json.dumps(d.params or {}, sort_keys=True),
            prof.model_dump_json() if prof is not None else ""))
    return out


def read_revision(s: Session) -> int:
    return fleet_revision(s)
