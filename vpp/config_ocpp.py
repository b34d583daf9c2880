"""The ``[ocpp]`` section: the daemon's OCPP central system (:mod:`vpp.ocpp`), off by default.

Charge points connect to ``ws[s]://host:port/<path_prefix>/<identity>`` with the identity and
HTTP Basic password their owner registered (``vpp gateway add-ocpp``). Times in seconds.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: the WebSocket subprotocol of each supported OCPP version
SUBPROTOCOLS = {"2.0.1": "ocpp2.0.1", "1.6": "ocpp1.6"}


class OcppSettings(BaseModel):
    """``versions``: accepted OCPP versions, in order of preference when a charge point offers
    several. ``profile_validity_s``: every charging profile sent ends this long after it is
    sent (``validTo`` and the schedule's ``duration``), so a charger the daemon stops talking
    to returns to its own default (the fallback); heartbeats renew a held profile once half of
    it has run. ``meter_stale_s``: a connector whose last meter value is older than this reads
    as failed (offline after ``polling.offline_after_failures`` polls)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=9000, ge=0, le=65535)  # 0: a free port (tests)
    path_prefix: str = Field(default="/ocpp", pattern=r"^(/[A-Za-z0-9._~-]+)*$")
    versions: list[str] = Field(default_factory=lambda: ["2.0.1", "1.6"], min_length=1)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    heartbeat_interval_s: int = Field(default=300, ge=10, le=86400)
    call_timeout_s: float = Field(default=10.0, gt=0, le=300)
    profile_validity_s: int = Field(default=1200, ge=60, le=86400)
    meter_stale_s: float = Field(default=120.0, gt=0)
    stack_level: int = Field(default=8, ge=0, le=100)  # the stack level of our profiles

    @field_validator("versions")
    @classmethod
    def _versions(cls, v: list[str]) -> list[str]:
        unknown = [x for x in v if x not in SUBPROTOCOLS]
        if unknown:
            raise ValueError(f"unknown OCPP version(s) {unknown} (supported: "
                             f"{', '.join(SUBPROTOCOLS)})")
        if len(set(v)) != len(v):
            raise ValueError("a version is listed twice")
        return v

    @model_validator(mode="after")
    def _tls(self) -> OcppSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        return self

    @property
    def subprotocols(self) -> list[str]:
        return [SUBPROTOCOLS[v] for v in self.versions]
