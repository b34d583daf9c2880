"""Ledger on both databases: balanced postings, idempotent settlement, re-settlement by
reversal, owner payouts, append-only history, and bad postings leaving nothing behind."""

from __future__ import annotations

import itertools
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel, select

from bidding.ledger import (
    CASH,
    OWNER_PAYABLE,
    LedgerError,
    Posting,
    account_balances,
    check_ledger,
    pay_owners,
    post_settlement,
    post_transaction,
    record_grid_receipt,
    settlement_entries,
)
from bidding.rules import Band
from bidding.settlement import EventSettlement, settle_event
from vpp import fleet
from vpp.db import session_scope
from vpp.models import AuditLog, GridEvent, LedgerEntry, LedgerTransaction, OwnerPayout, Settlement

IDX = pd.date_range("2025-07-15 19:00", periods=4, freq="15min", tz="Asia/Shanghai")
_ids = itertools.count(1)


def _setup(engine: Engine) -> tuple[int, list[int]]:
    n = next(_ids)
    with session_scope(engine) as s:
        owners: list[int] = []
        for i in range(2):
            owner = fleet.add_owner(s, f"owner-{n}-{i}")
            assert owner.id is not None, "owner is flushed"
            owners.append(owner.id)
        ev = GridEvent(external_id=f"ev-{n}", source="sim", event_type="day_ahead",
                       programme="hunan-2026", start=IDX[0].to_pydatetime(),
                       end=(IDX[-1] + pd.Timedelta("15min")).to_pydatetime(), requested_kw=1000)
        s.add(ev)
        s.flush()
        assert ev.id is not None, "event is flushed"
        return ev.id, owners


def _result(owners: list[int],
            delivered: tuple[float, float] = (700.0, 100.0)) -> EventSettlement:
    base = np.array([[2000.0] * 4, [1000.0] * 4])
    meter = base - np.array([[delivered[0]], [delivered[1]]])
    return settle_event(index=IDX, owner_ids=owners, baseline_kw=base, metered_kw=meter,
                        owner_declared_kw=[600, 400], price_yuan_per_kwh=Decimal("1.5"),
                        band=Band(), fee_pct=Decimal(15), interval_minutes=15, export_counts=True)


def _count(engine: Engine, model: type[SQLModel]) -> int:
    with session_scope(engine) as s:
        return s.exec(select(func.count()).select_from(model)).one()


def test_settle_post_pay_and_idempotency(engine: Engine) -> None:
    event_id, owners = _setup(engine)
    r = _result(owners)
    with session_scope(engine) as s:
        posted = post_settlement(s, event_id, r)
        assert posted.created and posted.settlement.version == 1
    with session_scope(engine) as s:
        again = post_settlement(s, event_id, _result(owners))
        assert not again.created and again.settlement.version == 1
    assert _count(engine, LedgerTransaction) == 1
    assert _count(engine, Settlement) == 1
    assert _count(engine, OwnerPayout) == 2
    with session_scope(engine) as s:
        totals = check_ledger(s)
        assert totals["revenue:demand_response"] == -120_000
        bal = account_balances(s, event_id=event_id, account=OWNER_PAYABLE)
        assert {o: -b for (_, o), b in bal.items()} == {owners[0]: 89_250, owners[1]: 12_750}
        paid = pay_owners(s, event_id)
        assert paid == {owners[0]: 89_250, owners[1]: 12_750}
        assert pay_owners(s, event_id) == paid  # same version: nothing more
        assert record_grid_receipt(s, event_id) == 120_000
        totals = check_ledger(s)
        # cash: +1,200.00 from the grid, -1,020.00 to owners = the 180.00 fee
        assert totals[CASH] == 18_000
        actions = [a.action for a in s.exec(select(AuditLog))]
        assert actions.count("ledger_posted") == 3 and "settlement_posted" in actions


def test_corrected_meter_resettles_by_reversal(engine: Engine) -> None:
    event_id, owners = _setup(engine)
    with session_scope(engine) as s:
        post_settlement(s, event_id, _result(owners))
        pay_owners(s, event_id)
    # a corrected reading: owner 2 actually delivered 300 kW, not 100
    with session_scope(engine) as s:
        posted = post_settlement(s, event_id, _result(owners, (700.0, 300.0)))
        assert posted.created and posted.settlement.version == 2
        assert posted.reversed_version == 1
        rev = s.exec(select(LedgerTransaction).where(LedgerTransaction.kind == "reversal")).one()
        assert rev.reverses_id is not None
        # event's net ledger = the v2 legs only
        r2 = _result(owners, (700.0, 300.0))
        expected: dict[tuple[str, int | None], int] = {}
        for p in settlement_entries(r2):
            expected[(p.account, p.owner_id)] = expected.get((p.account, p.owner_id), 0) + \
                p.amount_fen
        expected[(OWNER_PAYABLE, owners[0])] += 89_250  # v1 payouts already paid
        expected[(OWNER_PAYABLE, owners[1])] += 12_750
        expected[(CASH, None)] = -102_000
        got = account_balances(s, event_id=event_id)
        assert {k: v for k, v in got.items() if v} == {k: v for k, v in expected.items() if v}
        # the second payout run pays only the difference
        diff = pay_owners(s, event_id)
        r2p = r2.payouts()
        assert diff == {o: r2p[o] - p for o, p in zip(owners, (89_250, 12_750), strict=True)
                        if r2p[o] - p > 0}
        check_ledger(s)
    assert _count(engine, Settlement) == 2
    # v1 rows stay as they were
    with session_scope(engine) as s:
        v1 = s.exec(select(Settlement).where(Settlement.version == 1,
                                             Settlement.event_id == event_id)).one()
        assert v1.revenue_fen == 120_000


def test_history_is_append_only(engine: Engine) -> None:
    event_id, owners = _setup(engine)
    with session_scope(engine) as s:
        post_settlement(s, event_id, _result(owners))
    for stmt in ("UPDATE ledger_entry SET amount_fen = 0",
                 "DELETE FROM ledger_transaction", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(stmt))
    with session_scope(engine) as s:
        check_ledger(s)


def test_unbalanced_or_float_money_is_refused_and_nothing_written(engine: Engine) -> None:
    event_id, owners = _setup(engine)
    with pytest.raises(LedgerError, match="does not balance: entries sum to 1 fen"):
        with session_scope(engine) as s:
            post_transaction(s, key="bad-1", kind="test", entries=[
                Posting(CASH, 101), Posting("revenue:demand_response", -100)])
    with pytest.raises(LedgerError, match="must be integer fen"):
        with session_scope(engine) as s:
            post_transaction(s, key="bad-2", kind="test", entries=[
                Posting(CASH, 1.5), Posting("revenue:demand_response", -1.5)])  # type: ignore[arg-type]
    # a failure half-way through a settlement rolls back everything written before it
    with pytest.raises(LedgerError), session_scope(engine) as s:
        post_settlement(s, event_id, _result(owners))
        post_transaction(s, key="bad-3", kind="test", entries=[Posting(CASH, 1)])
    assert _count(engine, LedgerTransaction) == 0
    assert _count(engine, Settlement) == 0
    assert _count(engine, LedgerEntry) == 0


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(deliveries=st.lists(st.tuples(st.floats(-200, 1500), st.floats(-200, 1500)),
                           min_size=1, max_size=4),
       pay=st.booleans())
def test_property_ledger_balances_and_resettling_is_idempotent(
        engine: Engine, deliveries: list[tuple[float, float]], pay: bool) -> None:
    event_id, owners = _setup(engine)
    for d in deliveries:
        for _ in range(2):  # settling the same data twice changes nothing the second time
            with session_scope(engine) as s:
                before = s.exec(select(func.count()).select_from(LedgerTransaction)).one()
                first = post_settlement(s, event_id, _result(owners, d))
                after = s.exec(select(func.count()).select_from(LedgerTransaction)).one()
                if not first.created:
                    assert after == before
                if pay:
                    pay_owners(s, event_id)
    with session_scope(engine) as s:
        check_ledger(s)
        final = _result(owners, deliveries[-1])
        bal = account_balances(s, event_id=event_id)
        # revenue and penalty on the event equal the current version's, whatever came before
        assert -bal.get(("revenue:demand_response", None), 0) == final.revenue_fen
        assert bal.get(("expense:penalty", None), 0) == final.penalty_fen
