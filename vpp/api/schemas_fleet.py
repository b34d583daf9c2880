"""Request and response models of the fleet's edit, retire, remove and device-profile routes
(:mod:`vpp.api.routes_fleet_edit`); the same conventions as :mod:`vpp.api.schemas`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from device_adapters.profile import Profile
from vpp.api.schemas import _In, _Out


class GatewayPatch(_In):
    """Move a gateway: a new host and/or port (checked by the gateway host policy). The
    gateway is then probed again at its new place before its devices are polled."""

    # "give host and/or port", as the document says it (the validator below is the same rule)
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["host"], "properties": {"host": {"type": "string"}}},
        {"required": ["port"], "properties": {"port": {"type": "integer"}}}]})

    host: str | None = Field(None, min_length=1, max_length=255)
    port: int | None = Field(None, ge=1, le=65535)

    @model_validator(mode="after")
    def _something(self) -> GatewayPatch:
        if self.host is None and self.port is None:
            raise ValueError("nothing to change: give host and/or port")
        return self


class DevicePatch(_In):
    """Change a device; the result is validated like an enrolment (kind, limits in kW,
    parameters, profile). ``params`` replaces the kind's parameters. A new kind, unit id or
    profile puts the device back to ``pending`` and its gateway is probed again; limits,
    rating, parameters and name take effect within one poll cycle."""

    name: str | None = Field(None, min_length=1, max_length=200)
    kind: str | None = Field(None, min_length=1, max_length=40)
    unit_id: int | None = Field(None, ge=0, le=255)
    profile: str | None = Field(None, min_length=1, max_length=100)
    rated_power_kw: float | None = None
    min_setpoint_kw: float | None = None
    max_setpoint_kw: float | None = None
    params: dict[str, Any] | None = None


class Removed(_Out):
    removed: str  # what was deleted, e.g. "gateway 3"


class ProfileSubmit(_In):
    """A device profile, exactly as a ``config/device_profiles/NAME.toml`` file would hold it
    (see docs/device-adapters.md). ``owner_id``: operators may submit for one owner (or leave
    it out: usable by every owner); owners submit for themselves."""

    owner_id: int | None = Field(None, ge=1, le=2**31 - 1)
    profile: Profile


class ProfileOut(_Out):
    name: str
    kind: str
    owner_id: int | None  # None: submitted by an operator for every owner
    created_at: datetime
    profile: Profile
