"""Migration 0004 on SQLite and PostgreSQL: a bid stored the old way (owner shares in
``bid.detail["owners"]``) has its shares moved into ``bid_owner_share`` and back on downgrade;
the daemon's readers (:func:`vpp.bids.declared_by_owner`) then see them from the table; the
writer (:func:`vpp.bids.add_bid`) refuses shares that cannot be a bid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine
from sqlmodel import Session

from vpp.bids import add_bid, declared_by_owner, kw_shares, latest_bid, owner_shares
from vpp.db import _alembic_config, current_revision, upgrade
from vpp.errors import ValidationError
from vpp.models import Bid, GridEvent, Owner

START = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)
#: as bidding.workflow stored it before 0004: a quantile-rule owner, a no-history owner, an
#: owner who declared nothing, and a legacy share with only owner_id and declared_kw
OLD_OWNERS = [
    {"owner_id": 1, "declared_kw": 120.0, "share": 0.6, "limited_by": "confidence",
     "expected_response_kw": 131.5, "p_penalty": 0.08},
    {"owner_id": 2, "declared_kw": 80.0, "share": 0.4, "limited_by": "no history",
     "envelope_kw": 200.0},
    {"owner_id": 3, "declared_kw": 0.0, "share": 0.0, "limited_by": "optimum",
     "expected_response_kw": 0.0, "p_penalty": 0.0},
]


def _old_bids(engine: Engine) -> tuple[int, int]:
    with Session(engine) as s:
        for i in (1, 2, 3):
            s.add(Owner(id=i, name=f"owner {i}", contact=""))
        s.add(GridEvent(id=1, external_id="e1", source="grid", event_type="day_ahead",
                        direction="peak_shaving", programme="hunan-2026", start=START,
                        end=START + timedelta(hours=1), requested_kw=200.0))
        s.flush()
        new = Bid(event_id=1, declared_kw=200.0, price_yuan_per_kwh=Decimal("2.5"),
                  detail={"rule": "quantile", "owners": OLD_OWNERS, "programme": "hunan-2026"})
        legacy = Bid(event_id=1, declared_kw=40.0, price_yuan_per_kwh=Decimal("2.5"),
                     detail={"owners": [{"owner_id": 1, "declared_kw": 10.0}]})
        s.add(new)
        s.add(legacy)
        s.commit()
        return int(new.id or 0), int(legacy.id or 0)


def _detail(engine: Engine, bid_id: int) -> dict[str, object]:
    with Session(engine) as s:
        bid = s.get(Bid, bid_id)
        assert bid is not None
        return dict(bid.detail)


def test_shares_move_out_of_the_json_and_back(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0003")
    new_id, legacy_id = _old_bids(empty_engine)
    upgrade(empty_engine, "0004")
    assert current_revision(empty_engine) == "0004"
    assert _detail(empty_engine, new_id) == {"rule": "quantile", "programme": "hunan-2026"}
    assert "owners" not in _detail(empty_engine, legacy_id)
    with Session(empty_engine) as s:
        rows = owner_shares(s, new_id)
        assert [(r.owner_id, r.declared_kw, r.share_fraction, r.limited_by) for r in rows] == [
            (1, 120.0, 0.6, "confidence"), (2, 80.0, 0.4, "no history"), (3, 0.0, 0.0, "optimum")]
        assert (rows[0].expected_response_kw, rows[0].penalty_probability,
                rows[0].envelope_kw) == (131.5, 0.08, None)
        assert (rows[1].expected_response_kw, rows[1].envelope_kw) == (None, 200.0)
        (leg,) = owner_shares(s, legacy_id)
        assert (leg.owner_id, leg.declared_kw, leg.share_fraction, leg.limited_by) == (
            1, 10.0, 0.25, "")
        # the readers: the latest bid (the legacy one) and the other, from the table
        bid = latest_bid(s, 1)
        assert bid is not None and bid.id == legacy_id
        assert declared_by_owner(s, bid) == {1: 10.0}
        first = s.get(Bid, new_id)
        assert first is not None
        assert declared_by_owner(s, first) == {1: 120.0, 2: 80.0}  # owner 3 declared nothing

    command.downgrade(_alembic_config(empty_engine), "0003")
    assert "bid_owner_share" not in sa.inspect(empty_engine).get_table_names()
    assert _detail(empty_engine, new_id) == {"rule": "quantile", "programme": "hunan-2026",
                                             "owners": OLD_OWNERS}
    assert _detail(empty_engine, legacy_id)["owners"] == [
        {"owner_id": 1, "declared_kw": 10.0, "share": 0.25, "limited_by": ""}]
    upgrade(empty_engine)  # and up again: the same rows
    with Session(empty_engine) as s:
        assert [r.declared_kw for r in owner_shares(s, new_id)] == [120.0, 80.0, 0.0]


def test_a_bid_without_shares_reads_as_none(engine: Engine) -> None:
    """A bid stored without owner shares: every owner may take part (``None``), as before."""
    with Session(engine) as s:
        s.add(GridEvent(id=1, external_id="e1", source="grid", event_type="day_ahead",
                        direction="peak_shaving", programme="hunan-2026", start=START,
                        end=START + timedelta(hours=1), requested_kw=200.0))
        s.flush()
        bid = Bid(event_id=1, declared_kw=0.0, price_yuan_per_kwh=Decimal("2.5"))
        s.add(bid)
        s.commit()
        assert declared_by_owner(s, bid) is None


def test_add_bid_refuses_an_owner_twice_and_negative_kw(engine: Engine) -> None:
    with Session(engine) as s:
        s.add(Owner(id=1, name="owner 1", contact=""))
        s.add(GridEvent(id=1, external_id="e1", source="grid", event_type="day_ahead",
                        direction="peak_shaving", programme="hunan-2026", start=START,
                        end=START + timedelta(hours=1), requested_kw=200.0))
        s.flush()
        twice = kw_shares({1: 5.0}) + kw_shares({1: 5.0})
        with pytest.raises(ValidationError, match="an owner has two shares"):
            add_bid(s, Bid(event_id=1, declared_kw=10.0, price_yuan_per_kwh=Decimal("2")), twice)
        with pytest.raises(ValidationError, match="negative declared kW for owners \\[1\\]"):
            add_bid(s, Bid(event_id=1, declared_kw=1.0, price_yuan_per_kwh=Decimal("2")),
                    kw_shares({1: -1.0}))
        bid = add_bid(s, Bid(event_id=1, declared_kw=5.0, price_yuan_per_kwh=Decimal("2")),
                      kw_shares({1: 5.0}))
        s.commit()
        assert [(r.owner_id, r.share_fraction) for r in owner_shares(s, int(bid.id or 0))] == [
            (1, 1.0)]
