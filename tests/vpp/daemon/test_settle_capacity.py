"""The settle loop posts the previous month's capacity payment (SQLite and PostgreSQL): not on
the month's first day, not while one of its events may still settle, then once, through the
function ``vpp ledger capacity`` uses; a restart writes nothing more."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func
from sqlmodel import select

from bidding.capacity_ledger import owner_capacity_fen
from bidding.ledger import check_ledger, post_settlement
from bidding.rules import Band
from bidding.settlement import settle_event
from tests.vpp.daemon.harness import PROGRAMME, daemon_settings, seed
from vpp.daemon.dbexec import Db
from vpp.daemon.infra import Infra
from vpp.daemon.settle import Settler
from vpp.db import session_scope
from vpp.models import GridEvent, LedgerTransaction

TZ = ZoneInfo("Asia/Shanghai")


def _july_event(engine: Engine, owner: int, day: int, status: str) -> int:
    idx = pd.date_range(f"2026-07-{day:02d} 19:00", periods=4, freq="15min", tz=TZ)
    with session_scope(engine) as s:
        ev = GridEvent(external_id=f"jul-{day}", source="rest", event_type="real_time",
                       programme=PROGRAMME, start=idx[0].to_pydatetime(),
                       end=(idx[-1] + pd.Timedelta("15min")).to_pydatetime(), requested_kw=500,
                       status=status)
        s.add(ev)
        s.flush()
        event_id = int(ev.id or 0)
        if status == "settled":
            post_settlement(s, event_id, settle_event(
                index=idx, owner_ids=[owner], baseline_kw=np.full((1, 4), 900.0),
                metered_kw=np.full((1, 4), 400.0), owner_declared_kw=[500.0],
                price_yuan_per_kwh=Decimal("1.5"), band=Band(), fee_pct=Decimal(15),
                interval_minutes=15, export_counts=False))
    return event_id


def _capacity_txns(engine: Engine) -> int:
    with session_scope(engine) as s:
        return int(s.exec(select(func.count()).select_from(LedgerTransaction)
                          .where(LedgerTransaction.kind == "capacity_payment")).one())


async def test_settler_posts_last_month_once_it_has_settled(engine: Engine,
                                                            tmp_path: Path) -> None:
    owner = seed(engine).owner_id
    _july_event(engine, owner, 8, "settled")
    waiting = _july_event(engine, owner, 30, "completed")  # no meter data: it stays unsettled
    now = [datetime(2026, 8, 1, 12, 0, tzinfo=TZ)]
    infra = Infra.create(daemon_settings(tmp_path, str(engine.url)), Db(engine),
                         clock=lambda: now[0])
    try:
        settler = Settler(infra)
        await settler._capacity()  # the month's first day: not yet
        assert _capacity_txns(engine) == 0
        now[0] = datetime(2026, 8, 2, 9, 0, tzinfo=TZ)
        await settler._capacity()  # event 30 may still settle: not yet
        assert _capacity_txns(engine) == 0
        with session_scope(engine) as s:
            ev = s.get(GridEvent, waiting)
            assert ev is not None
            ev.status = "unsettled"  # the settler gave up on it (no meter data)
            s.add(ev)
        await settler._capacity()
        await settler._capacity()
        await Settler(infra)._capacity()  # a restart: checked once more, nothing written
    finally:
        infra.db.close()
    assert _capacity_txns(engine) == 1
    with session_scope(engine) as s:
        check_ledger(s)
        # 500 kW verified x 0.3 yuan = 150.00, fee 15% = 22.50, the owner's 127.50
        assert owner_capacity_fen(s, "2026-07") == {owner: 12_750}
