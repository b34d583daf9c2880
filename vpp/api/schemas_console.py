"""Request and response models of the operator console's routes (:mod:`vpp.api.routes_console`).

Powers are kW as the field names say (the page scales them to MW for display); money is integer
fen plus a display string in yuan; timestamps are aware. Every query parameter is bounded, so
the OpenAPI document states the whole input space.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal, get_args

from pydantic import Field

from vpp.api.routing import MAX_ID
from vpp.device_kinds import DeviceKind
from vpp.domain.base import InModel as _In
from vpp.domain.base import OutModel as _Out
from vpp.models import DeviceStatus

#: as literals, inline in the document (the enums' $refs would be to schemas it does not hold)
KindName = Literal["commercial_building", "industrial_load", "ev_charger", "battery",
                   "v2g_charger", "pv_inverter"]
StatusName = Literal["pending", "active", "offline", "quarantined", "failed", "retired"]
assert set(get_args(KindName)) == {k.value for k in DeviceKind}
assert set(get_args(StatusName)) == {s.value for s in DeviceStatus}

#: a search string: free text, no NUL (PostgreSQL refuses it in text)
SEARCH = Field(None, max_length=100, pattern=r"^[^\x00]*$",
               description="case-insensitive substring of the device's name, profile or owner")


class FleetFilter(_In):
    """Which devices: all filters must hold (absent: any)."""

    kind: KindName | None = None
    status: StatusName | None = None
    owner_id: int | None = Field(None, ge=1, le=MAX_ID)
    q: str | None = SEARCH


class SummaryQuery(FleetFilter):
    top: int = Field(20, ge=1, le=200,
                     description="groups per dimension; the rest are summed into 'other'")


class DevicePageQuery(FleetFilter):
    sort: Literal["id", "name", "kind", "owner", "status", "rated"] = "id"
    order: Literal["asc", "desc"] = "asc"
    offset: int = Field(0, ge=0, le=10_000_000)
    limit: int = Field(50, ge=1, le=500)


class SummaryGroup(_Out):
    """One group of devices: ``key`` is the kind, status or owner id (``other``: the groups
    beyond ``top``); ``power_kw`` sums the last reading of its devices that have one."""

    key: str
    label: str
    devices: int
    online: int
    rated_kw: float
    power_kw: float | None


class FleetSummaryOut(_Out):
    devices: int
    online: int
    rated_kw: float
    power_kw: float | None
    by_kind: list[SummaryGroup]
    by_status: list[SummaryGroup]
    by_owner: list[SummaryGroup]


class ConsoleDevice(_Out):
    id: int
    name: str
    kind: str
    owner_id: int
    owner_name: str
    profile: str
    status: str
    rated_power_kw: float
    power_kw: float | None = None
    setpoint_kw: float | None = None
    soc_pct: float | None = None
    last_seen_at: datetime | None = None


class DevicePageOut(_Out):
    total: int
    offset: int
    limit: int
    items: list[ConsoleDevice]


class BandOut(_Out):
    """The programme's effective-response band, % of the declared kW: paid between ``lower_pct``
    and ``upper_pct`` (capped above), penalised below ``lower_pct``."""

    programme: str
    lower_pct: Decimal
    upper_pct: Decimal
    basis: str


class LedgerEntryOut(_Out):
    account: str
    owner_id: int | None
    amount_fen: int
    amount_yuan: str


class LedgerTransactionOut(_Out):
    id: int
    kind: str
    description: str
    reverses_id: int | None
    created_at: datetime
    entries: list[LedgerEntryOut]


class EventExtrasOut(_Out):
    """What the event page needs beyond the event routes: the paid band (None when the event's
    programme cannot be loaded) and the ledger transactions posted for the event."""

    event_id: int
    band: BandOut | None
    band_error: str | None
    ledger: list[LedgerTransactionOut]


class ForecastPoint(_Out):
    """kW of the forecast sites summed: the lowest, middle and highest quantile forecast
    (None outside the forecast) and the metered load (None where not yet known)."""

    ts: datetime
    low_kw: float | None
    mid_kw: float | None
    high_kw: float | None
    actual_kw: float | None


class ForecastOut(_Out):
    """The daemon's latest load forecast over its sites against their metered load.
    ``state`` is the forecaster's (``ok``, ``insufficient_history`` with the reason in
    ``message``, ``error``, ``not_run``); ``levels``: the quantiles shown as low, mid, high."""

    state: str
    message: str
    origin: datetime | None
    sites_forecast: int
    levels: list[float]
    points: list[ForecastPoint]
