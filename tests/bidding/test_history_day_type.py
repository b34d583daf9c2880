"""bid_event's history fallback (no load forecast) takes its load quantiles over history days of
the event day's type (Chinese working / non-working days), other events' days skipped.

An office-like owner draws 2,000 kW on working days and 200 kW on non-working days. Mixing the
two (the old rule) made the weekend's load the low quantile and the mean far below a working
day's: the confident offer for a Monday was 0 and the call was declined with "no owner can
offer any capacity" although the owner could shed its full 600 kW.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from bidding.synthetic import INTERVAL_MINUTES, TZ, add_event, day_index, write_meter
from bidding.workflow import MIN_SAME_TYPE_DAYS, bid_event, same_type_days
from forecasting.calendars import ChineseCalendar
from tests.vpp.daemon.harness import PROGRAMME, write_test_programme
from vpp import fleet
from vpp.db import session_scope
from vpp.models import Device

WORK_KW, OFF_KW, FLEX_KW = 2_000.0, 200.0, 600.0  # office load by day type; what it can shed


def _office(engine: Engine) -> Device:
    with session_scope(engine) as s:
        owner = fleet.add_owner(s, "Office tower")
        spec = {"host": "127.0.0.1", "port": 16100, "devices": [
            {"name": "ahu", "kind": "commercial_building", "rated_power_kw": 3000.0,
             "min_setpoint_kw": 0.0, "max_setpoint_kw": 3000.0, "unit_id": 1,
             "profile": "coolmaster-vrf", "params": {"max_shed_kw": FLEX_KW, "max_shed_minutes": 180}}]}
        dev = fleet.add_gateway(s, owner, "tower", spec).devices[0]
        s.flush()
        s.expunge_all()
    return dev


def _office_history(engine: Engine, dev: Device, event_day: date, days: int) -> None:
    idx = day_index(event_day - timedelta(days=days), days, INTERVAL_MINUTES)
    work = ChineseCalendar().is_workday(idx.date)
    rng = np.random.default_rng(3)
    load = np.where(work, WORK_KW, OFF_KW) * (1 + rng.normal(0, 0.01, len(idx)))
    write_meter(engine, [dev], idx, load[None, :])


@pytest.mark.parametrize("event_day, past_call, expect_used", [
    # a plain Monday: the working days of the last 10 (not the weekends), less Thursday 16
    # (an earlier call's day)
    (date(2026, 7, 20), date(2026, 7, 16), "5 working days"),
    # the Monday after National Day (1-7 Oct off): 8, 9 and 10 Oct (an adjusted working Saturday)
    (date(2026, 10, 12), date(2026, 10, 5), "3 working days"),
])
def test_office_monday_offer_uses_working_days_only(sqlite_engine, tmp_path: Path,
                                                    event_day: date, past_call: date,
                                                    expect_used: str):
    dev = _office(sqlite_engine)
    _office_history(sqlite_engine, dev, event_day, days=10)
    progs = write_test_programme(tmp_path).parent
    start = datetime.combine(event_day, datetime.min.time(), TZ) + timedelta(hours=19)
    # an earlier call's day is not a history day (as for the settlement baseline)
    past = add_event(sqlite_engine, start - timedelta(days=(event_day - past_call).days),
                     external_id="past", programme=PROGRAMME)
    ev = add_event(sqlite_engine, start, external_id="now", programme=PROGRAMME)
    assert past != ev
    env = {dev.owner_id: np.full(8, FLEX_KW)}  # 2 h of 15-min intervals
    bid, offer = bid_event(sqlite_engine, ev, progs, calendar=ChineseCalendar(), envelope_kw=env,
                           history_days=10)
    declared = offer.owner_declared_kw()[dev.owner_id]
    assert declared > 0
    assert declared == pytest.approx(FLEX_KW, rel=0.05)
    hist = bid.detail["sources"][str(dev.owner_id)]["history"]
    assert hist.startswith(expect_used)
    assert past_call.isoformat() not in hist
    if event_day.month == 10:
        assert "2026-10-10" in hist and "2026-10-07" not in hist


def test_too_few_days_of_the_event_type_use_all_days():
    cal = ChineseCalendar()
    saturday = date(2026, 7, 18)  # 10 days back: only the weekend of 11-12 Jul is non-working
    days = [saturday - timedelta(days=k) for k in range(1, 11)]
    use, rule = same_type_days(days, saturday, cal)
    assert MIN_SAME_TYPE_DAYS == 3 and use == list(range(10))
    assert "only 2 non-working days" in rule
    sunday = saturday + timedelta(days=1)
    use, _ = same_type_days([sunday - timedelta(days=k) for k in range(1, 11)], sunday, cal)
    assert len(use) == 3  # Saturday 18, Sunday 12, Saturday 11
    assert pd.Timestamp(sunday).day_name() == "Sunday"
