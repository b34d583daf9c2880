"""The settle loop: a finished event with its fixed baselines and real telemetry rows is
settled (bidding.workflow.settle_from_db first; the fixed baselines when the history is too
short) and posted to the ledger once; running again (or after a
restart) counts nothing twice; an event without meter data is marked unsettled with the reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func
from sqlmodel import select

from tests.vpp.daemon.harness import add_completed_event, daemon_settings, seed
from vpp import fleet
from vpp.daemon.dbexec import Db
from vpp.daemon.infra import Infra
from vpp.daemon.settle import Settler
from vpp.db import session_scope
from vpp.models import (
    GridEvent,
    LedgerTransaction,
    OwnerPayout,
    Settlement,
)
from vpp.telemetry_store import Reading, write_readings


def _event(engine: Engine, owner_id: int, with_meter: bool, ext: str) -> int:
    now = datetime.now(UTC)
    start = (now - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    with session_scope(engine) as s:
        owner = fleet.get_owner(s, owner_id)
        spec = {"host": "10.1.1.1" if with_meter else "10.1.1.2", "port": 502, "devices": [
            {"name": f"{ext}-load-{u}", "kind": "industrial_load", "unit_id": u,
             "profile": "industrial-plc", "rated_power_kw": 20.0, "min_setpoint_kw": 0.0,
             "max_setpoint_kw": 20.0, "params": {"max_curtail_kw": 10.0}} for u in (1, 2)]}
        devs = fleet.add_gateway(s, owner, "plant", spec).devices
        ids = [int(d.id or 0) for d in devs]
        event_id = add_completed_event(s, ext, start, ids, owner_id, declared_kw=10.0,
                                       baseline_kw=10.0)
    if with_meter:
        write_readings(engine, [
            Reading(i, start + timedelta(seconds=30 * k), 4.0) for i in ids for k in range(120)])
    return event_id


async def test_settles_once_and_marks_the_unsettleable(engine: Engine,
                                                       tmp_path: Path) -> None:
    tokens = seed(engine)
    good = _event(engine, tokens.owner_id, True, "ev-good")
    bad = _event(engine, tokens.owner_id, False, "ev-no-meter")
    infra = Infra.create(daemon_settings(tmp_path, str(engine.url)), Db(engine))
    settler = Settler(infra)
    try:
        await settler.step()
        await settler.step()  # again: idempotent
        # a new process (restart) settling again posts nothing new either
        await Settler(infra).step()
    finally:
        infra.db.close()
    with session_scope(engine) as s:
        st = s.exec(select(Settlement)).all()
        assert [x.event_id for x in st] == [good]
        assert st[0].response_kwh == 12.0 and st[0].declared_kw == 10.0
        assert st[0].revenue_fen > 0
        # a fleet without weeks of history: bidding.workflow.settle_from_db cannot build the
        # programme's baseline, so the baseline fixed at the first plan is used, and said so
        assert st[0].detail["baseline"] == "fixed at the first plan"
        assert "baseline" in st[0].detail["why_not_history"]
        payouts = s.exec(select(OwnerPayout)).all()
        assert [p.owner_id for p in payouts] == [tokens.owner_id]
        assert s.exec(select(func.count()).select_from(LedgerTransaction)).one() == 1
        settled = s.get(GridEvent, good)
        assert settled is not None and settled.status == "settled"
        unsettled = s.get(GridEvent, bad)
        assert unsettled is not None and unsettled.status == "unsettled" and unsettled.detail["settle_error"]
    text = infra.metrics.render().decode()
    assert f'vpp_settled_yuan{{kind="revenue"}} {st[0].revenue_fen / 100}' in text


async def test_a_home_batterys_export_past_its_site_meter_is_not_paid(engine: Engine,
                                                                       tmp_path: Path) -> None:
    """The settle loop on a battery owner's event (the fixed-baseline path): the batteries
    discharged 5 kW each (10 kW) behind site meters that read -2 kW each (a 3 kW home on each):
    the programme (hunan-2026's rules, ``export_counts = false``) credits 6 kW, the homes'
    load, not the 4 kW exported past them (bidding.export_rule), as the season would."""
    tokens = seed(engine)
    now = datetime.now(UTC)
    start = (now - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    with session_scope(engine) as s:
        owner = fleet.get_owner(s, tokens.owner_id)
        spec = {"host": "10.1.1.3", "port": 502, "devices": [
            {"name": f"home-battery-{u}", "kind": "battery", "unit_id": u,
             "profile": "huawei-luna2000", "rated_power_kw": 5.0, "min_setpoint_kw": -5.0,
             "max_setpoint_kw": 5.0, "params": {"capacity_kwh": 15.0}} for u in (1, 2)]}
        ids = [int(d.id or 0) for d in fleet.add_gateway(s, owner, "homes", spec).devices]
        event_id = add_completed_event(s, "ev-battery", start, ids, tokens.owner_id,
                                       declared_kw=6.0, baseline_kw=0.0)
    write_readings(engine, [
        Reading(i, start + timedelta(seconds=30 * k), -5.0, site_import_kw=-2.0)
        for i in ids for k in range(120)])
    infra = Infra.create(daemon_settings(tmp_path, str(engine.url)), Db(engine))
    try:
        await Settler(infra).step()
    finally:
        infra.db.close()
    with session_scope(engine) as s:
        st = s.exec(select(Settlement).where(Settlement.event_id == event_id)).one()
    assert st.metered_kwh == -10.0  # the batteries' meters, as read
    assert st.response_kwh == 6.0 and st.performance_ratio == 1.0
    assert st.detail["baseline"] == "fixed at the first plan"
