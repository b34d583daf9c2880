"""``vpp ledger capacity`` on a real SQLite file: posts the month once, shows the split, the
monthly statement of ``vpp report`` carries it; bad months are refused with exit 2."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bidding.ledger import post_settlement
from bidding.rules import Band
from bidding.settlement import settle_event
from tests.conftest import run_cli as run
from vpp import fleet
from vpp.db import make_engine, session_scope, upgrade
from vpp.models import GridEvent


def _settled_month(db: Path) -> list[int]:
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    idx = pd.date_range("2025-07-15 19:00", periods=8, freq="15min", tz="Asia/Shanghai")
    with session_scope(engine) as s:
        owners = [int(fleet.add_owner(s, name).id or 0) for name in ("Mall", "Works")]
        ev = GridEvent(external_id="CAP-1", source="sim", event_type="day_ahead",
                       programme="hunan-2026", start=idx[0].to_pydatetime(),
                       end=(idx[-1] + pd.Timedelta("15min")).to_pydatetime(), requested_kw=1000)
        s.add(ev)
        s.flush()
        base = np.full((2, 8), 3000.0)
        post_settlement(s, int(ev.id or 0), settle_event(
            index=idx, owner_ids=owners, baseline_kw=base,
            metered_kw=base - np.array([[700.0], [300.0]]), owner_declared_kw=[600.0, 400.0],
            price_yuan_per_kwh=Decimal("1.5"), band=Band(), fee_pct=Decimal(15),
            interval_minutes=15, export_counts=False))
    engine.dispose()
    return owners


def test_ledger_capacity_posts_once(cli_env: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    owners = _settled_month(cli_env)
    code, out, err = run(capsys, "ledger", "capacity", "--month", "2025-07", "--dry-run")
    assert code == 0, err
    assert "not posted (--dry-run)" in out
    # 1,000 kW over 2 h verified; x 0.3 yuan/kW-month = 300.00; fee 15% = 45.00; 255.00 to
    # owners by 7:3 = 178.50 / 76.50
    code, out, err = run(capsys, "ledger", "capacity", "--month", "2025-07")
    assert code == 0, err
    assert "posted v1" in out and "1,000.0 kW" in out and "300.00 yuan" in out
    assert "178.50" in out and "76.50" in out
    code, out, _ = run(capsys, "ledger", "capacity", "--month", "2025-07", "--pay")
    flat = " ".join(out.split())
    assert code == 0 and "unchanged (v1 already" in out
    assert "paid owners 255.00 yuan" in flat and "received from the grid 300.00 yuan" in flat
    code, out, _ = run(capsys, "ledger", "capacity", "--month", "2025-07", "--pay")
    assert code == 0 and "paid owners 255.00 yuan" in " ".join(out.split())  # the same payout
    assert "received from the grid 0.00 yuan" in " ".join(out.split())
    code, _, err = run(capsys, "ledger", "capacity", "--month", "2025-07", "--pay", "--dry-run")
    assert code == 2 and "exclude each other" in err
    code, out, _ = run(capsys, "ledger", "capacity", "--month", "2025-08")
    assert code == 0 and "nothing to post" in out
    reports = tmp_path / "reports"
    code, _, err = run(capsys, "report", "--period", "2025-07", "--out", str(reports))
    assert code == 0, err
    page = (reports / "period-2025-07" / f"statement-2025-07-owner-{owners[0]}.html").read_text()
    assert "Monthly capacity payment" in page and "<b>178.50</b>" in page
    rows = (reports / "period-2025-07" / "period-2025-07-owners.csv").read_text().splitlines()
    assert rows[0].endswith(",capacity_fen") and rows[1].endswith(",17850")

    code, _, err = run(capsys, "ledger", "capacity", "--month", "July")
    assert code == 2 and "month must look like 2026-07" in err
    code, _, err = run(capsys, "ledger", "capacity", "--month", "2099-01")
    assert code == 2 and "has not ended" in err
    code, _, err = run(capsys, "ledger", "capacity", "--month", "2025-07", "--programme", "nope")
    assert code == 1 and "nope" in err
