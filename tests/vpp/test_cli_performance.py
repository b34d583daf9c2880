"""``vpp performance`` and ``vpp performance remedy`` on a real SQLite file: the record as a
table and as JSON, exit 1 while bids are refused, a remedy recorded, bad input refused with a
one-line error and a non-zero exit."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import run_cli as run
from vpp.db import make_engine, session_scope, upgrade
from vpp.models import GridEvent, Settlement

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def suspended_db(cli_env: Path) -> Path:
    """Three failed hunan-2026 events (ratio 0.2, the band's floor 0.5) 10, 9, 8 days ago."""
    engine = make_engine(f"sqlite:///{cli_env}")
    upgrade(engine)
    today = datetime.now(SH).replace(hour=18, minute=0, second=0, microsecond=0)
    with session_scope(engine) as s:
        for k in (10, 9, 8):
            start = today - timedelta(days=k)
            ev = GridEvent(external_id=f"ev-{k}", source="cli", event_type="day_ahead",
                           programme="hunan-2026", start=start, end=start + timedelta(hours=1),
                           requested_kw=100.0, status="settled")
            s.add(ev)
            s.flush()
            s.add(Settlement(event_id=int(ev.id or 0), baseline_kwh=100, metered_kwh=80,
                             response_kwh=20, declared_kw=100, performance_ratio=0.2,
                             revenue_fen=0))
    engine.dispose()
    return cli_env


def test_record_table_json_and_remedy(suspended_db: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    suspended_on = (datetime.now(SH) - timedelta(days=8)).date()
    code, out, _ = run(capsys, "performance")
    assert code == 1  # bids are refused
    assert f"SUSPENDED since {suspended_on}" in out and "remedy deadline" in out
    assert "FAIL" in out and "3 failed responses within 12 months" in out
    code, out, _ = run(capsys, "performance", "--json")
    rec = json.loads(out)
    assert code == 1 and rec["state"] == "suspended" and rec["refuses_bids"]
    assert rec["since"] == suspended_on.isoformat() and len(rec["events"]) == 3
    # as of the day before the third failure: warned, bids not refused
    code, out, _ = run(capsys, "performance", "--json", "--day",
                       (suspended_on - timedelta(days=1)).isoformat())
    assert code == 0 and json.loads(out)["state"] == "warned"
    today = datetime.now(SH).date().isoformat()
    code, out, err = run(capsys, "performance", "remedy", "--date", today, "--note",
                         "controllers replaced")
    assert code == 0, err
    assert f"recorded for {today}: controllers replaced" in out
    code, out, _ = run(capsys, "performance", "--json")
    rec = json.loads(out)
    assert code == 0 and rec["state"] == "good" and rec["awaiting_first_response"]
    assert [r["note"] for r in rec["remedies"]] == ["controllers replaced"]


@pytest.mark.parametrize(("args", "code", "message"), [
    (("--date", "2026-13-01", "--note", "x"), 2, "--date must be YYYY-MM-DD"),
    (("--date", "2026-01-01", "--note", "   "), 2, "the note must say what was done"),
    (("--date", "2999-01-01", "--note", "x"), 2, "in the future"),
    (("--date", "2026-01-01", "--note", "x"), 1, "changes nothing: the VPP is good"),
])
def test_bad_remedies_are_refused(cli_env: Path, capsys: pytest.CaptureFixture[str],
                                  args: tuple[str, ...], code: int, message: str) -> None:
    upgrade(engine := make_engine(f"sqlite:///{cli_env}"))
    engine.dispose()
    got, _, err = run(capsys, "performance", "remedy", *args)
    assert got == code and message in err and "Traceback" not in err, err


def test_bad_day_is_refused(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    got, _, err = run(capsys, "performance", "--day", "yesterday")
    assert got == 2 and "--day must be YYYY-MM-DD" in err
