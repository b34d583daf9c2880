"""The daemon plans a fleet above ``[scheduler] partition_size`` devices on Dask: split by
owner, solved by the exchange-ADMM coordinator (an in-process cluster here), the same plan
rows and setpoints as the single-model path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

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
from vpp.models import Bid, DispatchPlan, GridEvent, Setpoint

START = datetime(2026, 7, 16, 10, 0, tzinfo=UTC)  # 18:00 in Zhuzhou


async def test_a_fleet_above_partition_size_is_planned_on_dask(engine: Engine,
                                                               tmp_path: Path) -> None:
    tokens = seed(engine)
    ids: list[int] = []
    with session_scope(engine) as s:
        for o, owner_id in enumerate((tokens.owner_id, tokens.other_owner_id)):
            owner = fleet.get_owner(s, owner_id)
            for g in range(3):  # 6 loads of 20 kW per owner, 12 in all
                ids += add_plant(s, owner, f"10.5.{o}.{g + 1}")
        ev = GridEvent(external_id="rt-partitioned", source="rest", event_type="real_time",
                       direction="peak_shaving", programme=PROGRAMME, start=START,
                       end=START + timedelta(hours=1), requested_kw=24.0, status="accepted",
                       detail={"baseline_kw": {str(d): [15.0] * 4 for d in ids}})
        s.add(ev)
        s.flush()
        event_id = stored_id(ev.id)
        add_bid(s, Bid(event_id=event_id, declared_kw=24.0, price_yuan_per_kwh=Decimal("2.0")),
                kw_shares({tokens.owner_id: 12.0, tokens.other_owner_id: 12.0}))
    settings = daemon_settings(tmp_path, str(engine.url))
    settings = settings.model_copy(update={"scheduler": settings.scheduler.model_copy(
        update={"partition_size": 10})})
    now = [START]
    planner = planner_at(engine, settings, now)
    out, again = await plan_at(planner, event_id, now, START, [(1, "initial"), (16, "periodic")])
    # the re-plan in the next interval ran on the same two partition actors (warm models)
    assert planner.solver.partitioned.pool.created == 2
    assert again.shortfall_kw < 0.01 * 24.0
    assert out.shortfall_kw < 0.01 * 24.0
    with session_scope(engine) as s:
        plan = s.get(DispatchPlan, out.plan_id)
        assert plan is not None and plan.detail["status"] == "solved"
        assert any("partitioned on Dask: 2 partitions" in w for w in plan.detail["warnings"])
        rows = s.exec(select(Setpoint).where(Setpoint.plan_id == out.plan_id)).all()
        assert len(rows) == len(ids) * (4 + 16)  # the call and its 4 h tail
        assert all(0.0 <= r.setpoint_kw <= 20.0 for r in rows)  # within the declared limits
        call = [r for r in rows if r.interval_start.replace(tzinfo=UTC) < START + timedelta(hours=1)]
        assert len(call) == len(ids) * 4
        for t in {r.interval_start for r in call}:
            total = sum(r.setpoint_kw for r in call if r.interval_start == t)
            assert total <= 12 * 15.0 - 24.0 * 0.99  # the fleet sheds the declared 24 kW
