"""An event across midnight (23:00-01:00 local, Hainan's real-time product takes calls at any
hour) bid, metered and settled on both databases: every interval of the event is settled (the
window used to be cut at the start day's midnight, dropping the hour after it), the baselines
cover both local days, and the event's two local days are kept out of later baselines."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from bidding.synthetic import (
    INTERVAL_MINUTES,
    day_index,
    device_load_kw,
    dispatch_response,
    write_meter,
)
from bidding.workflow import other_event_days, settle_from_db
from tests.bidding.fleet import TZ, add_event, make_fleet, simulate_history
from vpp.bids import add_bid, kw_shares
from vpp.calendar import make_calendar
from vpp.db import session_scope
from vpp.models import Bid, Device

PROGRAMMES = Path(__file__).resolve().parents[2] / "config" / "programmes"
DAY = date(2026, 7, 15)  # a Wednesday
START = datetime(2026, 7, 15, 23, 0, tzinfo=TZ)
END = START + timedelta(hours=2)  # 01:00 on the 16th
CHINA = make_calendar("china")


def _meter_two_days(engine: Engine, devices: list[Device], declared: dict[int, float],
                    delivery: dict[int, float]) -> None:
    """The event's two local days: normal load plus the stand-in response (and rebound)."""
    idx = day_index(DAY, 2, INTERVAL_MINUTES)
    load = device_load_kw(devices, idx, seed=99)
    load += dispatch_response(devices, idx, START, END, declared, delivery)
    write_meter(engine, devices, idx, load)


def test_event_across_midnight_settles_every_interval(engine: Engine) -> None:
    devices = make_fleet(engine)
    simulate_history(engine, devices, DAY, days=12)
    ev = add_event(engine, START, hours=2.0, programme="hainan-2025", event_type="real_time")
    owners = sorted({d.owner_id for d in devices})
    declared = dict(zip(owners, (1500.0, 2500.0, 1000.0), strict=True))
    with session_scope(engine) as s:
        add_bid(s, Bid(event_id=ev, declared_kw=sum(declared.values()),
                       price_yuan_per_kwh=Decimal("2.0")), kw_shares(declared))
    _meter_two_days(engine, devices, declared, dict.fromkeys(declared, 1.0))
    out = settle_from_db(engine, ev, PROGRAMMES, 15, calendar=CHINA, rebound_hours=2.0)
    r = out.result
    frame = r.intervals
    # all eight event intervals settled, 23:00 to 00:45, and the rebound after 01:00
    event_starts = frame.index[frame["in_event"]]
    assert len(event_starts) == 8 and r.duration_h == 2.0
    assert event_starts[0] == pd.Timestamp(START) and event_starts[-1] == pd.Timestamp(
        datetime(2026, 7, 16, 0, 45, tzinfo=TZ))
    assert frame.index[-1] == pd.Timestamp(datetime(2026, 7, 16, 2, 45, tzinfo=TZ))
    # full delivery after midnight too: close to 100% of declared over the whole event
    assert 0.85 < r.performance_ratio < 1.15
    assert r.declared_kwh == sum(declared.values()) * 2
    assert r.revenue_fen > 0
    assert sum(r.payouts().values()) + r.fee_fen == r.net_fen
    # each owner's baseline spans the night, each baseline day's window running into the next
    # day (the day before the event's included: complete, its night is the event day's)
    for b in out.baselines.values():
        assert len(b.baseline_kw) == len(frame) and np.isfinite(b.baseline_kw).all()
        assert all(d < DAY for d in b.days_used) and len(b.days_used) == 4  # High 4 of 5
        assert "incomplete data" not in b.excluded.values()


def test_an_event_across_midnight_keeps_both_days_out_of_baselines(engine: Engine) -> None:
    ev = add_event(engine, START, hours=2.0, programme="hainan-2025", event_type="real_time")
    later = add_event(engine, START + timedelta(days=3), hours=1.0, external_id="E2")
    with session_scope(engine) as s:
        assert other_event_days(s, later, "Asia/Shanghai") == [DAY, DAY + timedelta(days=1)]
        assert other_event_days(s, ev, "Asia/Shanghai") == [DAY + timedelta(days=3)]
