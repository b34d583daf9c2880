"""Bids in one place: the bid that counts for an event, and its owners' shares.

The bid that counts is the latest one stored (highest id). An event may be bid more than once (a
re-bid replaces the offer); planning, control, delivery, settlement, the API and the CLI all read
the one returned here, so they agree on the declared kW and the owners' shares.

The owners' shares live in their own table (:class:`~vpp.models.BidOwnerShare`, one row per
owner, migration 0004), not in the bid's ``detail`` JSON: :func:`add_bid` stores a bid with its
shares, :func:`owner_shares` and :func:`declared_by_owner` read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlmodel import Session, col, select

from vpp.errors import NotFoundError, ValidationError
from vpp.models import Bid, BidOwnerShare


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


def add_bid(session: Session, bid: Bid, shares: Sequence[BidOwnerShare]) -> Bid:
    """Store ``bid`` and its owners' ``shares`` (their ``bid_id`` is set here) in the session's
    transaction; the bid gets its id (flushed). ValidationError for an owner given twice or a
    negative declared kW (a bid promises no negative capacity)."""
    owners = [sh.owner_id for sh in shares]
    if len(set(owners)) != len(owners):
        raise ValidationError(f"bid for event {bid.event_id}: an owner has two shares ({owners})")
    bad = [sh.owner_id for sh in shares if not sh.declared_kw >= 0]
    if bad:
        raise ValidationError(f"bid for event {bid.event_id}: negative declared kW for owners {bad}")
    session.add(bid)
    session.flush()
    assert bid.id is not None  # flushed
    for sh in shares:
        sh.bid_id = bid.id
        session.add(sh)
    session.flush()
    return bid


def owner_shares(session: Session, bid_id: int) -> list[BidOwnerShare]:
    """The bid's owner shares, by owner id (empty for a bid stored without them)."""
    return list(session.exec(select(BidOwnerShare).where(BidOwnerShare.bid_id == bid_id)
                             .order_by(col(BidOwnerShare.owner_id))))


def declared_by_owner(session: Session, bid: Bid) -> dict[int, float] | None:
    """The owners taking part in an event: those with a declared share above zero in the bid
    (owner id -> kW), or ``None`` for a bid without per-owner shares. Planning dispatches only
    their devices and settlement settles only them, so the two count the same response."""
    shares = owner_shares(session, int(bid.id or 0))
    if not shares:
        return None
    return {sh.owner_id: sh.declared_kw for sh in shares if sh.declared_kw > 0}


def kw_shares(declared_kw: Mapping[int, float], limited_by: str = "") -> list[BidOwnerShare]:
    """Owner shares from declared kW alone (owner id -> kW): each ``share_fraction`` is its kW
    over the total (0 when the total is 0), no rule figures. For bids not made by the offer
    rule (an operator's or a test's); the offer rule's shares are
    :func:`bidding.workflow.share_rows`."""
    total_kw = sum(declared_kw.values())
    return [BidOwnerShare(owner_id=o, declared_kw=kw, limited_by=limited_by,
                          share_fraction=kw / total_kw if total_kw > 0 else 0.0)
            for o, kw in sorted(declared_kw.items())]
