"""``vpp bid``, ``vpp settle``, ``vpp report`` and ``vpp settle-demo`` on a real SQLite file."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from tests.bidding.fleet import TZ, add_event, make_fleet, simulate_event_day, simulate_history
from tests.conftest import run_cli as run
from vpp.db import make_engine, session_scope, upgrade
from vpp.models import AuditLog, Device, DispatchPlan, Setpoint, Settlement

START = datetime(2025, 7, 16, 19, 0, tzinfo=TZ)


@pytest.fixture
def env(cli_env: Path) -> Path:
    return cli_env


def test_bid_settle_pay_report(env: Path, tmp_path: Path, capsys) -> None:
    engine = make_engine(f"sqlite:///{env}")
    upgrade(engine)
    devices = make_fleet(engine)
    simulate_history(engine, devices, START.date(), days=10)
    ev = add_event(engine, START)
    code, out, err = run(capsys, "bid", "--event", str(ev))
    assert code == 0, err
    assert "at 1.5 yuan/kWh" in out
    code, _, err = run(capsys, "bid", "--event", str(ev), "--price", "9")
    assert code == 2 and "error: bid price 9 yuan/kWh is over the cap 1.5" in err
    from vpp.bids import owner_shares, require_bid
    from vpp.db import session_scope

    with session_scope(engine) as s:
        declared = {sh.owner_id: sh.declared_kw
                    for sh in owner_shares(s, int(require_bid(s, ev).id or 0))}
    simulate_event_day(engine, devices, START, START + timedelta(hours=2), declared,
                       {o: 0.9 for o in declared})
    reports = tmp_path / "reports"
    code, out, err = run(capsys, "settle", "--event", str(ev), "--out", str(reports), "--pay")
    assert code == 0, err
    assert "settlement v1 (new version)" in out and "paid owners" in out
    files = sorted(p.name for p in (reports / f"event-{ev}").iterdir())
    assert f"event-{ev}-v1.png" in files and f"event-{ev}-v1-owners.csv" in files
    assert sum(f.startswith("statement-") and f.endswith(".html") for f in files) == 3
    data = json.loads((reports / f"event-{ev}" / f"event-{ev}-v1.json").read_text())
    s = data["summary"]
    assert sum(o["payout_fen"] for o in data["owners"]) + s["fee_fen"] == s["net_fen"]
    statement = next((reports / f"event-{ev}").glob("statement-*.html")).read_text()
    assert "Payout to you" in statement and "data:image/png;base64," in statement

    code, out, _ = run(capsys, "settle", "--event", str(ev), "--out", str(reports))
    assert code == 0 and "unchanged (already settled)" in out

    code, out, err = run(capsys, "report", "--period", "2025-07", "--out", str(reports))
    assert code == 0, err
    assert "Settled events 2025-07" in out and "DR capability" in out
    period = reports / "period-2025-07"
    assert (period / "period-2025-07.png").exists()
    assert (period / "period-2025-07-owners.csv").read_text().count("\n") == 4
    monthly = sorted(period.glob("statement-2025-07-owner-*.html"))
    assert len(monthly) == 3 and "<td>E1</td>" in monthly[0].read_text()
    assert "<th>total</th>" in monthly[0].read_text().replace(' colspan="4"', "")

    code, _, err = run(capsys, "report", "--period", "July")
    assert code == 2 and "--period must look like 2025-07" in err
    code, _, err = run(capsys, "settle", "--event", "999")
    assert code == 1 and "error: no event 999" in err


def test_settle_demo(env: Path, tmp_path: Path, capsys) -> None:
    """The demo call goes through the daemon's parts: the scheduler's setpoints reach the
    simulated devices (written and read back), the daemon settles, and the CLI shows it."""
    code, out, err = run(capsys, "settle-demo", "--out", str(tmp_path / "demo"))
    assert code == 0, err
    assert "settlement v1" in out and "paid owners" in out
    assert "unchanged (already settled)" in out  # settled by the daemon's settle loop
    db = tmp_path / "data" / "settle-demo.sqlite3"
    engine = make_engine(f"sqlite:///{db}")
    with session_scope(engine) as s:
        written = s.exec(select(Setpoint).where(Setpoint.status == "written")).all()
        assert written and all(w.readback_kw is not None for w in written)
        assert {w.device_id for w in written} <= {d.id for d in s.exec(select(Device))}
        plans = s.exec(select(DispatchPlan)).all()
        assert plans and {p.event_id for p in plans} == {1}
        assert s.exec(select(AuditLog).where(AuditLog.action == "setpoint_written")).first()
        st = s.exec(select(Settlement)).one()
        assert st.response_kwh > 0 and st.revenue_fen > 0
    engine.dispose()
    assert any((tmp_path / "demo").rglob("statement-*.html"))
