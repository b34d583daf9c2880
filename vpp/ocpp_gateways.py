"""OCPP charge points in the fleet registry: enrolment, credentials, and what the central
system (:mod:`vpp.ocpp`) reads and records.

An OCPP charge point is a :class:`~vpp.models.Gateway` with ``protocol = "ocpp"``: its ``host``
is the charge point's identity (the last segment of the WebSocket URL it connects to), its
``port`` 0 (so the gateway endpoint's uniqueness makes identities unique and no identity can
clash with a Modbus endpoint), and each connector (OCPP 1.6 connector id, OCPP 2.0.1 EVSE id)
is an ``ev_charger`` :class:`~vpp.models.Device` of its owner with the connector as unit id.
Enrolment is the shared one: same owners, sites, device validation (:class:`DeviceSpec`), audit
log and retire/remove (:mod:`vpp.fleet_edit`); the difference is that a charge point enrols
itself when it connects and its BootNotification is accepted (the OCPP counterpart of a probe:
:func:`record_boot` marks it active).

Passwords (HTTP Basic, OCPP security profiles 1 and 2): 16 to 40 characters (OCPP 2.0.1's
``BasicAuthPassword``), generated when not given (shown once). Only a salted verifier is
stored, and its cost follows what an attacker holding the database could guess: a password
the owner chose is kept as PBKDF2-SHA256 (a slow hash against dictionary guessing); a
generated one (192 random bits, :func:`new_password`) cannot be guessed whatever the hash
costs, so it is kept as a salted SHA-256, as the API's bearer tokens are (:mod:`vpp.security`),
and checked in microseconds: a daemon restart that thousands of charge points reconnect to
costs no PBKDF2 storm.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection
from dataclasses import dataclass

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import Session, col, select

from vpp.config import DeviceSpec, first_error
from vpp.device_kinds import DeviceKind
from vpp.errors import ConflictError, ValidationError
from vpp.fleet import EnrolledGateway, _replace_or_refuse, get_or_create_site
from vpp.models import AuditLog, Device, DeviceStatus, EnrolmentState, Gateway, Owner, utcnow

OCPP = "ocpp"
#: the profile name an OCPP connector device carries (no register map: the protocol is OCPP)
OCPP_PROFILE = "ocpp"
PBKDF2_ITERATIONS = 20_000
SLOW, FAST = "pbkdf2_sha256", "sha256"  # the verifiers' schemes (see hash_password)
#: OCPP-J identities: unreserved URL characters (RFC 3986), at most 48 (OCPP 2.0.1 part 4)
IDENTITY_PATTERN = r"^[A-Za-z0-9._~-]{1,48}$"


class OcppGatewaySpec(BaseModel):
    """A charge point as its owner registers it; each device's ``unit_id`` is a connector."""

    model_config = ConfigDict(extra="forbid")

    identity: str = Field(..., pattern=IDENTITY_PATTERN)
    password: str = Field(..., min_length=16, max_length=40)
    devices: list[DeviceSpec] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _connectors(self) -> OcppGatewaySpec:
        seen: set[int] = set()
        for d in self.devices:
            if d.kind is not DeviceKind.EV_CHARGER:
                raise ValueError(f"{d.name}: an OCPP connector is an ev_charger, not a "
                                 f"{d.kind.value}")
            if d.profile != OCPP_PROFILE:
                raise ValueError(f"{d.name}: an OCPP connector's profile is {OCPP_PROFILE!r}")
            if d.unit_id < 1:
                raise ValueError(f"{d.name}: connector ids start at 1 (0 is the whole charger)")
            if d.unit_id in seen:
                raise ValueError(f"connector {d.unit_id} declared twice on {self.identity}")
            seen.add(d.unit_id)
        return self


def connector_devices(site: str, identity: str, connector_ids: list[int], rated_kw: float,
                      max_kw: float | None = None) -> list[dict[str, object]]:
    """The ``ev_charger`` device of each connector, as the CLI and the REST API register them:
    limits 0 kW to ``max_kw`` (default the rating), one connector of ``rated_kw`` each."""
    return [{"name": f"{site}/{identity}/c{c}", "kind": DeviceKind.EV_CHARGER.value,
             "unit_id": c, "profile": OCPP_PROFILE, "rated_power_kw": rated_kw,
             "min_setpoint_kw": 0.0, "max_setpoint_kw": rated_kw if max_kw is None else max_kw,
             "params": {"connectors": 1, "max_charge_kw_per_connector": rated_kw}}
            for c in connector_ids]


def new_password() -> str:
    """A random 32-character password (192 bits), inside OCPP's 16-40 characters."""
    return secrets.token_urlsafe(24)


def hash_password(password: str, *, generated: bool, salt: bytes | None = None) -> str:
    """The stored verifier: ``sha256$1$salt$digest`` for a :func:`new_password` password
    (``generated``), else ``pbkdf2_sha256$iterations$salt$digest`` (see the module docstring)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    iterations = 1 if generated else PBKDF2_ITERATIONS
    return f"{FAST if generated else SLOW}${iterations}${salt.hex()}$" \
           f"{_digest(password, salt, generated, iterations).hex()}"


def _digest(password: str, salt: bytes, fast: bool, iterations: int) -> bytes:
    if fast:
        return hashlib.sha256(salt + password.encode()).digest()
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)


def is_slow_hash(stored: str | None) -> bool:
    """Whether checking against ``stored`` costs a PBKDF2 (worth a worker thread)."""
    return bool(stored) and str(stored).startswith(SLOW + "$")


def check_password(password: str, stored: str | None) -> bool:
    """Constant-time check of ``password`` against a :func:`hash_password` string."""
    if not stored:
        return False
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme not in (FAST, SLOW):
            return False
        got = _digest(password, bytes.fromhex(salt), scheme == FAST, int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def add_ocpp_gateway(session: Session, owner: Owner, site_name: str,
                     spec: OcppGatewaySpec | dict, region: str = "", *,
                     actor: str = "cli", generated: bool = False) -> EnrolledGateway:
    """Register a charge point and its connectors (``registered`` / ``pending`` until its
    first accepted BootNotification). The identity is refused if registered already, as an
    endpoint is (:func:`vpp.fleet.add_gateway`'s rule: a never-enrolled one may be replaced).
    ``generated``: the password came from :func:`new_password` (its verifier: see
    :func:`hash_password`)."""
    if not isinstance(spec, OcppGatewaySpec):
        try:
            spec = OcppGatewaySpec.model_validate(spec)
        except pydantic.ValidationError as exc:
            raise ValidationError(first_error(exc)) from None
    assert owner.id is not None, "owner is not flushed"
    existing = session.exec(select(Gateway).where(Gateway.host == spec.identity,
                                                  Gateway.port == 0)).first()
    if existing is not None:
        try:
            _replace_or_refuse(session, existing, owner, actor)
        except ConflictError:  # its advice (edit, probe) is for a Modbus endpoint
            raise ConflictError(
                f"charge point {spec.identity} is already registered (gateway {existing.id}, "
                f"{existing.enrolment_state}): remove it first (`vpp gateway remove "
                f"{existing.id}`), or register the charge point under another identity") from None
    site = get_or_create_site(session, owner, site_name, region)
    assert site.id is not None, "site is flushed"
    gw = Gateway(site_id=site.id, owner_id=owner.id, host=spec.identity, port=0,
                 protocol=OCPP, ocpp_password_hash=hash_password(spec.password, generated=generated))
    session.add(gw)
    session.flush()
    assert gw.id is not None
    devices = [Device(gateway_id=gw.id, site_id=site.id, owner_id=owner.id, name=d.name,
                      kind=d.kind.value, unit_id=d.unit_id, profile=OCPP_PROFILE,
                      rated_power_kw=d.rated_power_kw, min_setpoint_kw=d.min_setpoint_kw,
                      max_setpoint_kw=d.max_setpoint_kw, params=d.params)
               for d in spec.devices]
    session.add_all(devices)
    session.flush()
    session.add(AuditLog(actor=actor, action="gateway_registered", subject=f"gateway:{gw.id}",
                         detail={"protocol": OCPP, "identity": spec.identity,
                                 "owner_id": owner.id, "units": [d.unit_id for d in devices]}))
    return EnrolledGateway(gw, devices)


@dataclass(frozen=True)
class ConnectorRecord:
    """One connector device as the central system runs it (kW limits)."""

    device_id: int
    connector_id: int
    name: str
    status: str
    rated_power_kw: float
    min_setpoint_kw: float
    max_setpoint_kw: float
    params_key: str  # the kind parameters, serialised: a change means a rebuild


@dataclass(frozen=True)
class ChargePointRecord:
    gateway_id: int
    identity: str
    owner_id: int
    state: str
    password_hash: str | None
    connectors: tuple[ConnectorRecord, ...]


def load_charge_points(session: Session,
                       identities: Collection[str] | None = None) -> dict[str, ChargePointRecord]:
    """Every OCPP charge point not retired (or only those of ``identities``), by identity,
    with its connectors not retired."""
    stmt = select(Gateway).where(Gateway.protocol == OCPP,
                                 Gateway.enrolment_state != EnrolmentState.RETIRED.value)
    if identities is not None:
        stmt = stmt.where(col(Gateway.host).in_(list(identities)), Gateway.port == 0)
    gws = session.exec(stmt).all()
    if not gws:
        return {}
    devs = session.exec(select(Device).where(col(Device.gateway_id).in_([g.id for g in gws]),
                                             Device.status != DeviceStatus.RETIRED.value)
                        .order_by(col(Device.unit_id))).all()
    by_gw: dict[int, list[ConnectorRecord]] = {}
    for d in devs:
        by_gw.setdefault(d.gateway_id, []).append(ConnectorRecord(
            int(d.id or 0), d.unit_id, d.name, d.status, d.rated_power_kw, d.min_setpoint_kw,
            d.max_setpoint_kw, repr(sorted((d.params or {}).items()))))
    return {g.host: ChargePointRecord(int(g.id or 0), g.host, g.owner_id, g.enrolment_state,
                                      g.ocpp_password_hash, tuple(by_gw.get(int(g.id or 0), [])))
            for g in gws}


def record_boot(session: Session, gateway_id: int, detail: dict[str, str]) -> bool:
    """An accepted BootNotification: the charge point is enrolled (gateway ``active``, its
    pending or failed connectors ``active``), audited with what it reported. Returns whether
    this changed the fleet (first boot, or a return from failure)."""
    gw = session.get(Gateway, gateway_id)
    if gw is None:
        return False
    changed = gw.enrolment_state != EnrolmentState.ACTIVE.value
    gw.enrolment_state = EnrolmentState.ACTIVE.value
    gw.last_probe_at = utcnow()
    gw.last_error = None
    session.add(gw)
    for d in session.exec(select(Device).where(Device.gateway_id == gateway_id)).all():
        if d.status in (DeviceStatus.PENDING.value, DeviceStatus.FAILED.value):
            d.status, d.status_detail = DeviceStatus.ACTIVE.value, None
            session.add(d)
            changed = True
    session.add(AuditLog(actor="ocpp", action="charge_point_booted",
                         subject=f"gateway:{gateway_id}", detail=detail))
    return changed
