"""The bid that counts for an event, in one place: the latest one stored (highest id).

An event may be bid more than once (a re-bid replaces the offer); planning, control, delivery,
settlement, the API and the CLI all read the one returned here, so they agree on the declared kW
and the owners' shares.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from vpp.errors import NotFoundError
from vpp.models import Bid


def latest_bid(session: Session, event_id: int) -> Bid | None:
    """The event's latest bid, or ``None`` if it has none."""
    return session.exec(
        select(Bid).where(Bid.event_id == event_id).order_by(col(Bid.id).desc())
    ).first()


def require_bid(session: Session, event_id: int) -> Bid:
    """The event's latest bid; :class:`NotFoundError` if it was never bid (nothing to settle
    against or to dispatch for)."""
    bid = latest_bid(session, event_id)
    if bid is None:
        raise NotFoundError(f"event {event_id} has no bid to settle against")
    return bid
