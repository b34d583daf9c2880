"""The daemon's plan aims at the declared amount inside the band and ramps the fleet back.

Issue 23: on a first run the plan put 100 buildings at their minimum for the whole event, 25%
more than declared (past the band's 120% ceiling, unpaid), and on release the fleet jumped 17%
above its baseline at once. Here ten buildings (400 kW now, 220 kW sheddable each, half the
shed energy drawn back afterwards) get a 1 h call at 21:00 in Zhuzhou (critical peak, the
tail in the valley: that alone made the QP shed all 2.2 MW) declared at 1 MW.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from device_adapters.protocol import DeviceState
from tests.vpp.daemon.harness import PROGRAMME, daemon_settings, plan_at, seed, stored_id
from vpp import fleet
from vpp.bids import add_bid, kw_shares
from vpp.daemon.dbexec import Db
from vpp.daemon.infra import Infra
from vpp.daemon.planning import Planner
from vpp.db import session_scope
from vpp.models import Bid, DispatchPlan, GridEvent, Setpoint

START = datetime(2026, 7, 15, 13, 0, tzinfo=UTC)  # 21:00 in Zhuzhou: critical peak
BASE_KW = 400.0
DECLARED_KW = 1000.0


class BuildingsFleet:
    def is_online(self, device_id: int) -> bool:
        return True

    def latest(self, device_id: int) -> DeviceState:
        return DeviceState(device_id, datetime.now(UTC), BASE_KW, None, None, None, True, 5.0,
                           0.0)


def _event(engine: Engine) -> tuple[int, list[int]]:
    owner_id = seed(engine).owner_id
    with session_scope(engine) as s:
        spec = {"host": "10.7.7.7", "port": 502, "devices": [
            {"name": f"hvac-{u}", "kind": "commercial_building", "unit_id": u,
             "profile": "coolmaster-vrf", "rated_power_kw": 600.0, "min_setpoint_kw": 150.0,
             "max_setpoint_kw": 600.0,
             "params": {"max_shed_kw": 220.0, "rebound_fraction": 0.5}}
            for u in range(1, 11)]}
        devs = fleet.add_gateway(s, fleet.get_owner(s, owner_id), "mall", spec).devices
        for d in devs:
            d.status = "active"
            s.add(d)
        s.flush()
        ids = [int(d.id or 0) for d in devs]
        ev = GridEvent(external_id="rt-target", source="rest", event_type="real_time",
                       direction="peak_shaving", programme=PROGRAMME, start=START,
                       end=START + timedelta(hours=1), requested_kw=DECLARED_KW,
                       status="accepted",
                       detail={"baseline_kw": {str(d): [BASE_KW] * 4 for d in ids},
                               "tail_baseline_kw": {str(d): [BASE_KW] * 16 for d in ids}})
        s.add(ev)
        s.flush()
        event_id = stored_id(ev.id)
        add_bid(s, Bid(event_id=event_id, declared_kw=DECLARED_KW,
                       price_yuan_per_kwh=Decimal("2.0")), kw_shares({owner_id: DECLARED_KW}))
        return event_id, ids


async def _plan(engine: Engine, settings: Any, event_id: int) -> None:
    now = [START]
    planner = Planner(Infra.create(settings, Db(engine), clock=lambda: now[0]),
                      BuildingsFleet())  # type: ignore[arg-type]
    await plan_at(planner, event_id, now, START, [(1, "initial")])


def _planned(engine: Engine, event_id: int, ids: list[int]) -> tuple[np.ndarray, list[datetime]]:
    """Fleet setpoint (kW) per interval of the active plan's rows, and their starts."""
    with session_scope(engine) as s:
        plan = s.exec(select(DispatchPlan).where(DispatchPlan.event_id == event_id,
                                                 DispatchPlan.status == "active")).one()
        rows = s.exec(select(Setpoint).where(Setpoint.plan_id == plan.id)).all()
        assert plan.detail["status"] == "solved" and not plan.detail["warnings"]
        starts = sorted({r.interval_start for r in rows})
        total = {t: 0.0 for t in starts}
        for r in rows:
            assert r.device_id in ids
            total[r.interval_start] += r.setpoint_kw
        return np.array([total[t] for t in starts]), starts


async def test_the_plan_aims_at_the_declared_amount_and_ramps_back(
        engine: Engine, tmp_path: Path) -> None:
    event_id, ids = _event(engine)
    settings = daemon_settings(tmp_path, str(engine.url))
    sch = settings.scheduler
    assert (sch.target_margin_pct, sch.rebound_max_pct) == (5.0, 10.0)  # the shipped defaults
    await _plan(engine, settings, event_id)
    power, starts = _planned(engine, event_id, ids)
    fleet_base = BASE_KW * len(ids)
    reduction = fleet_base - power[:4]
    # the declared amount, and at most the 5% margin more: inside the 50-120% band
    assert (reduction >= DECLARED_KW * (1 - 1e-3)).all()
    assert (reduction <= DECLARED_KW * 1.05 * (1 + 1e-3)).all()
    # the plan's rows cover the tail, where the fleet comes back within 10% of its baseline
    assert len(starts) == 4 + 16 and starts[-1] == START + timedelta(hours=4, minutes=45)
    tail = power[4:]
    assert (tail <= fleet_base * 1.10 + 1.0).all()
    assert (tail >= fleet_base - 1.0).all()
    # the rebound is drawn back all the same: about half of the ~1 MWh shed, over the tail
    assert (tail - fleet_base).sum() * 0.25 == pytest.approx(0.5 * reduction.sum() * 0.25,
                                                            rel=0.05)
