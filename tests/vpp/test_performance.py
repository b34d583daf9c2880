"""The performance record's database edge (vpp.performance) on SQLite and PostgreSQL: settled
events read at their current settlement version, judged against the band of the programme
version they were settled under; remedies recorded, refused when they would change nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from vpp.db import session_scope
from vpp.domain.performance import RemedyIn
from vpp.errors import ConflictError, ValidationError
from vpp.models import AuditLog, GridEvent, Settlement
from vpp.performance import add_remedy, bid_refusal, performance_from_db, performance_view

REPO = Path(__file__).resolve().parents[2]
PDIR = REPO / "config" / "programmes"
TZ = ZoneInfo("Asia/Shanghai")
HUNAN = "hunan-2026"


def settled(engine: Engine, start: datetime, *ratios: float, programme: str = HUNAN,
            status: str = "settled") -> int:
    """One event with a settlement version per ratio (the last is current)."""
    with session_scope(engine) as s:
        ev = GridEvent(external_id=f"e-{start.isoformat()}-{programme}", source="cli",
                       event_type="day_ahead", programme=programme, start=start,
                       end=start + timedelta(hours=1), requested_kw=100.0, status=status)
        s.add(ev)
        s.flush()
        for v, ratio in enumerate(ratios, start=1):
            s.add(Settlement(event_id=int(ev.id or 0), version=v, baseline_kwh=100,
                             metered_kwh=100 - ratio * 100, response_kwh=ratio * 100,
                             declared_kw=100, performance_ratio=ratio, revenue_fen=0))
        return int(ev.id or 0)


def day(d: int, month: int = 3, year: int = 2026) -> datetime:
    return datetime(year, month, d, 18, 0, tzinfo=TZ)


def test_record_reads_current_versions_and_refuses_bids_while_suspended(engine: Engine) -> None:
    settled(engine, day(1), 0.2)
    settled(engine, day(2), 0.9, 0.3)  # re-settled: the current version failed
    settled(engine, day(3), 0.1)
    settled(engine, day(4), 0.1, programme="hainan-2025")  # another programme
    settled(engine, day(5), 0.0, status="unsettled")  # no verdict without a settlement
    at = day(6)
    view = performance_from_db(engine, HUNAN, PDIR, at)
    assert [e.passed for e in view.events] == [False, False, False]
    assert view.state == "suspended" and str(view.since) == "2026-03-03"
    assert str(view.remedy_deadline) == "2026-06-03" and view.refuses_bids
    assert view.rules is not None and view.rules.remedy_deadline_months == 3
    assert str(view.events[0].floor_ratio) == "0.5"
    with session_scope(engine) as s:
        reason = bid_refusal(s, HUNAN, PDIR, at)
        assert reason and "suspended since 2026-03-03" in reason
        assert bid_refusal(s, "hainan-2025", PDIR, at) is None  # warned only


def test_remedy_is_recorded_and_audited_or_refused(engine: Engine) -> None:
    at = day(20)
    with session_scope(engine) as s:
        with pytest.raises(ConflictError, match="changes nothing: the VPP is good"):
            add_remedy(s, HUNAN, PDIR, RemedyIn(remedied_on=at.date(), note="x"), "op", at)
    for d in (1, 2, 3):
        settled(engine, day(d), 0.2)
    with session_scope(engine) as s:
        with pytest.raises(ValidationError, match="in the future"):
            add_remedy(s, HUNAN, PDIR, RemedyIn(remedied_on=day(21).date(), note="x"), "op", at)
        with pytest.raises(ConflictError, match="suspended since 2026-03-03"):
            add_remedy(s, HUNAN, PDIR, RemedyIn(remedied_on=day(2).date(), note="x"), "op", at)
        out = add_remedy(s, HUNAN, PDIR, RemedyIn(remedied_on=day(10).date(),
                                                  note="  meters fixed "), "op", at)
        assert out.note == "meters fixed" and out.actor == "op"
    with session_scope(engine) as s:
        view = performance_view(s, HUNAN, PDIR, at)
        assert view.state == "good" and view.awaiting_first_response and not view.refuses_bids
        assert [str(r.remedied_on) for r in view.remedies] == ["2026-03-10"]
        assert "reinstated" in view.changes[-1].rule
        audit = s.exec(select(AuditLog).where(AuditLog.action == "performance_remedy")).one()
        assert audit.detail["state_before"] == "suspended" and audit.detail["state_after"] == "good"
