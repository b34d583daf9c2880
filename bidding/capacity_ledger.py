"""Monthly capacity payments in the ledger: read a month's settled events, compute the payment
(:func:`bidding.capacity.capacity_payment`), post it once, and read an owner's part.

One transaction per programme and month, key ``capacity:<programme>:<YYYY-MM>:v<n>``, kind
``capacity_payment``: Dr ``asset:grid_receivable`` (the total), Cr ``revenue:capacity_payment``,
Dr ``expense:owner_share`` (total - fee), Cr each owner's ``liability:owner_payable``. Posting a
month again with the same result writes nothing; when the month's settlements changed since (a
re-settled event), the current version is reversed and a new version posted, as settlements
are (:mod:`bidding.ledger`). A month is posted only once it has ended (local time of the
programme), and the programme version is the one in force on the month's first day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from bidding.capacity import (
    CapacityPayment,
    EventCapacity,
    event_capacity,
    month_bounds,
    programme_month_payment,
)
from bidding.ledger import (
    CASH,
    GRID_RECEIVABLE,
    OWNER_PAYABLE,
    OWNER_SHARE,
    Posting,
    current_settlement,
    entries_of,
    post_transaction,
    reverse_transaction,
)
from bidding.programme import load_programme, read_programme_file
from vpp.errors import NotFoundError, ValidationError
from vpp.models import AuditLog, GridEvent, LedgerEntry, LedgerTransaction
from vpp.timeutil import require_aware

CAPACITY_REVENUE = "revenue:capacity_payment"
KIND = "capacity_payment"


def month_events(session: Session, programme: str, first: datetime, nxt: datetime
                 ) -> list[EventCapacity]:
    """The programme's events that started in [first, nxt) and are settled (current version)."""
    out = []
    for ev in session.exec(select(GridEvent).where(
            GridEvent.programme == programme, col(GridEvent.start) >= first,
            col(GridEvent.start) < nxt).order_by(col(GridEvent.start))):
        st = current_settlement(session, int(ev.id or 0))
        if st is not None and "result" in (st.detail or {}):
            r = st.detail["result"]
            out.append(event_capacity(
                int(ev.id or 0), ev.direction, float(r["paid_kwh"]), float(r["duration_h"]),
                {int(o["owner_id"]): float(o["contribution_kwh"]) for o in r["owners"]}))
    return out


def compute_month(session: Session, programme: str, programmes_dir: Path | str, month: str,
                  fee_pct: Decimal | float) -> CapacityPayment:
    """The month's capacity payment under the programme version in force on its first day."""
    tz = programme_timezone(programme, programmes_dir)
    first, nxt = month_bounds(month, tz)
    prog = load_programme(programme, programmes_dir, first.date())
    return programme_month_payment(month_events(session, programme, first, nxt), prog, month,
                                   fee_pct)


def programme_timezone(programme: str, programmes_dir: Path | str) -> str:
    """The zone the programme's months and days are counted in."""
    return read_programme_file(Path(programmes_dir) / f"{programme}.toml").timezone


def capacity_entries(payment: CapacityPayment) -> list[Posting]:
    """The ledger legs of a capacity payment (balanced: total = owners' parts + fee)."""
    legs = [Posting(GRID_RECEIVABLE, payment.total_fen),
            Posting(CAPACITY_REVENUE, -payment.total_fen),
            Posting(OWNER_SHARE, payment.owners_fen)]
    legs += [Posting(OWNER_PAYABLE, -fen, owner) for owner, fen in payment.owners.items()]
    return legs


def capacity_key(programme: str, month: str, version: int) -> str:
    return f"capacity:{programme}:{month}:v{version}"


@dataclass(frozen=True)
class PostedCapacity:
    payment: CapacityPayment
    version: int  # the version in force after posting (0: nothing to post, no event verified)
    created: bool  # False: the same payment is already posted (or there was nothing)
    reversed_version: int | None


def _current(session: Session, programme: str, month: str) -> tuple[LedgerTransaction, int] | None:
    """The month's current capacity transaction and its version (None: never posted)."""
    prefix = f"capacity:{programme}:{month}:v"
    rows = session.exec(select(LedgerTransaction).where(
        LedgerTransaction.kind == KIND,
        col(LedgerTransaction.idempotency_key).startswith(prefix, autoescape=True))).all()
    if not rows:
        return None
    latest = max(rows, key=lambda t: int(t.idempotency_key[len(prefix):]))
    return latest, int(latest.idempotency_key[len(prefix):])


def _same_legs(session: Session, txn: LedgerTransaction, legs: list[Posting]) -> bool:
    old = sorted((e.account, e.owner_id or 0, e.amount_fen)
                 for e in entries_of(session, int(txn.id or 0)))
    new = [(p.account, p.owner_id or 0, p.amount_fen) for p in legs if p.amount_fen != 0]
    return old == sorted(new)


def post_capacity_payment(session: Session, payment: CapacityPayment, *, now: datetime,
                          tz: str, actor: str = "settlement") -> PostedCapacity:
    """Post the month's capacity payment once (see the module docstring); ``now`` must be past
    the month's end in ``tz``. A payment of zero (no event verified) posts nothing."""
    require_aware(now, "now")
    _, nxt = month_bounds(payment.month, tz)
    if now < nxt:
        raise ValidationError(f"month {payment.month} has not ended (it ends {nxt.isoformat()}): "
                              "its capacity payment is posted after the month")
    legs = capacity_entries(payment)
    current = _current(session, payment.programme, payment.month)
    if current is not None and _same_legs(session, current[0], legs):
        return PostedCapacity(payment, current[1], False, None)
    if current is None and payment.total_fen == 0:
        return PostedCapacity(payment, 0, False, None)
    reversed_version = None
    version = 1
    if current is not None:
        txn, reversed_version = current
        reverse_transaction(session, txn, key=txn.idempotency_key + ":reversal", actor=actor,
                            description=f"capacity {payment.programme} {payment.month} "
                                        f"v{reversed_version} superseded")
        version = reversed_version + 1
    post_transaction(
        session, key=capacity_key(payment.programme, payment.month, version), kind=KIND,
        entries=legs, description=(
            f"capacity payment {payment.programme} {payment.month} v{version}: "
            f"{float(payment.credit_kw):,.1f} kW x {payment.price_yuan_per_kw_month} yuan/kW-month"
            f", events {', '.join(map(str, payment.event_ids))}"), actor=actor)
    session.add(AuditLog(
        actor=actor, action="capacity_payment_posted",
        subject=f"capacity:{payment.programme}:{payment.month}",
        detail={"version": version, "credit_kw": str(float(payment.credit_kw)),
                "price_yuan_per_kw_month": str(payment.price_yuan_per_kw_month),
                "total_fen": payment.total_fen, "fee_fen": payment.fee_fen,
                "event_ids": list(payment.event_ids),
                "owners": {str(o): f for o, f in payment.owners.items()},
                "supersedes_version": reversed_version}))
    session.flush()
    return PostedCapacity(payment, version, True, reversed_version)


def owner_capacity_fen(session: Session, month: str, owner_id: int | None = None
                       ) -> dict[int, int]:
    """What each owner (or one) is owed for the month's capacity payments, all programmes, at
    their current versions (reversals net out): owner id -> fen."""
    stmt = (select(LedgerEntry.owner_id, func.sum(LedgerEntry.amount_fen))
            .join(LedgerTransaction, col(LedgerTransaction.id) == col(LedgerEntry.transaction_id))
            .where(col(LedgerTransaction.idempotency_key).like(f"capacity:%:{month}:v%"),
                   LedgerEntry.account == OWNER_PAYABLE)
            .group_by(col(LedgerEntry.owner_id)))
    if owner_id is not None:
        stmt = stmt.where(LedgerEntry.owner_id == owner_id)
    return {int(o): -int(s) for o, s in session.exec(stmt) if o is not None}


def month_capacity(session: Session, month: str) -> dict[int, int] | None:
    """Each owner's capacity payment for the month (owner id -> fen, all programmes), or None
    when no capacity payment of the month was posted (what a statement says)."""
    posted = session.exec(select(LedgerTransaction.id).where(
        LedgerTransaction.kind == KIND,
        col(LedgerTransaction.idempotency_key).like(f"capacity:%:{month}:v%"))).first()
    return None if posted is None else owner_capacity_fen(session, month)


#: event statuses that may still settle: a month with such an event is not posted yet
_UNSETTLED_YET = ("received", "accepted", "active", "completed")


def previous_month(now: datetime, tz: str) -> str:
    """The local calendar month before the one ``now`` falls in, ``YYYY-MM``."""
    first = require_aware(now, "now").astimezone(ZoneInfo(tz)).replace(day=1)
    return f"{first - timedelta(days=1):%Y-%m}"


def post_month_when_settled(session: Session, programme: str, programmes_dir: Path | str,
                            month: str, fee_pct: Decimal | float, *, now: datetime,
                            actor: str = "daemon") -> PostedCapacity | None:
    """The daemon's step: post the month's capacity payment once every event of the month
    that can still settle has settled (None while one is open, running or awaiting
    settlement; refused events and ``unsettled`` ones do not hold the month back)."""
    tz = programme_timezone(programme, programmes_dir)
    first, nxt = month_bounds(month, tz)
    waiting = session.exec(select(func.count()).select_from(GridEvent).where(
        GridEvent.programme == programme, col(GridEvent.start) >= first,
        col(GridEvent.start) < nxt, col(GridEvent.status).in_(_UNSETTLED_YET))).one()
    if waiting:
        return None
    payment = compute_month(session, programme, programmes_dir, month, fee_pct)
    return post_capacity_payment(session, payment, now=now, tz=tz, actor=actor)


def _balances(session: Session, prefixes: Sequence[str], account: str) -> dict[int | None, int]:
    """Balance (fen) per owner of ``account`` over the transactions whose keys start with one
    of ``prefixes``."""
    key = col(LedgerTransaction.idempotency_key)
    stmt = (select(LedgerEntry.owner_id, func.sum(LedgerEntry.amount_fen))
            .join(LedgerTransaction, col(LedgerTransaction.id) == col(LedgerEntry.transaction_id))
            .where(or_(*(key.startswith(p, autoescape=True) for p in prefixes)),
                   LedgerEntry.account == account)
            .group_by(col(LedgerEntry.owner_id)))
    return {o: int(b) for o, b in session.exec(stmt)}


def _posted_version(session: Session, programme: str, month: str) -> int:
    current = _current(session, programme, month)
    if current is None:
        raise NotFoundError(f"no capacity payment of {programme} for {month} is posted")
    return current[1]


def pay_capacity(session: Session, programme: str, month: str, actor: str = "settlement"
                 ) -> dict[int, int]:
    """Pay each owner what the ledger owes it for the month's capacity payment (its current
    version, less what was paid for earlier versions): one transaction, key
    ``payout:capacity:<programme>:<month>:v<n>``, Dr owner payable, Cr cash. Owners overpaid by
    an earlier version are left owing; again for the same version: pays nothing more. Returns
    {owner id: fen paid}."""
    version = _posted_version(session, programme, month)
    key = f"payout:capacity:{programme}:{month}:v{version}"
    done = session.exec(select(LedgerTransaction).where(
        LedgerTransaction.idempotency_key == key)).first()
    if done is not None:
        return {int(e.owner_id): e.amount_fen for e in entries_of(session, int(done.id or 0))
                if e.owner_id is not None}
    bal = _balances(session, [f"capacity:{programme}:{month}:v",
                              f"payout:capacity:{programme}:{month}:v"], OWNER_PAYABLE)
    owed = {int(o): -b for o, b in sorted(bal.items(), key=lambda x: x[0] or 0)
            if o is not None and b < 0}
    if not owed:
        return {}
    post_transaction(session, key=key, kind="owner_payout", actor=actor,
                     entries=[*(Posting(OWNER_PAYABLE, a, o) for o, a in owed.items()),
                              Posting(CASH, -sum(owed.values()))],
                     description=f"pay owners the {programme} capacity payment {month} v{version}")
    return owed


def record_capacity_receipt(session: Session, programme: str, month: str,
                            actor: str = "settlement") -> int:
    """Record the grid's payment of the month's capacity payment (Dr cash, Cr grid
    receivable: what is still receivable for it); returns the fen received (0: nothing due)."""
    version = _posted_version(session, programme, month)
    bal = _balances(session, [f"capacity:{programme}:{month}:v",
                              f"grid-receipt:capacity:{programme}:{month}:v"], GRID_RECEIVABLE)
    amount = sum(bal.values())
    if amount == 0:
        return 0
    post_transaction(
        session, key=f"grid-receipt:capacity:{programme}:{month}:v{version}",
        kind="grid_receipt", entries=[Posting(CASH, amount), Posting(GRID_RECEIVABLE, -amount)],
        description=f"grid pays the {programme} capacity payment {month} v{version}", actor=actor)
    return amount
