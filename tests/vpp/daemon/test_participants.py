"""Only the owners in the bid are dispatched: an owner with no declared share is neither
planned (asked to shed without pay) nor settled, so the plan and the settlement count the same
response. (The 1,021-device full-stack run dispatched every owner against a bid of some: the
settled owners delivered 1.1 of 5.1 MW declared.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import col, select

from bidding.workflow import bid_devices
from tests.vpp.daemon.harness import (
    PROGRAMME,
    add_plant,
    daemon_settings,
    plan_at,
    planner_at,
    seed,
    stored_id,
)
from vpp import fleet
from vpp.bids import add_bid, kw_shares
from vpp.db import session_scope
from vpp.models import Bid, Device, DispatchPlan, GridEvent


async def test_only_owners_with_a_declared_share_are_planned(engine: Engine,
                                                             tmp_path: Path) -> None:
    tokens = seed(engine)
    now = datetime.now(UTC)
    start = now - timedelta(minutes=now.minute % 15, seconds=now.second,
                            microseconds=now.microsecond)
    with session_scope(engine) as s:
        a = fleet.get_owner(s, tokens.owner_id)
        b = fleet.add_owner(s, "owner-b")
        a_ids, b_ids = add_plant(s, a, "10.3.3.1"), add_plant(s, b, "10.3.3.2")
        ev = GridEvent(external_id="rt-part", source="rest", event_type="real_time",
                       direction="peak_shaving", programme=PROGRAMME, start=start,
                       end=start + timedelta(hours=1), requested_kw=10.0, status="accepted",
                       detail={"baseline_kw": {str(d): [15.0] * 4 for d in a_ids + b_ids}})
        s.add(ev)
        s.flush()
        event_id = stored_id(ev.id)
        add_bid(s, Bid(event_id=event_id, declared_kw=8.0, price_yuan_per_kwh=Decimal("2.0")),
                kw_shares({tokens.owner_id: 8.0, stored_id(b.id): 0.0}))
    at = [start]  # the planner's clock
    [out] = await plan_at(planner_at(engine, daemon_settings(tmp_path, str(engine.url)), at),
                          event_id, at, start, [(0, "initial")])
    assert out.devices == 2
    with session_scope(engine) as s:
        plan = s.exec(select(DispatchPlan).where(DispatchPlan.id == out.plan_id)).one()
        assert sorted(plan.detail["device_ids"]) == sorted(a_ids)
        assert set(plan.detail["owner_baseline_kw"]) == {str(tokens.owner_id)}


async def test_a_device_opted_out_for_a_while_returns_by_itself(engine: Engine,
                                                                 tmp_path: Path) -> None:
    """``opt_out_until``: the device is left out of an event that starts before the expiry (the
    offer and the plan alike, bidding.participants.opted_out) and planned again in an event
    that starts at it, with no change by anyone."""
    tokens = seed(engine)
    now = datetime.now(UTC)
    start = now - timedelta(minutes=now.minute % 15, seconds=now.second,
                            microseconds=now.microsecond)
    until = start + timedelta(hours=2)
    with session_scope(engine) as s:
        owner = fleet.get_owner(s, tokens.owner_id)
        ids = add_plant(s, owner, "10.3.3.3")
        d = s.get(Device, ids[0])
        assert d is not None
        d.preferences = {"opt_out_until": until.isoformat()}
        s.add(d)
        events = []
        for k, t0 in enumerate((start, until)):
            ev = GridEvent(external_id=f"rt-opt-{k}", source="rest", event_type="real_time",
                           direction="peak_shaving", programme=PROGRAMME, start=t0,
                           end=t0 + timedelta(hours=1), requested_kw=10.0, status="accepted",
                           detail={"baseline_kw": {str(i): [15.0] * 4 for i in ids}})
            s.add(ev)
            s.flush()
            events.append(stored_id(ev.id))
            add_bid(s, Bid(event_id=events[-1], declared_kw=8.0,
                           price_yuan_per_kwh=Decimal("2.0")),
                    kw_shares({tokens.owner_id: 8.0}))
        # the offer's view of the same rule: out for the first event's start, in for the second
        rows = list(s.exec(select(Device).where(col(Device.id).in_(ids))
                           .order_by(col(Device.id))))
        assert [b.eligible for b in bid_devices(rows, {}, start)] == [False, True]
        assert [b.eligible for b in bid_devices(rows, {}, until)] == [True, True]
    settings = daemon_settings(tmp_path, str(engine.url))
    planned = []
    for event_id, t0 in zip(events, (start, until), strict=True):
        at = [t0]
        [out] = await plan_at(planner_at(engine, settings, at), event_id, at, t0,
                              [(0, "initial")])
        with session_scope(engine) as s:
            plan = s.exec(select(DispatchPlan).where(DispatchPlan.id == out.plan_id)).one()
            planned.append(sorted(plan.detail["device_ids"]))
    assert planned == [ids[1:], sorted(ids)]
