"""Monthly capacity payment in the ledger, on SQLite and PostgreSQL: posted once from the
month's settled events, balanced to the fen, split among owners, re-posted by reversal when a
settlement changed, refused before the month ends."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func
from sqlmodel import select

from bidding.capacity_ledger import (
    CAPACITY_REVENUE,
    PostedCapacity,
    compute_month,
    owner_capacity_fen,
    pay_capacity,
    post_capacity_payment,
    record_capacity_receipt,
)
from bidding.ledger import CASH, OWNER_PAYABLE, account_balances, check_ledger, post_settlement
from bidding.rules import Band
from bidding.settlement import EventSettlement, settle_event
from vpp import fleet
from vpp.db import session_scope
from vpp.errors import NotFoundError, ValidationError
from vpp.models import GridEvent, LedgerTransaction
from vpp.packaged import programmes_dir

TZ = "Asia/Shanghai"
AFTER = datetime(2026, 8, 1, 0, 0, tzinfo=ZoneInfo(TZ))


def _event(engine: Engine, day: int, direction: str = "peak_shaving") -> tuple[int, pd.DatetimeIndex]:
    idx = pd.date_range(f"2026-07-{day:02d} 19:00", periods=4, freq="15min", tz=TZ)
    with session_scope(engine) as s:
        ev = GridEvent(external_id=f"cap-{day}-{direction}", source="sim", event_type="day_ahead",
                       programme="hunan-2026", direction=direction,
                       start=idx[0].to_pydatetime(),
                       end=(idx[-1] + pd.Timedelta("15min")).to_pydatetime(), requested_kw=1000)
        s.add(ev)
        s.flush()
        return int(ev.id or 0), idx


def _owners(engine: Engine) -> list[int]:
    with session_scope(engine) as s:
        return [int(fleet.add_owner(s, f"cap-owner-{i}").id or 0) for i in range(3)]


def _settled(idx: pd.DatetimeIndex, owners: list[int], delivered: list[float]) -> EventSettlement:
    base = np.full((len(owners), 4), 2000.0)
    meter = base - np.array(delivered)[:, None]
    return settle_event(index=idx, owner_ids=owners, baseline_kw=base, metered_kw=meter,
                        owner_declared_kw=[400.0] * len(owners),
                        price_yuan_per_kwh=Decimal("1.5"), band=Band(), fee_pct=Decimal(15),
                        interval_minutes=15, export_counts=False)


def _post_month(engine: Engine, now: datetime = AFTER) -> PostedCapacity:
    with session_scope(engine) as s:
        payment = compute_month(s, "hunan-2026", programmes_dir(), "2026-07", 15.0)
        return post_capacity_payment(s, payment, now=now, tz=TZ, actor="test")


def _capacity_txns(engine: Engine) -> int:
    with session_scope(engine) as s:
        return int(s.exec(select(func.count()).select_from(LedgerTransaction)
                          .where(LedgerTransaction.kind == "capacity_payment")).one())


def test_month_posts_once_balances_and_reposts_a_changed_month(engine: Engine) -> None:
    owners = _owners(engine)
    e1, idx1 = _event(engine, 8)
    e2, idx2 = _event(engine, 21)
    e3, idx3 = _event(engine, 22, "valley_filling")  # not a paid direction in hunan-2026
    with session_scope(engine) as s:
        # event 1: 1,200 kW declared, 400 + 500 + 300 = 1,200 kW delivered (100%)
        post_settlement(s, e1, _settled(idx1, owners, [400.0, 500.0, 300.0]))
        # event 2: 1,200 declared, 0 + 600 + 0 = 600 kW delivered (50%: paid, not penalised)
        post_settlement(s, e2, _settled(idx2, owners, [0.0, 600.0, 0.0]))
        r3 = settle_event(index=idx3, owner_ids=owners[:1], baseline_kw=np.full((1, 4), 100.0),
                          metered_kw=np.full((1, 4), 900.0), owner_declared_kw=[800.0],
                          price_yuan_per_kwh=Decimal("0.3"), band=Band(), fee_pct=Decimal(15),
                          direction="valley_filling", interval_minutes=15, export_counts=False)
        post_settlement(s, e3, r3)
    posted = _post_month(engine)
    # credit (1,200 + 600) / 2 = 900 kW x 0.3 yuan = 270.00; fee 15% = 40.50; owners 229.50
    # by credit: owner 0: 400/2 = 200 kW, owner 1: (500 + 600)/2 = 550, owner 2: 300/2 = 150
    p = posted.payment
    assert posted.created and posted.version == 1
    assert p.event_ids == (e1, e2)
    assert (p.credit_kw, p.total_fen, p.fee_fen) == (900, 27_000, 4_050)
    assert p.owners == {owners[0]: 5_100, owners[1]: 14_025, owners[2]: 3_825}
    with session_scope(engine) as s:
        totals = check_ledger(s)
        assert totals[CAPACITY_REVENUE] == -27_000
        assert owner_capacity_fen(s, "2026-07") == p.owners
        assert owner_capacity_fen(s, "2026-07", owners[1]) == {owners[1]: 14_025}
        assert owner_capacity_fen(s, "2026-06") == {}
    # posting the same month again writes nothing
    again = _post_month(engine)
    assert not again.created and again.version == 1
    assert _capacity_txns(engine) == 1
    # event 2 re-settled on corrected readings: owner 2 delivered 300 kW more
    with session_scope(engine) as s:
        post_settlement(s, e2, _settled(idx2, owners, [0.0, 600.0, 300.0]))
    third = _post_month(engine)
    assert third.created and (third.version, third.reversed_version) == (2, 1)
    assert third.payment.credit_kw == 1050  # (1,200 + 900) / 2
    with session_scope(engine) as s:
        check_ledger(s)
        assert owner_capacity_fen(s, "2026-07") == third.payment.owners
        assert sum(third.payment.owners.values()) + third.payment.fee_fen == 31_500
        bal = account_balances(s, account=CAPACITY_REVENUE)
        assert sum(bal.values()) == -31_500  # v1 reversed, v2 posted
        payable = account_balances(s, account=OWNER_PAYABLE)
        assert sum(payable.values()) == -(31_500 - third.payment.fee_fen) - sum(
            o.payout_fen for o in _settled(idx1, owners, [400.0, 500.0, 300.0]).owners) - sum(
            o.payout_fen for o in _settled(idx2, owners, [0.0, 600.0, 300.0]).owners) - sum(
            o.payout_fen for o in r3.owners)
    assert _capacity_txns(engine) == 2


def test_month_not_over_or_without_events(engine: Engine) -> None:
    owners = _owners(engine)
    e1, idx1 = _event(engine, 8)
    with session_scope(engine) as s:
        post_settlement(s, e1, _settled(idx1, owners, [400.0, 500.0, 300.0]))
    with pytest.raises(ValidationError, match="has not ended"):
        _post_month(engine, now=datetime(2026, 7, 31, 23, 59, tzinfo=ZoneInfo(TZ)))
    with session_scope(engine) as s:
        empty = compute_month(s, "hunan-2026", programmes_dir(), "2026-09", 15.0)
        posted = post_capacity_payment(s, empty, now=datetime(2026, 10, 2, tzinfo=ZoneInfo(TZ)),
                                       tz=TZ)
        assert not posted.created and posted.version == 0 and posted.payment.total_fen == 0
        with pytest.raises(ValidationError, match="month must look like"):
            compute_month(s, "hunan-2026", programmes_dir(), "2026-13", 15.0)
    assert _capacity_txns(engine) == 0


def test_pay_the_month_and_the_difference_after_a_repost(engine: Engine) -> None:
    owners = _owners(engine)
    e1, idx1 = _event(engine, 8)
    with session_scope(engine) as s:
        post_settlement(s, e1, _settled(idx1, owners, [400.0, 500.0, 300.0]))
    with session_scope(engine) as s:
        with pytest.raises(NotFoundError, match="no capacity payment"):
            pay_capacity(s, "hunan-2026", "2026-07")
    first = _post_month(engine).payment  # 1,200 kW x 0.3 = 360.00, fee 54.00
    with session_scope(engine) as s:
        paid = pay_capacity(s, "hunan-2026", "2026-07")
        assert paid == first.owners and sum(paid.values()) == 30_600
        assert pay_capacity(s, "hunan-2026", "2026-07") == paid  # same version: nothing more
        assert record_capacity_receipt(s, "hunan-2026", "2026-07") == 36_000
        assert record_capacity_receipt(s, "hunan-2026", "2026-07") == 0
        cash = account_balances(s, account=CASH)
        assert sum(cash.values()) == 36_000 - 30_600  # the fee stays with us
    # owner 2 delivered 300 kW more after a correction: v2 pays only the difference
    with session_scope(engine) as s:
        post_settlement(s, e1, _settled(idx1, owners, [400.0, 500.0, 600.0]))
    second = _post_month(engine)
    assert second.version == 2
    with session_scope(engine) as s:
        more = pay_capacity(s, "hunan-2026", "2026-07")
        diff = {o: second.payment.owners[o] - first.owners[o] for o in owners}
        assert more == {o: d for o, d in diff.items() if d > 0}
        assert record_capacity_receipt(s, "hunan-2026", "2026-07") == (
            second.payment.total_fen - first.total_fen)
        check_ledger(s)
        payable = account_balances(s, account=OWNER_PAYABLE)
        event_part = account_balances(s, event_id=e1, account=OWNER_PAYABLE)
        capacity_left = {o: b - event_part.get((a, o), 0) for (a, o), b in payable.items()}
        # an owner whose part fell is left owing the difference; the others are paid up
        assert {o: b for o, b in capacity_left.items() if b} == {
            o: -(d - more.get(o, 0)) for o, d in diff.items() if d - more.get(o, 0)}
