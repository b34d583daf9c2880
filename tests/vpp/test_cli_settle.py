"""``vpp settle`` takes the daemon's settlement path: an event the daemon settled against the
baselines fixed at its first plan (no history for the programme's baseline) is shown as stored,
not settled again; an unsettled one settles the daemon's way; ``--resettle`` re-settles by the
same method after a corrected reading. The shipped configuration and programme (hunan-2026)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func
from sqlmodel import select

from tests.conftest import run_cli as run
from vpp import fleet
from vpp.bids import add_bid, kw_shares
from vpp.config import load_settings
from vpp.daemon.settle import settle_event_db
from vpp.db import make_engine, session_scope, upgrade
from vpp.models import Bid, GridEvent, LedgerTransaction, Settlement
from vpp.telemetry_store import Reading, write_readings

START = (datetime.now(UTC) - timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)


def _seed(db: Path) -> tuple[Engine, list[int], int]:
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    with session_scope(engine) as s:
        owner = fleet.add_owner(s, "Zhuzhou Press Works")
        spec = {"host": "10.2.0.9", "port": 502, "devices": [
            {"name": f"press-{u}", "kind": "industrial_load", "unit_id": u,
             "profile": "industrial-plc", "rated_power_kw": 20.0, "min_setpoint_kw": 0.0,
             "max_setpoint_kw": 20.0, "params": {"max_curtail_kw": 10.0}} for u in (1, 2)]}
        ids = [int(d.id or 0) for d in fleet.add_gateway(s, owner, "plant", spec).devices]
        return engine, ids, int(owner.id or 0)


def _event(engine: Engine, ids: list[int], owner_id: int, ext: str, start: datetime,
           status: str = "completed", load_kw: float = 4.0) -> int:
    with session_scope(engine) as s:
        ev = GridEvent(external_id=ext, source="rest", event_type="real_time",
                       direction="peak_shaving", programme="hunan-2026", start=start,
                       end=start + timedelta(hours=1), requested_kw=10.0, status=status,
                       detail={"baseline_kw": {str(d): [10.0] * 4 for d in ids},
                               "baseline_methods": {"recent_mean": len(ids)}})
        s.add(ev)
        s.flush()
        assert ev.id is not None
        add_bid(s, Bid(event_id=ev.id, declared_kw=10.0, price_yuan_per_kwh=Decimal("2.0")),
                kw_shares({owner_id: 10.0}))
        event_id = ev.id
    # device 2 has no readings in the last interval: no response there
    write_readings(engine, [Reading(d, start + timedelta(seconds=30 * k), load_kw)
                            for d in ids for k in range(120) if not (d == ids[1] and k >= 90)])
    return event_id


def _counts(engine: Engine) -> tuple[int, int]:
    with session_scope(engine) as s:
        return (s.exec(select(func.count()).select_from(Settlement)).one(),
                s.exec(select(func.count()).select_from(LedgerTransaction)).one())


def test_settle_shows_the_daemons_settlement_and_settles_like_it(
        cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine, ids, owner_id = _seed(cli_env)
    done = _event(engine, ids, owner_id, "rt-settled", START)
    daemon = settle_event_db(engine, done, load_settings(), actor="daemon", rebound_h=0.0)
    assert daemon.method == "fixed" and daemon.created
    assert _counts(engine) == (1, 1)

    reports = tmp_path / "reports"
    code, out, err = run(capsys, "settle", "--event", str(done), "--out", str(reports))
    assert code == 0, err
    assert "settlement v1 (unchanged (already settled))" in out
    assert "baselines fixed at the event's first plan" in out
    assert _counts(engine) == (1, 1)  # never settled twice
    files = {p.name for p in (reports / f"event-{done}").iterdir()}
    assert f"event-{done}-v1.png" in files and f"event-{done}-v1.json" in files
    assert any(f.startswith("statement-") for f in files)

    # an event the daemon has not settled yet: the CLI settles it the daemon's way
    other = _event(engine, ids, owner_id, "rt-later", START + timedelta(hours=2), load_kw=5.0)
    code, out, err = run(capsys, "settle", "--event", str(other), "--out", str(reports))
    assert code == 0, err
    assert "settlement v1 (new version)" in out and "fixed at the event's first plan" in out
    with session_scope(engine) as s:
        st = s.exec(select(Settlement).where(Settlement.event_id == other)).one()
        assert st.detail["baseline"] == "fixed at the first plan"
        # 2 devices x 10 kW baseline - 2 x 5 kW for 1 h, minus device 2's last interval
        assert st.response_kwh == pytest.approx(10.0 - 5.0 * 0.25)
        settled = s.get(GridEvent, other)
        assert settled is not None and settled.status == "settled"

    # the missing readings arrive late: --resettle, same method, a new version
    write_readings(engine, [Reading(ids[1], START + timedelta(hours=2, seconds=30 * k), 5.0)
                            for k in range(90, 120)])
    code, out, err = run(capsys, "settle", "--event", str(other), "--resettle",
                         "--out", str(reports))
    assert code == 0, err
    assert "settlement v2 (new version, reverses v1)" in out
    with session_scope(engine) as s:
        st2 = s.exec(select(Settlement).where(Settlement.event_id == other,
                                              Settlement.version == 2)).one()
        assert st2.response_kwh == pytest.approx(10.0)
        assert st2.detail["baseline"] == "fixed at the first plan"
        assert "no baseline days available" in st2.detail["why_not_history"]
    code, out, _ = run(capsys, "settle", "--event", str(other), "--resettle", "--out",
                       str(reports))
    assert code == 0 and "settlement v2 (unchanged (already settled))" in out


def test_settle_refuses_an_event_still_running(cli_env: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    engine, ids, owner_id = _seed(cli_env)
    ev = _event(engine, ids, owner_id, "rt-now", START, status="active")
    code, _, err = run(capsys, "settle", "--event", str(ev))
    assert code == 2 and err.strip() == f"error: event {ev} is active: it is settled after it ends"
    assert _counts(engine) == (0, 0)
