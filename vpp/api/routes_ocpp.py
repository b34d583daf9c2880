"""OCPP charge points: ``POST /api/v1/charge-points`` registers one (the REST counterpart of
``vpp gateway add-ocpp``).

The owner (or an operator on an owner's behalf) names the charge point's identity and its
connectors; the daemon generates its HTTP Basic password and answers it once (only a salted hash
is stored: :func:`vpp.ocpp_gateways.hash_password`), with the URL the charge point connects to.
Registration is the shared one (:func:`vpp.ocpp_gateways.add_ocpp_gateway`, the CLI's): the
gateway is ``registered`` with its connectors ``pending`` until the charge point connects and
its BootNotification is accepted; it is then listed, edited (refused: it has no endpoint),
retired and removed like any gateway under ``/api/v1/gateways``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from sqlmodel import Session

from vpp import fleet
from vpp.api.context import PARTS
from vpp.api.routes_fleet import OP_OWNER, _load_gateway
from vpp.api.routing import MAX_ID, Call, Route
from vpp.api.schemas import GatewayOut, _In, _Out
from vpp.config_ocpp import OcppSettings
from vpp.errors import ValidationError
from vpp.models import AuditLog, Role
from vpp.ocpp_gateways import (
    IDENTITY_PATTERN,
    add_ocpp_gateway,
    connector_devices,
    new_password,
)

Connector = Annotated[int, Field(ge=1, le=255)]


class ChargePointEnrol(_In):
    """Register an OCPP 1.6J / 2.0.1 charge point: one ``ev_charger`` device per connector
    (1.6J connector id, 2.0.1 EVSE id), each rated ``rated_power_kw`` and limited to 0 kW ..
    ``rated_power_kw``. ``owner_id`` is for operators registering on an owner's behalf; owners
    register for themselves."""

    owner_id: int | None = Field(None, ge=1, le=MAX_ID)
    site: str = Field(..., min_length=1, max_length=100)
    region: str = Field("", max_length=100)
    identity: str = Field(..., pattern=IDENTITY_PATTERN,
                          description="the last segment of the URL the charge point connects to")
    connector_ids: list[Connector] = Field(
        default_factory=lambda: [1], min_length=1, max_length=64,
        json_schema_extra={"uniqueItems": True})
    rated_power_kw: float = Field(..., gt=0, le=1000)

    @field_validator("connector_ids")
    @classmethod
    def _unique(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("a connector id is listed twice")
        return v


class ChargePointEnrolled(_Out):
    """The registered charge point and its credentials: ``password`` is shown this once."""

    gateway: GatewayOut
    identity: str
    password: str = Field(..., description="HTTP Basic password; not retrievable again")
    url: str = Field(..., description="where the charge point connects (its identity last)")


def connect_url(settings: OcppSettings, identity: str) -> str:
    """The central system's URL for ``identity`` as configured (``wss`` with TLS)."""
    scheme = "wss" if settings.tls_cert_file is not None else "ws"
    return f"{scheme}://{settings.host}:{settings.port}{settings.path_prefix}/{identity}"


async def enrol_charge_point(call: Call) -> ChargePointEnrolled:
    body: ChargePointEnrol = call.body
    if call.who.role is Role.OWNER:
        if body.owner_id is not None and body.owner_id != call.who.owner_id:
            raise ValidationError("body.owner_id: an owner registers charge points only for "
                                  "itself")
        owner_id = int(call.who.owner_id or 0)
    elif body.owner_id is None:
        raise ValidationError("body.owner_id: field required when an operator registers")
    else:
        owner_id = body.owner_id
    actor, password = call.who.actor, new_password()
    spec = {"identity": body.identity, "password": password,
            "devices": connector_devices(body.site, body.identity, body.connector_ids,
                                         body.rated_power_kw)}
    parts = call.request.app[PARTS]

    def work(s: Session) -> int:
        owner = fleet.get_owner(s, owner_id)
        enrolled = add_ocpp_gateway(s, owner, body.site, spec, body.region, actor=actor,
                                    generated=True)
        s.add(AuditLog(actor=actor, action="gateway_enrol_requested",
                       subject=f"gateway:{enrolled.gateway.id}", detail={"via": "api"}))
        return int(enrolled.gateway.id or 0)

    gateway_id = await parts.db.run(work)
    parts.fleet.request_refresh()
    return ChargePointEnrolled(gateway=await _load_gateway(call, gateway_id),
                               identity=body.identity, password=password,
                               url=connect_url(parts.settings.ocpp, body.identity))


ROUTES = [
    Route("POST", "/api/v1/charge-points", enrol_charge_point,
          "Register an OCPP charge point; its password is answered once", "gateways", OP_OWNER,
          body=ChargePointEnrol, response=ChargePointEnrolled, status=201,
          raises=frozenset({404, 409})),
]
