"""A simulated event end to end on both databases: bid, dispatch (stand-in response: the
scheduler is not wired in yet), meter, settle, re-settle after a meter correction, pay out; and
bad input (missing meter intervals, no baseline days, a bid over the cap) leaving the ledger
consistent."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import delete, func, update
from sqlmodel import select

from bidding.ledger import check_ledger, pay_owners
from bidding.settlement import SettlementError
from bidding.workflow import bid_event, settle_from_db
from tests.bidding.fleet import TZ, add_event, make_fleet, simulate_event_day, simulate_history
from vpp.bids import add_bid, kw_shares
from vpp.calendar import make_calendar
from vpp.db import session_scope
from vpp.errors import ValidationError
from vpp.models import Bid, LedgerTransaction, Settlement, TelemetryReading, table_of

TEL = table_of(TelemetryReading)

PROGRAMMES = Path(__file__).resolve().parents[2] / "config" / "programmes"
DAY = date(2026, 7, 15)  # a Wednesday
START = datetime(2026, 7, 15, 19, 0, tzinfo=TZ)
END = START + timedelta(hours=2)
CHINA = make_calendar("china")  # the configured working days, passed explicitly (issue 17)


def _count(engine, model) -> int:
    with session_scope(engine) as s:
        return s.exec(select(func.count()).select_from(model)).one()


@pytest.fixture
def fleet_engine(engine):
    devices = make_fleet(engine)
    simulate_history(engine, devices, DAY, days=12)
    return engine, devices


def test_bid_dispatch_meter_settle_pay(fleet_engine):
    engine, devices = fleet_engine
    ev = add_event(engine, START)
    bid, offer = bid_event(engine, ev, PROGRAMMES, calendar=CHINA)
    assert bid.declared_kw >= 10_000  # Hunan's minimum, met by the fleet
    assert bid.price_yuan_per_kwh == Decimal("1.5")
    declared = offer.owner_declared_kw()
    owners = sorted(declared)
    delivery = {owners[0]: 1.0, owners[1]: 1.0, owners[2]: 0.2}
    simulate_event_day(engine, devices, START, END, declared, delivery)

    out = settle_from_db(engine, ev, PROGRAMMES, 15, calendar=CHINA)
    r = out.result
    assert out.posted.created and out.posted.settlement.version == 1
    assert 0.5 <= r.performance_ratio <= 1.2 and r.revenue_fen > 0 and r.penalty_fen == 0
    assert sum(r.payouts().values()) + r.fee_fen == r.revenue_fen
    by_owner = {o.owner_id: o for o in r.owners}
    # the battery owner delivered 20% of its share: least response, smallest payout per kW
    assert by_owner[owners[2]].performance_ratio < 0.3 < by_owner[owners[0]].performance_ratio
    # ToU: shedding in the July critical peak lowers the owners' own bills
    assert all(o.tou_bill_change_fen < 0 for o in r.owners)
    assert all(b.days_used and len(b.days_used) == 5 for b in out.baselines.values())

    again = settle_from_db(engine, ev, PROGRAMMES, 15, calendar=CHINA)
    assert not again.posted.created and _count(engine, LedgerTransaction) == 1

    with session_scope(engine) as s:
        paid = pay_owners(s, ev)
        assert paid == r.payouts()
        check_ledger(s)

    # a corrected meter reading: the battery's meter under-read by 1 MW at 19:30
    t = START + timedelta(minutes=30)
    battery = next(d for d in devices if d.kind == "battery")
    with engine.begin() as conn:
        n = conn.execute(update(TEL).where(TEL.c.device_id == battery.id, TEL.c.ts == t)
                         .values(power_kw=TEL.c.power_kw - 1000)).rowcount
        assert n == 1
    fixed = settle_from_db(engine, ev, PROGRAMMES, 15, calendar=CHINA)
    assert fixed.posted.created and fixed.posted.reversed_version == 1
    assert fixed.result.response_kwh == pytest.approx(r.response_kwh + 250, abs=0.01)
    with session_scope(engine) as s:
        extra = pay_owners(s, ev)
        assert set(extra) == {battery.owner_id}  # only the battery owner gets more
        check_ledger(s)
        versions = [x.version for x in s.exec(select(Settlement).where(Settlement.event_id == ev))]
        assert sorted(versions) == [1, 2]


def test_missing_meter_intervals_are_an_error_and_nothing_is_posted(fleet_engine):
    engine, devices = fleet_engine
    ev = add_event(engine, START)
    _, offer = bid_event(engine, ev, PROGRAMMES, calendar=CHINA)
    simulate_event_day(engine, devices, START, END, offer.owner_declared_kw(), {})
    with engine.begin() as conn:
        conn.execute(delete(TEL).where(TEL.c.device_id == devices[0].id,
                                       TEL.c.ts >= START + timedelta(minutes=15),
                                       TEL.c.ts < START + timedelta(minutes=45)))
    with pytest.raises(SettlementError, match="missing meter data: 2 interval"):
        settle_from_db(engine, ev, PROGRAMMES, 15, calendar=CHINA)
    assert _count(engine, Settlement) == 0 and _count(engine, LedgerTransaction) == 0


def test_no_baseline_days_is_an_error(fleet_engine):
    engine, devices = fleet_engine
    late = START + timedelta(days=80)  # history ends 80 days earlier: beyond the lookback
    ev = add_event(engine, late, external_id="late")
    with session_scope(engine) as s:
        add_bid(s, Bid(event_id=ev, declared_kw=12_000, price_yuan_per_kwh=Decimal("1.5")),
                kw_shares({d.owner_id: 4000.0 for d in devices
                           if d.kind != "commercial_building"}))
    simulate_event_day(engine, devices, late, late + timedelta(hours=2), {}, {})
    with pytest.raises(SettlementError, match="no baseline days available"):
        settle_from_db(engine, ev, PROGRAMMES, 15, calendar=CHINA)
    assert _count(engine, LedgerTransaction) == 0


def test_bid_over_cap_and_rules(fleet_engine):
    engine, _ = fleet_engine
    ev = add_event(engine, START)
    with pytest.raises(ValidationError, match="over the cap 1.5 yuan/kWh of day_ahead/peak_shaving"):
        bid_event(engine, ev, PROGRAMMES, calendar=CHINA, price_yuan_per_kwh=Decimal("2.0"))
    short = add_event(engine, START, hours=0.5, external_id="short")
    with pytest.raises(ValidationError, match="below the minimum 1 h"):
        bid_event(engine, short, PROGRAMMES, calendar=CHINA)
    assert _count(engine, Bid) == 0



def test_baseline_falls_back_to_the_whole_lookback(sqlite_engine):
    # The first read covers 17 days; when an owner's recent days are all incomplete the
    # settlement reads the whole 45-day lookback and uses older days. (SQLite only: the reads
    # are the same SQL on both databases, covered by the tests above.)
    engine = sqlite_engine
    devices = make_fleet(engine)
    simulate_history(engine, devices, DAY, days=30)
    ev = add_event(engine, START)
    _, offer = bid_event(engine, ev, PROGRAMMES, calendar=CHINA)
    simulate_event_day(engine, devices, START, END, offer.owner_declared_kw(), {})
    furnace = next(d for d in devices if d.kind == "industrial_load")
    with engine.begin() as conn:
        midnight = START.replace(hour=0)
        conn.execute(delete(TEL).where(TEL.c.device_id == furnace.id,
                                       TEL.c.ts >= midnight - timedelta(days=18),
                                       TEL.c.ts < midnight))
    out = settle_from_db(engine, ev, PROGRAMMES, 15, calendar=CHINA)
    used = out.baselines[furnace.owner_id].days_used
    assert len(used) == 5 and max(used) < DAY - timedelta(days=17)
    assert max(out.baselines[devices[0].owner_id].days_used) == DAY - timedelta(days=1)


@pytest.mark.parametrize(("programme", "event_type"), [("hunan-2026", "real_time"),
                                                       ("hainan-2025", "day_ahead"),
                                                       ("hainan-2025", "real_time")])
def test_other_products_and_provinces_settle(sqlite_engine, programme, event_type):
    # The same code under different rules: day-of adjusted baselines, High 4 of 5, a 60-150%
    # band applied per interval. Nothing about a province is in the code.
    engine = sqlite_engine
    devices = make_fleet(engine)
    simulate_history(engine, devices, DAY, days=12)
    ev = add_event(engine, START, hours=1.0, programme=programme, event_type=event_type)
    _, offer = bid_event(engine, ev, PROGRAMMES, calendar=CHINA)
    simulate_event_day(engine, devices, START, START + timedelta(hours=1),
                       offer.owner_declared_kw(), {o: 0.8 for o in offer.owner_declared_kw()})
    out = settle_from_db(engine, ev, PROGRAMMES, 15, calendar=CHINA)
    spec = out.programme.product(event_type, "peak_shaving").baseline
    assert all(b.method == spec.method for b in out.baselines.values())
    assert all((b.adjustment_kw is not None) == spec.day_of_adjustment
               for b in out.baselines.values())
    assert out.result.band_basis == out.programme.band.basis
    assert out.result.revenue_fen > 0
    assert sum(out.result.payouts().values()) + out.result.fee_fen == out.result.net_fen
