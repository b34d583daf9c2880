"""An enrolment probe's progress, as the background job reports it and the API shows it."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from vpp.domain.base import OutModel


class ProbeProgress(OutModel):
    state: str  # queued | running | done | failed
    step: str
    done: int
    total: int
    started_at: datetime | None
    finished_at: datetime | None
    message: str | None
    devices: dict[str, str] = Field(default_factory=dict)  # unit id -> status
