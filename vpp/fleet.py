"""Fleet registry: owners, tokens, sites, gateways and devices in the database.

Plain functions over a :class:`sqlmodel.Session`; every input is validated by the same models
that validate configuration (:mod:`vpp.config`, :mod:`vpp.device_kinds`). Errors are
:class:`vpp.errors.VppError` subclasses with one-line messages; nothing is half-written (callers
use :func:`vpp.db.session_scope`, which rolls back on error).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pydantic
from sqlmodel import Session, select

from vpp.config import DeviceSpec, GatewaySpec, OwnerSpec, first_error
from vpp.errors import ConflictError, NotFoundError, ValidationError
from vpp.gateway_hosts import HostPolicy
from vpp.models import AuditLog, Device, EnrolmentState, Gateway, Owner, Site
from vpp.profiles import check_device_profile
from vpp.tokens import issue_token, revoke_token  # noqa: F401  (re-exported)


def get_owner(session: Session, name_or_id: str | int) -> Owner:
    """Find an owner by id or exact name."""
    if isinstance(name_or_id, int) or str(name_or_id).isdigit():
        owner = session.get(Owner, int(name_or_id))
    else:
        owner = session.exec(select(Owner).where(Owner.name == name_or_id)).first()
    if owner is None:
        raise NotFoundError(f"no owner {name_or_id!r}")
    return owner


def add_owner(session: Session, name: str, contact: str = "") -> Owner:
    name = name.strip()
    if not name:
        raise ValidationError("owner name must not be empty")
    if session.exec(select(Owner).where(Owner.name == name)).first() is not None:
        raise ConflictError(f"owner {name!r} already exists")
    owner = Owner(name=name, contact=contact)
    session.add(owner)
    session.flush()
    return owner


def get_or_create_site(session: Session, owner: Owner, name: str, region: str = "") -> Site:
    site = session.exec(
        select(Site).where(Site.owner_id == owner.id, Site.name == name)
    ).first()
    if site is None:
        assert owner.id is not None, "owner is not flushed"
        site = Site(owner_id=owner.id, name=name, region=region)
        session.add(site)
        session.flush()
    return site


@dataclass(frozen=True)
class EnrolledGateway:
    gateway: Gateway
    devices: list[Device]


def add_gateway(
    session: Session, owner: Owner, site_name: str, spec: GatewaySpec | dict, region: str = "",
    *, hosts: HostPolicy | None = None, actor: str = "cli",
) -> EnrolledGateway:
    """Register a gateway and its devices (state ``registered`` / ``pending`` until probed).

    ``spec`` is validated by :class:`GatewaySpec` (kinds, limits, unique unit ids); every
    device's profile must exist, be usable by the owner and be for the device's kind; with
    ``hosts`` the host and port must pass the gateway host policy (every user-facing entry
    point passes it; seeding code and tests may not). A gateway already at the same host and
    port is a conflict, except one that never enrolled and holds no history: a ``failed`` one
    (anyone's: a failed probe holds no claim on an endpoint) or the same owner's
    ``registered`` one is replaced, so a corrected command simply succeeds.
    """
    if not isinstance(spec, GatewaySpec):
        try:
            spec = GatewaySpec.model_validate(spec)
        except pydantic.ValidationError as exc:
            raise ValidationError(first_error(exc)) from None
    assert owner.id is not None, "owner is not flushed"
    for d in spec.devices:
        check_device_profile(session, d.profile, d.kind, owner.id)
    if hosts is not None:
        hosts.check(spec.host, spec.port)
    existing = session.exec(
        select(Gateway).where(Gateway.host == spec.host, Gateway.port == spec.port)
    ).first()
    if existing is not None:
        _replace_or_refuse(session, existing, owner, actor)
    site = get_or_create_site(session, owner, site_name, region)
    assert site.id is not None, "site is flushed"
    gw = Gateway(site_id=site.id, owner_id=owner.id, host=spec.host, port=spec.port)
    session.add(gw)
    session.flush()
    devices = [_device_row(gw, site, owner, d) for d in spec.devices]
    session.add_all(devices)
    session.flush()
    session.add(
        AuditLog(actor=actor, action="gateway_registered", subject=f"gateway:{gw.id}",
                 detail={"host": gw.host, "port": gw.port, "owner_id": owner.id,
                         "units": [d.unit_id for d in devices]})
    )
    return EnrolledGateway(gw, devices)


def _replace_or_refuse(session: Session, existing: Gateway, owner: Owner, actor: str) -> None:
    """Delete ``existing`` if a new enrolment may take its endpoint (see :func:`add_gateway`),
    else raise :class:`ConflictError` saying what to do instead."""
    from vpp.fleet_edit import gateway_history, remove_gateway_rows

    state = existing.enrolment_state
    replaceable = state == EnrolmentState.FAILED.value or (
        state == EnrolmentState.REGISTERED.value and existing.owner_id == owner.id)
    if replaceable and not gateway_history(session, int(existing.id or 0)):
        remove_gateway_rows(session, existing, actor, action="gateway_replaced")
        return
    where = f"gateway {existing.host}:{existing.port} is already registered " \
            f"(gateway {existing.id}, {state})"
    if state == EnrolmentState.RETIRED.value:
        raise ConflictError(f"{where}: probe it again (`vpp gateway probe {existing.id}`) to "
                            "return it to service, or edit it")
    raise ConflictError(f"{where}: edit it (`vpp gateway edit {existing.id}`) or remove it "
                        "first")


def _device_row(gw: Gateway, site: Site, owner: Owner, d: DeviceSpec) -> Device:
    assert gw.id is not None and site.id is not None and owner.id is not None, "not flushed"
    return Device(
        gateway_id=gw.id, site_id=site.id, owner_id=owner.id, name=d.name, kind=d.kind.value,
        unit_id=d.unit_id, profile=d.profile, rated_power_kw=d.rated_power_kw,
        min_setpoint_kw=d.min_setpoint_kw, max_setpoint_kw=d.max_setpoint_kw, params=d.params,
    )


def load_fleet(session: Session, owners: Sequence[OwnerSpec], *,
               hosts: HostPolicy | None = None) -> int:
    """Register the owners, sites, gateways and devices of a fleet file; idempotent (existing
    owners and gateways are kept as they are). ``hosts``: the gateway host policy (see
    :func:`add_gateway`). Returns the number of devices added."""
    added = 0
    for o in owners:
        owner = session.exec(select(Owner).where(Owner.name == o.name)).first()
        if owner is None:
            owner = add_owner(session, o.name, o.contact)
        for s in o.sites:
            for g in s.gateways:
                exists = session.exec(
                    select(Gateway).where(Gateway.host == g.host, Gateway.port == g.port)
                ).first()
                if exists is not None:
                    continue
                added += len(add_gateway(session, owner, s.name, g, s.region, hosts=hosts).devices)
    return added


@dataclass(frozen=True)
class DeviceRow:
    device: Device
    owner: str
    site: str
    gateway: str


def list_devices(
    session: Session, owner: Owner | None = None, kind: str | None = None
) -> list[DeviceRow]:
    """Devices with their owner, site and gateway names, ordered by id."""
    stmt = (
        # sqlmodel's select() overloads stop at 4 entities; at runtime it takes any number
        select(Device, Owner.name, Site.name, Gateway.host, Gateway.port)  # type: ignore[call-overload]
        .join(Owner, Owner.id == Device.owner_id)
        .join(Site, Site.id == Device.site_id)
        .join(Gateway, Gateway.id == Device.gateway_id)
        .order_by(Device.id)
    )
    if owner is not None:
        stmt = stmt.where(Device.owner_id == owner.id)
    if kind is not None:
        stmt = stmt.where(Device.kind == kind)
    return [
        DeviceRow(d, on, sn, f"{host}:{port}") for d, on, sn, host, port in session.exec(stmt)
    ]


def set_device_status(
    session: Session, device: Device, status: str, detail: str | None = None,
    at: datetime | None = None,
) -> None:
    device.status = status
    device.status_detail = detail
    session.add(device)
