"""Edit, retire and remove gateways and devices; owners' device profiles.

Same authorisation as enrolment: operators act on every owner's fleet, an owner token only on
its own (others' answer 404). The work is :mod:`vpp.fleet_edit` / :mod:`vpp.profiles`, shared
with the CLI. A change reaches the running daemon at its next poll step (this process asks for
it at once; another process's change is seen through the fleet revision). What a change
invalidates (a gateway moved; a device's kind, unit id or profile) is probed again in the
background, as at enrolment.
"""

from __future__ import annotations

from sqlmodel import Session

from vpp import fleet_edit, profiles
from vpp.api.context import PARTS
from vpp.api.routing import Call, Route, roles
from vpp.api.schemas import DeviceOut, GatewayOut
from vpp.api.schemas_fleet import (
    DevicePatch,
    GatewayPatch,
    ProfileOut,
    ProfileSubmit,
    Removed,
)
from vpp.daemon.parts import DaemonParts
from vpp.errors import ConfigError, ValidationError
from vpp.gateway_hosts import HostPolicy
from vpp.models import DeviceProfileRow, DeviceStatus, EnrolmentState, Role

OP_OWNER = roles(Role.OPERATOR, Role.OWNER)


def _parts(call: Call) -> DaemonParts:
    return call.request.app[PARTS]


def _changed(call: Call, probe_gateway: int | None = None) -> None:
    """Tell this process's daemon parts: reload the fleet now; probe what needs it."""
    parts = _parts(call)
    parts.fleet.request_refresh()
    if probe_gateway is not None:
        parts.enrolment.start(probe_gateway)


async def _gateway(call: Call, gateway_id: int) -> GatewayOut:
    from vpp.api.routes_fleet import _load_gateway

    return await _load_gateway(call, gateway_id)


# ----------------------------------------------------------------------------------- gateways
async def patch_gateway(call: Call) -> GatewayOut:
    gateway_id = int(call.path["gateway_id"])
    body: GatewayPatch = call.body
    scope, actor = call.owner_scope(), call.who.actor
    hosts = HostPolicy.from_settings(_parts(call).settings.enrolment)

    def work(s: Session) -> bool:
        gw = fleet_edit.get_gateway(s, gateway_id, scope)
        changes = fleet_edit.edit_gateway(s, gw, fleet_edit.GatewayEdit(body.host, body.port),
                                          actor, hosts)
        return bool(changes) and gw.enrolment_state == EnrolmentState.REGISTERED.value

    reprobe = await _parts(call).db.run(work)
    _changed(call, gateway_id if reprobe else None)
    return await _gateway(call, gateway_id)


async def retire_gateway(call: Call) -> GatewayOut:
    gateway_id = int(call.path["gateway_id"])
    scope, actor = call.owner_scope(), call.who.actor
    await _parts(call).db.run(lambda s: fleet_edit.retire_gateway(
        s, fleet_edit.get_gateway(s, gateway_id, scope), actor))
    _changed(call)
    return await _gateway(call, gateway_id)


async def delete_gateway(call: Call) -> Removed:
    gateway_id = int(call.path["gateway_id"])
    scope, actor = call.owner_scope(), call.who.actor
    await _parts(call).db.run(lambda s: fleet_edit.remove_gateway(
        s, fleet_edit.get_gateway(s, gateway_id, scope), actor))
    _changed(call)
    return Removed(removed=f"gateway {gateway_id}")


# ----------------------------------------------------------------------------------- devices
async def _device(call: Call, device_id: int) -> DeviceOut:
    from vpp.api.routes_fleet import get_device

    return await get_device(call)


async def patch_device(call: Call) -> DeviceOut:
    device_id = int(call.path["device_id"])
    body: DevicePatch = call.body
    scope, actor = call.owner_scope(), call.who.actor

    def work(s: Session) -> int | None:
        d = fleet_edit.get_device(s, device_id, scope)
        changes = fleet_edit.edit_device(s, d, fleet_edit.DeviceEdit(
            **body.model_dump(exclude_unset=True)), actor)
        return d.gateway_id if changes and d.status == DeviceStatus.PENDING.value else None

    reprobe = await _parts(call).db.run(work)
    _changed(call, reprobe)
    return await _device(call, device_id)


async def retire_device(call: Call) -> DeviceOut:
    device_id = int(call.path["device_id"])
    scope, actor = call.owner_scope(), call.who.actor
    await _parts(call).db.run(lambda s: fleet_edit.retire_device(
        s, fleet_edit.get_device(s, device_id, scope), actor))
    _changed(call)
    return await _device(call, device_id)


async def delete_device(call: Call) -> Removed:
    device_id = int(call.path["device_id"])
    scope, actor = call.owner_scope(), call.who.actor
    await _parts(call).db.run(lambda s: fleet_edit.remove_device(
        s, fleet_edit.get_device(s, device_id, scope), actor))
    _changed(call)
    return Removed(removed=f"device {device_id}")


# ----------------------------------------------------------------------------------- profiles
def _profile_out(row: DeviceProfileRow) -> ProfileOut:
    return ProfileOut(name=row.name, kind=row.kind, owner_id=row.owner_id,
                      created_at=row.created_at, profile=row.body)  # type: ignore[arg-type]


async def submit_profile(call: Call) -> ProfileOut:
    body: ProfileSubmit = call.body
    if call.who.role is Role.OWNER:
        if body.owner_id is not None and body.owner_id != call.who.owner_id:
            raise ValidationError("body.owner_id: an owner submits profiles only for itself")
        owner_id = call.who.owner_id
    else:
        owner_id = body.owner_id
    actor = call.who.actor
    data = body.profile.model_dump(mode="json")

    def work(s: Session) -> ProfileOut:
        if owner_id is not None:
            from vpp.fleet import get_owner

            get_owner(s, owner_id)
        try:
            row = profiles.submit_profile(s, data, owner_id, actor)
        except ConfigError as exc:
            raise ValidationError(f"body.{exc.message}") from None
        return _profile_out(row)

    return await _parts(call).db.run(work)


async def list_profiles(call: Call) -> list[ProfileOut]:
    scope = call.owner_scope()
    return await _parts(call).db.run(
        lambda s: [_profile_out(r) for r in profiles.list_stored(s, scope)])


async def get_profile(call: Call) -> ProfileOut:
    name, scope = str(call.path["name"]), call.owner_scope()
    return await _parts(call).db.run(
        lambda s: _profile_out(profiles.get_stored(s, name, scope)))


async def delete_profile(call: Call) -> Removed:
    name, scope, actor = str(call.path["name"]), call.owner_scope(), call.who.actor
    await _parts(call).db.run(lambda s: profiles.delete_profile(s, name, scope, actor))
    return Removed(removed=f"profile {name}")


ROUTES = [
    Route("PATCH", "/api/v1/gateways/{gateway_id}", patch_gateway,
          "Move a gateway (new host/port); it is probed again there", "gateways", OP_OWNER,
          body=GatewayPatch, response=GatewayOut, raises=frozenset({409})),
    Route("POST", "/api/v1/gateways/{gateway_id}/retire", retire_gateway,
          "Take a gateway and its devices out of service (history kept)", "gateways",
          OP_OWNER, response=GatewayOut),
    Route("DELETE", "/api/v1/gateways/{gateway_id}", delete_gateway,
          "Delete a gateway without history (409 if it has some: retire it)", "gateways",
          OP_OWNER, response=Removed, raises=frozenset({409})),
    Route("PATCH", "/api/v1/devices/{device_id}", patch_device,
          "Change a device (validated like enrolment)", "devices", OP_OWNER,
          body=DevicePatch, response=DeviceOut, raises=frozenset({409})),
    Route("POST", "/api/v1/devices/{device_id}/retire", retire_device,
          "Take a device out of service (history kept)", "devices", OP_OWNER,
          response=DeviceOut),
    Route("DELETE", "/api/v1/devices/{device_id}", delete_device,
          "Delete a device without history (409 if it has some: retire it)", "devices",
          OP_OWNER, response=Removed, raises=frozenset({409})),
    Route("GET", "/api/v1/device-profiles", list_profiles,
          "Stored device profiles (owners: theirs and the shared ones)", "profiles", OP_OWNER,
          response=list[ProfileOut]),
    Route("POST", "/api/v1/device-profiles", submit_profile,
          "Submit a device profile (validated like config/device_profiles/*.toml)",
          "profiles", OP_OWNER, body=ProfileSubmit, response=ProfileOut, status=201,
          raises=frozenset({404, 409})),
    Route("GET", "/api/v1/device-profiles/{name}", get_profile, "One stored device profile",
          "profiles", OP_OWNER, response=ProfileOut),
    Route("DELETE", "/api/v1/device-profiles/{name}", delete_profile,
          "Delete a stored profile no device uses", "profiles", OP_OWNER, response=Removed, raises=frozenset({409})),
]
