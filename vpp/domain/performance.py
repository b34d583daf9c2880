"""The VPP's performance record as the CLI and the API show it, and a remedy as the operator
records it (issue 20 item 4; the rules: :class:`bidding.programme.PerformanceRules`, the
computation: :mod:`bidding.performance_record`).

Dates are local calendar dates in the programme's zone; ratios are response over declared
energy (1.0 = delivered as declared); timestamps aware.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator

from vpp.domain.base import InModel, OutModel

#: the longest note a remedy takes (the column's width)
MAX_REMEDY_NOTE_CHARS = 500


class EventVerdictOut(OutModel):
    """One settled event: its ratio against the band floor it was settled under, and the
    record's state once it was counted."""

    event_id: int
    day: date
    performance_ratio: float
    floor_ratio: Decimal
    passed: bool
    state_after: Literal["good", "warned", "suspended", "expelled"]


class StateChangeOut(OutModel):
    """A change of state and the rule that caused it, in plain words (a remedy that changed
    nothing is listed too, with ``state_from == state_to``)."""

    on: date
    state_from: Literal["good", "warned", "suspended", "expelled"]
    state_to: Literal["good", "warned", "suspended", "expelled"]
    rule: str
    event_id: int | None


class RemedyOut(OutModel):
    """A remedy the operator recorded."""

    id: int
    remedied_on: date
    note: str
    actor: str
    created_at: datetime


class PerformanceRulesOut(OutModel):
    """The programme's rules the record applies (months are calendar months)."""

    source: str
    warn_after_failures: int
    suspend_after_failures: int
    failure_window_months: int
    remedy_deadline_months: int
    expel_on_failed_first_response_after_remedy: bool
    expel_after_suspensions: int
    suspension_window_months: int


class PerformanceOut(OutModel):
    """The record of the VPP in its programme as of ``as_of``: ``state`` since ``since``
    (None: good from the start); ``remedy_deadline``: the last day a remedy is accepted (only
    while suspended); ``refuses_bids``: the daemon refuses grid calls (suspended or expelled),
    for ``reason``; ``rules`` None: the programme keeps no record. ``events`` and ``changes``
    oldest first."""

    programme: str
    programme_version: date
    as_of: date
    state: Literal["good", "warned", "suspended", "expelled"]
    since: date | None
    remedy_deadline: date | None
    awaiting_first_response: bool
    failures_in_window: int
    suspensions_in_window: int
    refuses_bids: bool
    reason: str
    rules: PerformanceRulesOut | None
    events: list[EventVerdictOut]
    changes: list[StateChangeOut]
    remedies: list[RemedyOut]


class RemedyIn(InModel):
    """A remedy of a suspended VPP: the local date it was done (not in the future, not before
    the suspension) and what was done."""

    remedied_on: date = Field(..., description="local date (programme zone) of the remedy")
    note: str = Field(..., min_length=1, max_length=MAX_REMEDY_NOTE_CHARS,
                      description="what was done (repairs, metering fixed, ...)")

    @field_validator("note")
    @classmethod
    def _said(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the note must say what was done")
        return v.strip()
