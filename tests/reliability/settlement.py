"""Finished events ready to settle, and the check that each was settled whole or not at all:
shared by the settlement crash test (``test_settle_crash.py``) and the SIGKILL loop
(``benchmarks/bench_reliability.py``)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func
from sqlalchemy import select as sa_select
from sqlmodel import col, select

from bidding.ledger import GRID_RECEIVABLE, OWNER_PAYABLE, REVENUE
from tests.vpp.daemon.harness import add_completed_event
from vpp.db import session_scope
from vpp.models import (
    AuditLog,
    Device,
    GridEvent,
    LedgerEntry,
    LedgerTransaction,
    OwnerPayout,
    Settlement,
)
from vpp.telemetry_store import Reading, write_readings


def add_finished_events(engine: Engine, owner_id: int, n: int, tag: int) -> list[int]:
    """``n`` completed one-hour events of the owner's polled devices, hours ago, with their
    bid, the baselines fixed at their first plan and a reading every 30 s: ready to settle."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    ids: list[int] = []
    readings: list[Reading] = []
    with session_scope(engine) as s:
        devices = [d for d in s.exec(select(col(Device.id)).where(
            Device.owner_id == owner_id)) if d is not None]
        for k in range(n):
            start = now - timedelta(hours=3 + 2 * (tag * n + k))  # each its own hours
            ids.append(add_completed_event(s, f"settle-{tag}-{k}", start, devices, owner_id,
                                           declared_kw=4.0, baseline_kw=3.0))
            readings += [Reading(d, start + timedelta(seconds=30 * j), 1.0 + (j % 7) / 10)
                         for d in devices for j in range(120)]
    write_readings(engine, readings)
    return ids


def check_settlements(engine: Engine, event_ids: list[int]) -> dict[str, int]:
    """Each event settled whole or not at all; raises AssertionError otherwise."""
    settled = 0
    with session_scope(engine) as s:
        for eid in event_ids:
            ev = s.get(GridEvent, eid)
            assert ev is not None, f"event {eid}: no such event"
            rows = s.exec(select(Settlement).where(Settlement.event_id == eid)).all()
            txns = s.exec(select(LedgerTransaction).where(
                LedgerTransaction.event_id == eid)).all()
            audits = s.execute(sa_select(func.count()).select_from(AuditLog).where(
                col(AuditLog.action) == "settlement_posted",
                col(AuditLog.subject) == f"event:{eid}")).scalar_one()
            if ev.status != "settled":
                assert ev.status == "completed", f"event {eid}: status {ev.status}"
                assert not rows and not txns and not audits, (
                    f"event {eid} not settled but {len(rows)} settlement(s), {len(txns)} "
                    f"ledger transaction(s), {audits} audit record(s) left by the kill")
                continue
            settled += 1
            assert len(rows) == 1 and rows[0].version == 1, (
                f"event {eid}: settled {len(rows)} times")
            assert len(txns) == 1 and txns[0].idempotency_key == f"settle:event:{eid}:v1", (
                f"event {eid}: ledger transactions {[t.idempotency_key for t in txns]}")
            assert audits == 1, f"event {eid}: {audits} settlement_posted audit records"
            legs: Counter[tuple[str, int | None]] = Counter()
            for e in s.exec(select(LedgerEntry).where(
                    LedgerEntry.transaction_id == txns[0].id)):
                legs[(e.account, e.owner_id)] += e.amount_fen
            st = rows[0]
            assert legs[(GRID_RECEIVABLE, None)] == st.revenue_fen - st.penalty_fen, (eid, legs)
            assert legs[(REVENUE, None)] == -st.revenue_fen, (eid, legs)
            payouts = s.exec(select(OwnerPayout).where(
                OwnerPayout.settlement_id == st.id)).all()
            assert payouts, f"event {eid}: no payout rows"
            for p in payouts:
                assert legs[(OWNER_PAYABLE, p.owner_id)] == -p.amount_fen, (eid, p, legs)
            assert st.revenue_fen > 0, f"event {eid}: nothing earned ({st.revenue_fen} fen)"
    return {"events": len(event_ids), "settled": settled}
