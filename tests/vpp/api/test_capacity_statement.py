"""The owner's monthly statement carries the month's capacity payment once it is posted (SQLite
and PostgreSQL): ``GET /api/v1/statement`` answers ``capacity_fen`` and the page shows it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from bidding.capacity_ledger import compute_month, post_capacity_payment
from bidding.ledger import post_settlement
from bidding.money import fmt_yuan
from bidding.rules import Band
from bidding.settlement import settle_event
from tests.vpp.api.conftest import Api
from vpp.db import session_scope
from vpp.models import GridEvent
from vpp.packaged import programmes_dir

TZ = "Asia/Shanghai"


async def _statement(api: Api, token: str) -> dict[str, Any]:
    async with api.http.get(api.url + "/api/v1/statement?period=2026-07",
                            headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200
        body: dict[str, Any] = await r.json()
        return body


async def test_statement_shows_the_capacity_payment(api_both: Api) -> None:
    api = api_both
    owners = [api.tokens.owner_id, api.tokens.other_owner_id]
    idx = pd.date_range("2026-07-08 19:00", periods=4, freq="15min", tz=TZ)
    with session_scope(api.engine) as s:
        ev = GridEvent(external_id="cap-api", source="sim", event_type="day_ahead",
                       programme="hunan-2026", start=idx[0].to_pydatetime(),
                       end=(idx[-1] + pd.Timedelta("15min")).to_pydatetime(), requested_kw=900)
        s.add(ev)
        s.flush()
        base = np.full((2, 4), 2000.0)
        post_settlement(s, int(ev.id or 0), settle_event(
            index=idx, owner_ids=owners, baseline_kw=base,
            metered_kw=base - np.array([[600.0], [300.0]]), owner_declared_kw=[600.0, 300.0],
            price_yuan_per_kwh=Decimal("1.5"), band=Band(), fee_pct=Decimal(15),
            interval_minutes=15, export_counts=False))
    before = await _statement(api, api.tokens.owner)
    assert before["capacity_fen"] is None and "not posted yet" in before["html"]
    with session_scope(api.engine) as s:
        payment = compute_month(s, "hunan-2026", programmes_dir(), "2026-07", 15.0)
        post_capacity_payment(s, payment, now=datetime(2026, 8, 2, tzinfo=ZoneInfo(TZ)), tz=TZ)
    # 900 kW x 0.3 yuan = 270.00, fee 40.50, owners 229.50 split 2:1 = 153.00 / 76.50
    mine = await _statement(api, api.tokens.owner)
    assert mine["capacity_fen"] == 15_300 and mine["events"] == 1
    assert f"<b>{fmt_yuan(15_300)}</b>" in mine["html"]
    theirs = await _statement(api, api.tokens.other_owner)
    assert theirs["capacity_fen"] == 7_650
    assert mine["capacity_fen"] + theirs["capacity_fen"] + payment.fee_fen == payment.total_fen
