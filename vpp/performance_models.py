"""The operator's remedies of a suspended VPP (issue 20 item 4), as a database table.

A remedy is an operator action: the date the VPP remedied what got it suspended (its devices
repaired, its metering fixed) and a note saying what was done. The performance record
(:mod:`bidding.performance_record`) reads these rows together with the settled events; the
table is created by migration ``0006_performance_remedy``. Timestamps aware (UTC); the remedy
date is a local calendar date in the programme's zone.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Field, SQLModel

from vpp.models import utcnow
from vpp.types import AwareDateTime


class PerformanceRemedy(SQLModel, table=True):
    """One remedy recorded by the operator for the VPP in one programme."""

    __tablename__ = "performance_remedy"
    id: int | None = Field(default=None, primary_key=True)
    programme: str = Field(max_length=100, index=True)
    remedied_on: date  # local date in the programme's zone
    note: str = Field(max_length=500)
    actor: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime)
