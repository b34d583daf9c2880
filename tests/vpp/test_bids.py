"""One ``latest_bid``: vpp.bids, which every reader uses (no other module queries for it)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session

from vpp.bids import latest_bid, require_bid
from vpp.db import make_engine, upgrade
from vpp.errors import NotFoundError
from vpp.models import Bid, GridEvent

ROOT = Path(__file__).resolve().parents[2]


def test_the_latest_bid_is_the_one_with_the_highest_id(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{(tmp_path / 'b.sqlite3').as_posix()}")
    upgrade(engine)
    start = datetime(2026, 7, 1, 11, tzinfo=UTC)
    with Session(engine) as s:
        ev = GridEvent(external_id="x-1", event_type="day_ahead", direction="peak_shaving",
                       start=start, end=start + timedelta(hours=1), requested_kw=100.0, source="cli",
                       programme="hunan-2026")
        other = GridEvent(external_id="x-2", event_type="day_ahead", direction="peak_shaving",
                          start=start, end=start + timedelta(hours=1), requested_kw=100.0, source="cli",
                          programme="hunan-2026")
        s.add(ev)
        s.add(other)
        s.commit()
        eid, oid = int(ev.id or 0), int(other.id or 0)
        assert latest_bid(s, eid) is None
        with pytest.raises(NotFoundError, match=f"event {eid} has no bid"):
            require_bid(s, eid)
        for kw in (80.0, 60.0):
            s.add(Bid(event_id=eid, declared_kw=kw, price_yuan_per_kwh=Decimal("1.2")))
            s.commit()
        s.add(Bid(event_id=oid, declared_kw=5.0, price_yuan_per_kwh=Decimal("1.2")))
        s.commit()
        assert latest_bid(s, eid).declared_kw == 60.0  # type: ignore[union-attr]
        assert require_bid(s, eid).declared_kw == 60.0
        assert require_bid(s, oid).declared_kw == 5.0


def test_no_other_module_has_its_own_latest_bid() -> None:
    """A second definition (or a second query ordering bids) would let two steps disagree on
    which offer counts."""
    own = re.compile(r"^\s*def\s+\w*latest_bid\w*\s*\(|Bid\.id\)?\.desc\(\)", re.M)
    found = []
    for pkg in ("vpp", "bidding", "sim", "forecasting", "device_adapters"):
        for py in (ROOT / pkg).rglob("*.py"):
            if py != ROOT / "vpp" / "bids.py" and own.search(py.read_text()):
                found.append(str(py.relative_to(ROOT)))
    assert not found, found


def test_owner_shares_are_read_and_written_only_in_vpp_bids() -> None:
    """The owners' shares are rows of ``bid_owner_share`` (migration 0004), read and written
    through :mod:`vpp.bids`: no module queries the table itself, and none reads the shares from
    the bid's ``detail`` JSON, where they were before (two readers could disagree on who is
    held to what)."""
    own = re.compile(r"select\(\s*BidOwnerShare|bid\.detail\b[^\n]{0,20}[\"']owners[\"']")
    allowed = {ROOT / "vpp" / "bids.py"}
    found = []
    for pkg in ("vpp", "bidding", "sim", "forecasting", "device_adapters"):
        for py in (ROOT / pkg).rglob("*.py"):
            if py not in allowed and "migrations" not in py.parts and own.search(py.read_text()):
                found.append(str(py.relative_to(ROOT)))
    assert not found, found
