"""The daemon plans a V2G charger (SQLite and PostgreSQL): the car its charger reads (50%) and
its owner's declared departure (07:30) and need (12 kWh of 40: an 80% ask) go through the
planner's device view; a 1 h call at 21:00 in Zhuzhou declared above what holding back its
charging gives is met by discharging the car, which still ends the plan's horizon at its ask."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
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

START = datetime(2026, 7, 15, 13, 0, tzinfo=UTC)  # 21:00 in Zhuzhou
CHARGING_KW = 7.4
DECLARED_KW = 10.0  # more than the 7.4 kW of charging it can hold back
CAR_KWH, SOC_NOW, NEED_KWH = 40.0, 50.0, 12.0


class CarConnected:
    """The fleet runtime's answers: the Quasar charging at full power, the car at 50%."""

    def is_online(self, device_id: int) -> bool:
        return True

    def latest(self, device_id: int) -> DeviceState:
        return DeviceState(device_id, datetime.now(UTC), CHARGING_KW, None, SOC_NOW, None, True,
                           CHARGING_KW, 0.0)


def _event(engine: Engine) -> tuple[int, int]:
    owner_id = seed(engine).owner_id
    with session_scope(engine) as s:
        spec = {"host": "10.7.7.8", "port": 502, "devices": [
            {"name": "quasar", "kind": "v2g_charger", "unit_id": 1, "profile": "wallbox-quasar",
             "rated_power_kw": 7.4, "min_setpoint_kw": -7.4, "max_setpoint_kw": 7.4,
             "params": {"car_battery_kwh": CAR_KWH}}]}
        [dev] = fleet.add_gateway(s, fleet.get_owner(s, owner_id), "home", spec).devices
        dev.status = "active"
        dev.preferences = {"ev_departure": "07:30", "ev_energy_needed_kwh": NEED_KWH}
        s.add(dev)
        s.flush()
        did = stored_id(dev.id)
        ev = GridEvent(external_id="rt-v2g", source="rest", event_type="real_time",
                       direction="peak_shaving", programme=PROGRAMME, start=START,
                       end=START + timedelta(hours=1), requested_kw=DECLARED_KW,
                       status="accepted",
                       detail={"baseline_kw": {str(did): [CHARGING_KW] * 4},
                               "tail_baseline_kw": {str(did): [CHARGING_KW] * 16}})
        s.add(ev)
        s.flush()
        event_id = stored_id(ev.id)
        add_bid(s, Bid(event_id=event_id, declared_kw=DECLARED_KW,
                       price_yuan_per_kwh=Decimal("2.0")), kw_shares({owner_id: DECLARED_KW}))
        return event_id, did


async def test_the_daemon_discharges_the_car_and_keeps_its_ask(engine: Engine,
                                                                tmp_path: Path) -> None:
    event_id, did = _event(engine)
    settings = daemon_settings(tmp_path, str(engine.url))
    now = [START]
    planner = Planner(Infra.create(settings, Db(engine), clock=lambda: now[0]),
                      CarConnected())  # type: ignore[arg-type]
    await plan_at(planner, event_id, now, START, [(1, "initial")])
    with session_scope(engine) as s:
        plan = s.exec(select(DispatchPlan).where(DispatchPlan.event_id == event_id,
                                                 DispatchPlan.status == "active")).one()
        rows = sorted(s.exec(select(Setpoint).where(Setpoint.plan_id == plan.id)).all(),
                      key=lambda r: r.interval_start)
        assert plan.detail["status"] == "solved", plan.detail
    assert {r.device_id for r in rows} == {did}
    kw = np.array([r.setpoint_kw for r in rows])
    assert len(kw) == 4 + 16  # the call and its tail
    assert (CHARGING_KW - kw[:4] >= DECLARED_KW * (1 - 1e-3)).all()  # the call met ...
    assert kw[:4].max() < 0.0  # ... by discharging the car
    assert kw.min() >= -7.4 - 1e-6 and kw.max() <= 7.4 + 1e-6
    gain = np.where(kw > 0, kw * 0.95, kw / 0.95) * 0.25  # the car's own efficiencies
    soc = SOC_NOW + 100 * np.cumsum(gain) / CAR_KWH
    assert soc[-1] >= SOC_NOW + 100 * NEED_KWH / CAR_KWH - 1e-6  # 80% by the horizon's end
    assert soc.min() >= 20.0 - 1e-6
