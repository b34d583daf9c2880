"""Only the owners in the bid are dispatched: an owner with no declared share is neither
planned (asked to shed without pay) nor settled, so the plan and the settlement count the same
response. (The 1,021-device full-stack run dispatched every owner against a bid of some: the
settled owners delivered 1.1 of 5.1 MW declared.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

from device_adapters.protocol import DeviceState
from tests.vpp.daemon.harness import PROGRAMME, daemon_settings, seed
from vpp import fleet
from vpp.daemon.dbexec import Db
from vpp.daemon.metrics import Metrics
from vpp.daemon.planning import Planner
from vpp.daemon.services import Services
from vpp.daemon.supervisor import Supervisor
from vpp.db import session_scope
from vpp.models import Bid, DispatchPlan, GridEvent


class _Fleet:
    """The fleet runtime's two questions the planner asks (is it online, its last state),
    answered for devices drawing 15 kW: the poller itself is tested elsewhere."""

    def is_online(self, device_id: int) -> bool:
        return True

    def latest(self, device_id: int) -> DeviceState:
        return DeviceState(device_id, datetime.now(UTC), 15.0, None, None, None, True, 5.0, 0.0)


def _plant(s, owner, host: str) -> list[int]:  # noqa: ANN001
    spec = {"host": host, "port": 502, "devices": [
        {"name": f"{host}-load-{u}", "kind": "industrial_load", "unit_id": u,
         "profile": "industrial-plc", "rated_power_kw": 20.0, "min_setpoint_kw": 0.0,
         "max_setpoint_kw": 20.0, "params": {"max_curtail_kw": 10.0}} for u in (1, 2)]}
    devs = fleet.add_gateway(s, owner, "plant", spec).devices
    for d in devs:
        d.status = "active"
        s.add(d)
    s.flush()
    return [int(d.id or 0) for d in devs]


async def test_only_owners_with_a_declared_share_are_planned(sqlite_engine: Engine,
                                                             tmp_path: Path) -> None:
    engine = sqlite_engine
    tokens = seed(engine)
    now = datetime.now(UTC)
    start = now - timedelta(minutes=now.minute % 15, seconds=now.second,
                            microseconds=now.microsecond)
    with session_scope(engine) as s:
        a = fleet.get_owner(s, tokens.owner_id)
        b = fleet.add_owner(s, "owner-b")
        a_ids, b_ids = _plant(s, a, "10.3.3.1"), _plant(s, b, "10.3.3.2")
        ev = GridEvent(external_id="rt-part", source="rest", event_type="real_time",
                       direction="peak_shaving", programme=PROGRAMME, start=start,
                       end=start + timedelta(hours=1), requested_kw=10.0, status="accepted",
                       detail={"baseline_kw": {str(d): [15.0] * 4 for d in a_ids + b_ids}})
        s.add(ev)
        s.flush()
        s.add(Bid(event_id=ev.id, declared_kw=8.0, price_yuan_per_kwh=Decimal("2.0"),
                  detail={"owners": [{"owner_id": tokens.owner_id, "declared_kw": 8.0},
                                     {"owner_id": int(b.id or 0), "declared_kw": 0.0}]}))
        event_id = int(ev.id or 0)
    metrics = Metrics()
    services = Services(settings=daemon_settings(tmp_path, str(engine.url)), db=Db(engine),
                        metrics=metrics, supervisor=Supervisor(metrics),
                        fleet=_Fleet())  # type: ignore[arg-type]
    planner = Planner(services)
    try:
        out = await planner.plan(event_id, "initial")
    finally:
        planner.close()
        services.db.close()
    assert out.devices == 2
    with session_scope(engine) as s:
        plan = s.exec(select(DispatchPlan).where(DispatchPlan.id == out.plan_id)).one()
        assert sorted(plan.detail["device_ids"]) == sorted(a_ids)
        assert set(plan.detail["owner_baseline_kw"]) == {str(tokens.owner_id)}
