"""The owner portal's statement: ``GET /api/v1/statement?period=2026-12`` answers the monthly
HTML statement ``vpp report --period`` writes for each owner (the same function,
:func:`bidding.report.owner_period_statement`), for the calling owner, in JSON with the file name
(the page saves it; JSON keeps the route in the typed, documented table), and the owner's part of
the month's capacity payment once posted (:mod:`bidding.capacity_ledger`).

A month is the service's local calendar month (``service.timezone``); every event that started
in it and has a settlement counts, at its current settlement version, as in the CLI report.
"""

from __future__ import annotations

import re
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field
from sqlmodel import Session, col, select

from bidding import report as rpt
from bidding.capacity_ledger import month_capacity
from bidding.ledger import current_settlement
from device_adapters.profile import list_profiles, load_profile
from vpp import profiles
from vpp.api.context import PARTS
from vpp.api.routing import Call, Route, roles
from vpp.domain.base import InModel, OutModel
from vpp.errors import NotFoundError, ValidationError
from vpp.models import GridEvent, Owner, Role

PERIOD_PATTERN = r"^(20\d\d)-(0[1-9]|1[0-2])$"
PERIOD = re.compile(PERIOD_PATTERN)


class StatementQuery(InModel):
    period: str | None = Field(None, pattern=PERIOD_PATTERN,
                               description="a local calendar month, 2000-01 to 2099-12 "
                                           "(default: the current one)")


class StatementOut(OutModel):
    """The statement page (``html``, self-contained) and the file name to save it as."""

    period: str
    owner_id: int
    events: int  # settled events of the month the owner took part in
    capacity_fen: int | None = None  # the month's capacity payment to the owner (None: not posted)
    filename: str
    html: str


def _month(period: str, tz: str) -> tuple[datetime, datetime]:
    m = PERIOD.match(period)
    if m is None:
        raise ValidationError(f"query.period: a month like 2026-12 (2000-2099), got {period[:20]!r}")
    first = datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=ZoneInfo(tz))
    return first, (first + timedelta(days=32)).replace(day=1)


def _views(s: Session, first: datetime, nxt: datetime, tz: str) -> list[rpt.EventView]:
    """The month's settled events, as the CLI's ``vpp report`` reads them."""
    names = {int(o.id or 0): o.name for o in s.exec(select(Owner))}
    views = []
    for ev in s.exec(select(GridEvent).where(col(GridEvent.start) >= first,
                                             col(GridEvent.start) < nxt)
                     .order_by(col(GridEvent.start))):
        st = current_settlement(s, int(ev.id or 0))
        if st is None or "result" not in (st.detail or {}):
            continue
        views.append(rpt.view_from_detail(
            int(ev.id or 0), ev.external_id, ev.programme, st.version,
            ev.start.astimezone(ZoneInfo(tz)).isoformat(),
            ev.end.astimezone(ZoneInfo(tz)).isoformat(), st.detail["result"], names))
    return views


async def owner_statement(call: Call) -> StatementOut:
    q: StatementQuery = call.query
    parts = call.request.app[PARTS]
    tz = parts.settings.service.timezone
    period = q.period or f"{parts.clock().astimezone(ZoneInfo(tz)):%Y-%m}"
    first, nxt = _month(period, tz)
    owner_id = int(call.who.owner_id or 0)

    def work(s: Session) -> StatementOut:
        owner = s.get(Owner, owner_id)
        if owner is None:
            raise NotFoundError(f"no owner {owner_id}")
        views = _views(s, first, nxt, tz)
        mine = [v for v in views if any(int(o["owner_id"]) == owner_id for o in v.owners)]
        with tempfile.TemporaryDirectory(prefix="vpp-statement-") as tmp:
            capacity = month_capacity(s, period)
            path = rpt.owner_period_statement(
                period, owner_id, owner.name, views, Path(tmp),
                None if capacity is None else capacity.get(owner_id, 0))
            return StatementOut(period=period, owner_id=owner_id, events=len(mine),
                                capacity_fen=None if capacity is None else capacity.get(owner_id, 0),
                                filename=path.name, html=path.read_text())

    return await parts.db.run(work)


class CatalogueEntry(OutModel):
    """A device profile an owner can enrol with: packaged (``owner_id`` None, ``packaged``) or
    stored through the API."""

    name: str
    kind: str
    vendor: str
    description: str
    packaged: bool


def _catalogue(s: Session, scope: int | None) -> list[CatalogueEntry]:
    out = []
    for name in list_profiles():
        p = load_profile(name)
        out.append(CatalogueEntry(name=name, kind=p.kind.value, vendor=p.vendor,
                                  description=p.description, packaged=True))
    for row in profiles.list_stored(s, scope):
        body = row.body or {}
        out.append(CatalogueEntry(name=row.name, kind=row.kind, vendor=str(body.get("vendor", "")),
                                  description=str(body.get("description", "")), packaged=False))
    return out


async def profile_catalogue(call: Call) -> list[CatalogueEntry]:
    """Every profile the caller may enrol a device with: the packaged ones, then the stored
    ones it can see (the enrolment form's picker)."""
    scope = call.owner_scope()
    return await call.request.app[PARTS].db.run(lambda s: _catalogue(s, scope))


ROUTES = [
    Route("GET", "/api/v1/profile-catalogue", profile_catalogue,
          "Packaged and stored device profiles, for enrolment", "devices",
          roles(Role.OPERATOR, Role.OWNER), response=list[CatalogueEntry]),
    Route("GET", "/api/v1/statement", owner_statement,
          "The calling owner's monthly statement (HTML, as `vpp report` writes it)", "owners",
          roles(Role.OWNER), query=StatementQuery, response=StatementOut),
]
