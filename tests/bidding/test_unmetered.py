"""Missing meter data for some devices: with ``unmetered="no_response"`` (the daemon's rule) the
metered devices are settled and a device-interval without data counts as no response (its own
baseline), recorded in the settlement; the default refuses; and when most of the event is
unmetered (the metering failed, not the devices) nothing is settled either way."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, delete

from bidding.settlement import (
    MIN_METERED_SHARE,
    SettlementError,
    fill_unmetered,
    require_metered_share,
)
from bidding.workflow import SettleOutcome, bid_event, read_meter_frame, settle_from_db
from forecasting.baselines import compute_baseline
from tests.bidding.fleet import add_event, make_fleet, simulate_event_day, simulate_history
from tests.bidding.test_workflow import CHINA, DAY, END, PROGRAMMES, START
from vpp.models import Device, TelemetryReading, table_of

TEL = table_of(TelemetryReading)
#: the fixture ``settled``: engine, the fleet, the event id and its first (fully metered) settlement
Settled = tuple[Engine, list[Device], int, SettleOutcome]


def _ids(devices: list[Device]) -> list[int]:
    """The devices' ids (make_fleet stores every one)."""
    out: list[int] = []
    for d in devices:
        assert d.id is not None, "device is stored"
        out.append(d.id)
    return out


def test_fill_unmetered_takes_the_baseline_where_the_meter_is_missing() -> None:
    meter = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, 6.0]])
    base = np.array([[5.0, 5.0, 5.0], [7.0, np.nan, 7.0]])
    filled, mask = fill_unmetered(meter, base)
    assert np.array_equal(filled, np.array([[1.0, 5.0, 3.0], [7.0, np.nan, 6.0]]),
                          equal_nan=True)
    assert mask.tolist() == [[False, True, False], [True, False, False]]
    assert np.isnan(meter[0, 1])  # the input is not changed
    assert require_metered_share(np.array([[False, True], [False, False]]), "x") == 0.75
    with pytest.raises(SettlementError, match="only 25% of the event's device-intervals"):
        require_metered_share(np.array([[True, True], [False, True]]), "x")
    assert MIN_METERED_SHARE == 0.5


@pytest.fixture
def settled(engine: Engine) -> Settled:
    devices = make_fleet(engine)
    simulate_history(engine, devices, DAY, days=12)
    ev = add_event(engine, START)
    _, offer = bid_event(engine, ev, PROGRAMMES, calendar=CHINA)
    declared = offer.owner_declared_kw()
    simulate_event_day(engine, devices, START, END, declared, {o: 0.9 for o in declared})
    full = settle_from_db(engine, ev, PROGRAMMES, 15, calendar=CHINA, unmetered="no_response")
    assert "unmetered" not in full.posted.settlement.detail  # nothing missing, nothing noted
    return engine, devices, ev, full


def test_a_silent_device_counts_as_no_response_and_the_others_settle(settled: Settled) -> None:
    engine, devices, ev, full = settled
    mall = [d for d in devices if d.name.startswith("chiller")]
    silent = mall[0]
    gap = (START + timedelta(minutes=30), START + timedelta(minutes=60))
    with engine.begin() as conn:
        conn.execute(delete(TEL).where(TEL.c.device_id == silent.id, TEL.c.ts >= gap[0],
                                       TEL.c.ts < gap[1]))
    with pytest.raises(SettlementError, match="missing meter data: 2 interval"):
        # the default (an operator) refuses
        settle_from_db(engine, ev, PROGRAMMES, 15, calendar=CHINA)
    out = settle_from_db(engine, ev, PROGRAMMES, 15, calendar=CHINA, unmetered="no_response")
    st = out.posted.settlement
    assert st.version == 2  # a corrected settlement of the same event
    assert st.detail["unmetered"]["rule"] == "no_response"
    assert st.detail["unmetered"]["device_event_intervals"] == {str(silent.id): 2}
    assert st.detail["unmetered"]["owner_event_intervals"] == {}
    before = {o.owner_id: o for o in full.result.owners}
    after = {o.owner_id: o for o in out.result.owners}
    for o, owner in after.items():  # the other owners are settled exactly as before
        if o != silent.owner_id:
            assert (owner.baseline_kwh, owner.metered_kwh, owner.response_kwh) == (
                before[o].baseline_kwh, before[o].metered_kwh, before[o].response_kwh)
    # the mall's metered load in the gap = its other chiller's meter + the silent chiller's
    # own baseline (same programme method over its own history): no response from it there
    frame = out.owner_frames[silent.owner_id]
    hist = read_meter_frame(engine, _ids(mall),
                            (pd.Timestamp(START).normalize() - pd.Timedelta(days=60)).to_pydatetime(),
                            END, 15)
    spec = out.programme.product(out.event.event_type, out.event.direction).baseline
    own = compute_baseline(hist[silent.id], START, END, spec, interval_minutes=15,
                           calendar=CHINA).baseline_kw
    for t in pd.date_range(gap[0], gap[1], freq="15min", inclusive="left"):
        assert frame.loc[t, "metered_kw"] == pytest.approx(
            hist.loc[t, mall[1].id] + own.loc[t], rel=1e-9)
    r = out.result
    assert sum(o.payout_fen for o in r.owners) + r.fee_fen == r.revenue_fen - r.penalty_fen


def test_most_of_the_event_unmetered_is_refused(settled: Settled) -> None:
    engine, devices, ev, _ = settled
    with engine.begin() as conn:
        conn.execute(delete(TEL).where(TEL.c.device_id.in_(_ids(devices[:3])),
                                       TEL.c.ts >= START, TEL.c.ts < END))
    with pytest.raises(SettlementError, match="were metered"):
        settle_from_db(engine, ev, PROGRAMMES, 15, calendar=CHINA, unmetered="no_response")


def test_unknown_rule_is_refused(settled: Settled, tmp_path: Path) -> None:
    engine, _, ev, _ = settled
    with pytest.raises(Exception, match="unmetered must be"):
        settle_from_db(engine, ev, PROGRAMMES, 15, calendar=CHINA, unmetered="zero")
