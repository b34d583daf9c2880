"""The fleet as a configuration file declares it: owners, their sites, gateways and devices.

Validated like the rest of the configuration (:mod:`vpp.config`, which re-exports these models):
unknown keys are errors; a device's limits and parameters are checked for its kind. Powers in
kW.
"""

from __future__ import annotations

from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vpp.device_kinds import DeviceKind, check_limits, parse_params

#: re-exported by vpp.config, where the rest of the configuration lives
__all__ = ["DeviceSpec", "GatewaySpec", "OwnerSpec", "SiteSpec"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceSpec(_Spec):
    """One device behind a gateway, as enrolled."""

    name: str = Field(..., min_length=1)
    kind: DeviceKind
    unit_id: int = Field(..., ge=0, le=255)
    profile: str = Field(..., min_length=1)
    rated_power_kw: float
    min_setpoint_kw: float
    max_setpoint_kw: float
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, v: Any) -> Any:
        if isinstance(v, str) and v not in {k.value for k in DeviceKind}:
            valid = ", ".join(k.value for k in DeviceKind)
            raise ValueError(f"unknown device kind {v!r} (valid: {valid})")
        return v

    @model_validator(mode="after")
    def _limits(self) -> DeviceSpec:
        try:
            params = parse_params(self.kind, self.params)
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            reason = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            raise ValueError(
                f"params.{where}: {reason.removeprefix('Value error, ')}" if where
                else f"params: {reason.removeprefix('Value error, ')}"
            ) from None
        check_limits(
            self.kind, self.rated_power_kw, self.min_setpoint_kw, self.max_setpoint_kw, params
        )
        return self


class GatewaySpec(_Spec):
    """A Modbus TCP gateway and the devices (unit ids) behind it."""

    host: str = Field(..., min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    devices: list[DeviceSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_units(self) -> GatewaySpec:
        seen: set[int] = set()
        for d in self.devices:
            if d.unit_id in seen:
                raise ValueError(
                    f"duplicate unit id {d.unit_id} on gateway {self.host}:{self.port}"
                )
            seen.add(d.unit_id)
        return self


class SiteSpec(_Spec):
    name: str = Field(..., min_length=1)
    region: str = ""
    gateways: list[GatewaySpec] = Field(default_factory=list)


class OwnerSpec(_Spec):
    name: str = Field(..., min_length=1)
    contact: str = ""
    sites: list[SiteSpec] = Field(default_factory=list)
