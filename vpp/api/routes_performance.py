"""The VPP's performance record (operators): ``GET /api/v1/performance`` shows it,
``POST /api/v1/performance/remedies`` records a remedy of a suspension.

The same computation as ``vpp performance`` (:mod:`vpp.performance`, the pure
:func:`bidding.performance_record.compute_record`) on the configured programme, as of the
daemon's clock, run off the event loop. A remedy dated in the future is refused (400); one
that would change nothing (the VPP is not suspended, or the date is before the suspension or
past its deadline) is a conflict (409).
"""

from __future__ import annotations

import functools

from sqlmodel import Session

from vpp.api.context import PARTS
from vpp.api.routing import Call, Route, roles
from vpp.domain.performance import PerformanceOut, RemedyIn, RemedyOut
from vpp.models import Role
from vpp.performance import add_remedy, performance_from_db


async def performance(call: Call) -> PerformanceOut:
    """State, since when, the remedy deadline, each settled event's verdict and each change's
    rule (:class:`~vpp.domain.performance.PerformanceOut`)."""
    parts = call.request.app[PARTS]
    b = parts.settings.bidding
    return await parts.db.call(functools.partial(
        performance_from_db, parts.db.engine, b.programme, b.programmes_dir, parts.clock()))


async def record_remedy(call: Call) -> RemedyOut:
    parts = call.request.app[PARTS]
    b = parts.settings.bidding
    body: RemedyIn = call.body
    actor, now = call.who.actor, parts.clock()

    def work(s: Session) -> RemedyOut:
        return add_remedy(s, b.programme, b.programmes_dir, body, actor, now)

    return await parts.db.run(work)


ROUTES = [
    Route("GET", "/api/v1/performance", performance,
          "The VPP's performance record under its programme: state (good, warned, suspended, "
          "expelled), since when, the remedy deadline, each settled event's verdict",
          "performance", roles(Role.OPERATOR), response=PerformanceOut),
    Route("POST", "/api/v1/performance/remedies", record_remedy,
          "Record the remedy of a suspension (the date it was done and what was done)",
          "performance", roles(Role.OPERATOR), body=RemedyIn, response=RemedyOut, status=201,
          raises=frozenset({409})),
]
