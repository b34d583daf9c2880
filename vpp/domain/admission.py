"""The VPP's type and its admission check, as bidding computes it and the CLI and the API show it.

:class:`VppType` is declared once in the configuration (``[bidding] vpp_type``);
:class:`AdmissionResult` is what :func:`bidding.admission.assess_admission` returns, served as is
by ``GET /api/v1/admission`` and printed by ``vpp admission --json``. kW, hours and percent as
the field names and ``unit`` say; timestamps aware.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import Field

from vpp.domain.base import InModel, OutModel

#: Fewest and most days of history a caller may ask the admission check to read.
MIN_ADMISSION_HISTORY_DAYS, MAX_ADMISSION_HISTORY_DAYS = 1, 60


class VppType(StrEnum):
    """The VPP's type under the Hunan 2026 rules (负荷类, 发电类, 混合类)."""

    LOAD = "load"
    GENERATION = "generation"
    MIXED = "mixed"


class RuleStatus(StrEnum):
    """A rule's verdict: ``unknown`` when the measure cannot be made (no history for the
    normal load), ``not_applicable`` when the rule does not apply to the VPP's type."""

    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"
    NOT_APPLICABLE = "not_applicable"


class RuleCheck(OutModel):
    """One admission rule: what the programme requires, what the fleet measures, by how much it
    passes (``margin`` > 0) or fails (< 0), in ``unit``, and where the figure comes from."""

    name: str
    applies_to: list[VppType]
    required: float
    measured: float | None
    unit: str
    status: RuleStatus
    margin: float | None
    key: str  # the programme file's key
    verified: bool  # False when the programme version lists the key as unverified
    source: str
    note: str = ""


class OwnerNormalLoad(OutModel):
    """An owner's normal load over the reference window (None: no history or forecast) and
    the days it is the mean over."""

    owner_id: int
    normal_load_kw: float | None
    basis: str


class AdmissionResult(OutModel):
    """The admission check of the fleet under the programme version in force on the day.

    ``down_kw``: the net load reduction the fleet can hold for one measurement interval
    (peak shaving; for generation, more output); ``up_kw``: the rise (valley filling);
    ``adjustable_kw`` their sum. ``duration_h``: the longest continuous time the fleet holds an
    adjustable capacity (up plus down, each in its best part of the window) of at least
    ``duration_at_kw``; ``duration_capped``: it holds it for the whole window, so longer is
    possible. ``share_pct``: ``adjustable_kw`` as a share of ``normal_load_kw``.
    """

    programme: str
    programme_version: date
    vpp_type: VppType
    window_start: datetime
    window_end: datetime
    interval_minutes: int
    down_kw: float
    up_kw: float
    adjustable_kw: float
    duration_h: float
    duration_at_kw: float
    duration_capped: bool
    normal_load_kw: float | None
    share_pct: float | None
    owners: list[OwnerNormalLoad]
    devices_counted: int
    devices_excluded: dict[str, int]  # reason -> devices
    capacity_basis: str
    rules: list[RuleCheck]
    admitted: bool


class AdmissionQuery(InModel):
    """``GET /api/v1/admission``: the reference day (default: today in the programme's zone),
    the window on it (``HH:MM-HH:MM``, on the programme's interval grid; default: the
    programme's peak-shaving window) and the days of history before it."""

    day: date | None = Field(None, ge=date(2000, 1, 1), le=date(2099, 12, 31))
    window: str | None = Field(None, pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$")
    history_days: int = Field(10, ge=MIN_ADMISSION_HISTORY_DAYS, le=MAX_ADMISSION_HISTORY_DAYS)
