"""Double-entry ledger in integer fen on ``LedgerTransaction`` / ``LedgerEntry`` (append-only).

Every money movement is one balanced transaction (entries sum to zero; debit > 0, credit < 0)
with an ``idempotency_key``: posting the same key twice is a no-op. History is never edited (the
database refuses UPDATE and DELETE on these tables): a corrected meter reading re-settles the
event as a new ``Settlement`` version, whose posting first reverses the previous version's
transaction (``reverses_id``) and then posts the new one. Each posting writes an ``AuditLog`` row.

Accounts (chart):
  ``asset:grid_receivable``       what the grid owes us (net of penalties)
  ``asset:cash``                  money received / paid
  ``revenue:demand_response``     compensation earned from the grid
  ``expense:penalty``             penalties charged by the grid
  ``expense:owner_share``         owners' shares of an event (after the fee)
  ``liability:owner_payable``     what we owe each owner (``owner_id`` set; debit = owner owes us)
The aggregator's margin on an event is revenue - penalty - owner share = the fee.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bidding.settlement import EventSettlement, check_balance
from vpp import failpoints
from vpp.errors import ConflictError, NotFoundError, ValidationError
from vpp.models import (
    AuditLog,
    GridEvent,
    LedgerEntry,
    LedgerTransaction,
    OwnerPayout,
    Settlement,
)

GRID_RECEIVABLE = "asset:grid_receivable"
CASH = "asset:cash"
REVENUE = "revenue:demand_response"
PENALTY = "expense:penalty"
OWNER_SHARE = "expense:owner_share"
OWNER_PAYABLE = "liability:owner_payable"


class LedgerError(ValidationError):
    """A posting that would leave the ledger inconsistent (unbalanced, non-integer, empty)."""

    code = "ledger_invalid"


@dataclass(frozen=True)
class Posting:
    account: str
    amount_fen: int
    owner_id: int | None = None


def _validate(key: str, entries: Sequence[Posting]) -> None:
    if not key:
        raise LedgerError("a ledger transaction needs an idempotency key")
    if len(entries) < 2:
        raise LedgerError(f"transaction {key}: needs at least two entries")
    for e in entries:
        if not isinstance(e.amount_fen, int) or isinstance(e.amount_fen, bool):
            raise LedgerError(
                f"transaction {key}: amount on {e.account} is {type(e.amount_fen).__name__}, "
                "must be integer fen"
            )
    total = sum(e.amount_fen for e in entries)
    if total != 0:
        raise LedgerError(f"transaction {key} does not balance: entries sum to {total} fen")


def post_transaction(
    session: Session, *, key: str, kind: str, entries: Sequence[Posting],
    event_id: int | None = None, description: str = "", reverses_id: int | None = None,
    actor: str = "settlement",
) -> tuple[LedgerTransaction, bool]:
    """Post a balanced transaction; returns (transaction, created). Same key again: no-op.

    Nothing is written when the entries do not balance (:class:`LedgerError`). Zero-amount
    entries are dropped (a transaction of only zeros is still recorded with two zero legs, so the
    key is taken).
    """
    _validate(key, entries)
    existing = session.exec(
        select(LedgerTransaction).where(LedgerTransaction.idempotency_key == key)
    ).first()
    if existing is not None:
        return existing, False
    legs = [e for e in entries if e.amount_fen != 0] or list(entries[:2])
    txn = LedgerTransaction(
        idempotency_key=key, event_id=event_id, kind=kind, description=description[:500],
        reverses_id=reverses_id,
    )
    session.add(txn)
    try:
        session.flush()
    except IntegrityError:
        raise ConflictError(f"transaction {key} was posted concurrently; run again") from None
    assert txn.id is not None, "transaction is flushed"
    session.add_all(
        [LedgerEntry(transaction_id=txn.id, account=e.account, owner_id=e.owner_id,
                     amount_fen=e.amount_fen) for e in legs]
    )
    session.add(AuditLog(
        actor=actor, action="ledger_posted", subject=f"ledger_transaction:{txn.id}",
        detail={"key": key, "kind": kind, "event_id": event_id, "reverses_id": reverses_id,
                "entries": [[e.account, e.owner_id, e.amount_fen] for e in legs]},
    ))
    session.flush()
    return txn, True


def entries_of(session: Session, txn_id: int) -> list[LedgerEntry]:
    return list(session.exec(
        select(LedgerEntry).where(LedgerEntry.transaction_id == txn_id)
        .order_by(col(LedgerEntry.id))
    ))


def reverse_transaction(
    session: Session, txn: LedgerTransaction, *, key: str, description: str = "",
    actor: str = "settlement",
) -> tuple[LedgerTransaction, bool]:
    """Post the mirror image of ``txn`` (every entry negated), linked by ``reverses_id``."""
    assert txn.id is not None, "transaction is stored"
    legs = [Posting(e.account, -e.amount_fen, e.owner_id) for e in entries_of(session, txn.id)]
    return post_transaction(
        session, key=key, kind="reversal", entries=legs, event_id=txn.event_id,
        description=description or f"reverses {txn.idempotency_key}", reverses_id=txn.id,
        actor=actor,
    )


def settlement_entries(result: EventSettlement) -> list[Posting]:
    """The ledger legs of one event settlement (balanced by construction, checked anyway)."""
    legs = [
        Posting(GRID_RECEIVABLE, result.revenue_fen - result.penalty_fen),
        Posting(REVENUE, -result.revenue_fen),
        Posting(PENALTY, result.penalty_fen),
        Posting(OWNER_SHARE, sum(o.payout_fen for o in result.owners)),
    ]
    legs += [Posting(OWNER_PAYABLE, -o.payout_fen, o.owner_id) for o in result.owners]
    return legs


def settlement_key(event_id: int, version: int) -> str:
    return f"settle:event:{event_id}:v{version}"


@dataclass(frozen=True)
class PostedSettlement:
    settlement: Settlement
    created: bool  # False: identical to the current version, nothing written
    reversed_version: int | None


def current_settlement(session: Session, event_id: int) -> Settlement | None:
    return session.exec(
        select(Settlement).where(Settlement.event_id == event_id)
        .order_by(Settlement.version.desc())  # type: ignore[attr-defined]
    ).first()


def post_settlement(
    session: Session, event_id: int, result: EventSettlement, *, extra: dict | None = None,
    actor: str = "settlement",
) -> PostedSettlement:
    """Record a settlement: Settlement row, ledger transaction, OwnerPayout rows, audit.

    Idempotent: if the current version has the same content (fingerprint), nothing is written.
    If the content changed (a corrected meter reading), the current version's transaction is
    reversed and a new version is posted. The caller's session scope makes it all-or-nothing.
    """
    event = session.get(GridEvent, event_id)
    if event is None:
        raise NotFoundError(f"no event {event_id}")
    check_balance(result)
    fp = result.fingerprint()
    latest = current_settlement(session, event_id)
    if latest is not None and latest.detail.get("fingerprint") == fp:
        return PostedSettlement(latest, False, None)
    version = latest.version + 1 if latest is not None else 1
    reversed_version = None
    if latest is not None:
        old = session.exec(
            select(LedgerTransaction).where(
                LedgerTransaction.idempotency_key == settlement_key(event_id, latest.version)
            )
        ).first()
        if old is None:
            raise LedgerError(
                f"settlement v{latest.version} of event {event_id} has no ledger transaction"
            )
        reverse_transaction(
            session, old, key=settlement_key(event_id, latest.version) + ":reversal",
            description=f"event {event_id} re-settled as v{version}", actor=actor,
        )
        reversed_version = latest.version
    row = Settlement(
        event_id=event_id, version=version, baseline_kwh=result.baseline_kwh,
        metered_kwh=result.metered_kwh, response_kwh=result.response_kwh,
        declared_kw=result.declared_kw, performance_ratio=result.performance_ratio,
        revenue_fen=result.revenue_fen, penalty_fen=result.penalty_fen, fee_fen=result.fee_fen,
        detail={"fingerprint": fp, "supersedes_version": reversed_version,
                "result": result.to_dict(), **(extra or {})},
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise ConflictError(f"event {event_id} was settled concurrently; run again") from None
    assert row.id is not None, "settlement is flushed"
    post_transaction(
        session, key=settlement_key(event_id, version), kind="settlement",
        entries=settlement_entries(result), event_id=event_id,
        description=f"event {event.external_id} settlement v{version}", actor=actor,
    )
    session.add_all([
        OwnerPayout(settlement_id=row.id, owner_id=o.owner_id, amount_fen=o.payout_fen,
                    contribution_kwh=o.contribution_kwh)
        for o in result.owners
    ])
    session.add(AuditLog(
        actor=actor, action="settlement_posted", subject=f"event:{event_id}",
        detail={"version": version, "revenue_fen": result.revenue_fen,
                "penalty_fen": result.penalty_fen, "fee_fen": result.fee_fen,
                "payouts": {str(k): v for k, v in result.payouts().items()},
                "supersedes_version": reversed_version},
    ))
    session.flush()
    failpoints.reach("ledger.posted")  # crash tests: every row written, nothing committed
    return PostedSettlement(row, True, reversed_version)


def account_balances(
    session: Session, *, event_id: int | None = None, account: str | None = None,
) -> dict[tuple[str, int | None], int]:
    """Balance (fen) per (account, owner_id), optionally for one event's transactions."""
    stmt = (
        select(LedgerEntry.account, LedgerEntry.owner_id, func.sum(LedgerEntry.amount_fen))
        .join(LedgerTransaction, col(LedgerTransaction.id) == col(LedgerEntry.transaction_id))
        .group_by(col(LedgerEntry.account), col(LedgerEntry.owner_id))
    )
    if event_id is not None:
        stmt = stmt.where(LedgerTransaction.event_id == event_id)
    if account is not None:
        stmt = stmt.where(LedgerEntry.account == account)
    return {(a, o): int(s) for a, o, s in session.exec(stmt)}


def pay_owners(session: Session, event_id: int, actor: str = "settlement") -> dict[int, int]:
    """Pay each owner what the ledger says we owe them for the event's current settlement.

    One transaction (key ``payout:event:<id>:v<version>``): Dr owner payable, Cr cash. Owners
    whose balance is a debit (they owe a penalty) are left owing. Returns {owner_id: fen paid};
    calling it again for the same version pays nothing more.
    """
    current = current_settlement(session, event_id)
    if current is None:
        raise NotFoundError(f"event {event_id} is not settled")
    key = f"payout:event:{event_id}:v{current.version}"
    done = session.exec(
        select(LedgerTransaction).where(LedgerTransaction.idempotency_key == key)
    ).first()
    if done is not None:
        assert done.id is not None, "transaction is stored"
        return {e.owner_id: e.amount_fen for e in entries_of(session, done.id)
                if e.owner_id is not None}
    bal = account_balances(session, event_id=event_id, account=OWNER_PAYABLE)
    owed = {o: -b for (_, o), b in sorted(bal.items(), key=lambda x: x[0][1] or 0) if b < 0}
    if not owed:
        return {}
    legs = [Posting(OWNER_PAYABLE, amt, o) for o, amt in owed.items()]
    legs.append(Posting(CASH, -sum(owed.values())))
    post_transaction(session, key=key, kind="owner_payout", entries=legs, event_id=event_id,
                     description=f"pay owners for event {event_id} v{current.version}",
                     actor=actor)
    return {o: a for o, a in owed.items() if o is not None}


def record_grid_receipt(session: Session, event_id: int, actor: str = "settlement") -> int:
    """Record the grid's payment of what it owes for the event (Dr cash, Cr grid receivable)."""
    current = current_settlement(session, event_id)
    if current is None:
        raise NotFoundError(f"event {event_id} is not settled")
    bal = account_balances(session, event_id=event_id, account=GRID_RECEIVABLE)
    amount = sum(bal.values())
    if amount == 0:
        return 0
    post_transaction(
        session, key=f"grid-receipt:event:{event_id}:v{current.version}", kind="grid_receipt",
        entries=[Posting(CASH, amount), Posting(GRID_RECEIVABLE, -amount)], event_id=event_id,
        description=f"grid settles event {event_id} v{current.version}", actor=actor,
    )
    return amount


def check_ledger(session: Session) -> dict[str, int]:
    """Raise :class:`LedgerError` unless every transaction balances; returns account totals."""
    bad = session.exec(
        select(LedgerEntry.transaction_id, func.sum(LedgerEntry.amount_fen))
        .group_by(col(LedgerEntry.transaction_id))
        .having(func.sum(LedgerEntry.amount_fen) != 0)
    ).all()
    if bad:
        ids = ", ".join(str(t) for t, _ in bad[:5])
        raise LedgerError(f"unbalanced ledger transactions: {ids}")
    empty = session.exec(
        select(func.count()).select_from(LedgerTransaction).where(
            ~col(LedgerTransaction.id).in_(select(LedgerEntry.transaction_id))
        )
    ).one()
    if empty:
        raise LedgerError(f"{empty} ledger transaction(s) without entries")
    totals: dict[str, int] = {}
    for (acct, _), amount in account_balances(session).items():
        totals[acct] = totals.get(acct, 0) + amount
    if sum(totals.values()) != 0:
        raise LedgerError(f"trial balance is off by {sum(totals.values())} fen")
    return totals
