"""bid_event's inputs: forecast quantiles and the scheduler's envelope when given (labelled
fallbacks otherwise), the cap at the grid's request, and the programme version picked by the
event's local date."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update
from sqlmodel import select

from bidding.workflow import OwnerForecast, bid_event, cap_offers, scheduler_envelopes
from tests.bidding.fleet import TZ, add_event, make_fleet, simulate_history
from tests.vpp.daemon.harness import PROGRAMME as TEST_PROGRAMME
from tests.vpp.daemon.harness import write_test_programme
from vpp.bids import owner_shares
from vpp.calendar import make_calendar
from vpp.db import session_scope
from vpp.models import Device, GridEvent

PROGRAMMES = Path(__file__).resolve().parents[2] / "config" / "programmes"
START = datetime(2026, 7, 15, 19, 0, tzinfo=TZ)
CHINA = make_calendar("china")  # the configured working days, passed explicitly (issue 17)


def _forecast(owner_ids, start, hours=2, load_kw=20_000.0, spread=0.05):
    index = pd.date_range(start, start + timedelta(hours=hours), freq="15min", inclusive="left")
    levels = [0.1, 0.5, 0.9]
    vals = np.vstack([np.full(len(index), load_kw * (1 + spread * k)) for k in (-1, 0, 1)])
    return OwnerForecast(levels=levels, index=index, values_kw={o: vals for o in owner_ids})


def _shares(engine, bid):
    """The stored bid's owner shares (owner id -> declared kW), from ``bid_owner_share``."""
    with session_scope(engine) as s:
        return {sh.owner_id: sh.declared_kw for sh in owner_shares(s, int(bid.id or 0))}


def _set_requested(engine, ev, kw):
    with session_scope(engine) as s:
        s.exec(update(GridEvent).where(GridEvent.id == ev).values(requested_kw=kw))


def _owners(engine):
    with session_scope(engine) as s:
        return sorted({d.owner_id for d in s.exec(select(Device)).all()})


@pytest.fixture
def fleet(sqlite_engine):
    make_fleet(sqlite_engine)
    return sqlite_engine


def test_forecast_and_envelope_are_used_and_labelled(fleet):
    owners = _owners(fleet)
    ev = add_event(fleet, START)
    _set_requested(fleet, ev, 1e9)
    fc = _forecast(owners[:-1], START)  # the last owner is not forecast: no history either
    env = {o: np.full(8, 6_000.0) for o in owners[:-1]}
    bid, offer = bid_event(fleet, ev, PROGRAMMES, calendar=CHINA, load_forecast=fc, envelope_kw=env)
    src = bid.detail["sources"]
    assert set(src) == {str(o) for o in owners[:-1]}  # no data at all for the last: left out
    assert all(v == {"quantiles": "forecast", "envelope": "scheduler envelope"}
               for v in src.values())
    assert all(0 < kw <= 6_000.0 for kw in offer.owner_declared_kw().values())
    assert bid.detail["capped_from_kw"] is None


def test_fallbacks_are_labelled(fleet):
    # no forecast, no envelope: empirical quantiles from meter history and device capability
    with session_scope(fleet) as s:
        devs = s.exec(select(Device)).all()
        s.expunge_all()
    simulate_history(fleet, devs, START.date(), days=3)
    ev = add_event(fleet, START)
    _set_requested(fleet, ev, 1e9)
    bid, _ = bid_event(fleet, ev, PROGRAMMES, calendar=CHINA, history_days=3)
    assert {v["quantiles"] for v in bid.detail["sources"].values()} == {"empirical (fallback)"}
    assert {v["envelope"] for v in bid.detail["sources"].values()} == {
        "device capability (fallback)"}


def test_the_daemons_fallback_bids_the_scheduler_envelope_over_empirical_quantiles(fleet, tmp_path):
    # what the daemon does with no fitted forecast: the scheduler's envelope is computed over
    # the owners' empirical load quantiles, so no owner declares more than it can shed from the
    # load it actually draws (the rated-capability fallback declared nameplate flexibility)
    with session_scope(fleet) as s:
        devs = s.exec(select(Device)).all()
        s.expunge_all()
    simulate_history(fleet, devs, START.date(), days=3)
    # Hunan's rules without the 10 MW minimum, so that the smaller (honest) offer is still made
    progs = write_test_programme(tmp_path).parent
    ev = add_event(fleet, START, programme=TEST_PROGRAMME)
    _set_requested(fleet, ev, 1e9)
    rated, _ = bid_event(fleet, ev, progs, calendar=CHINA, history_days=3)
    bid, _ = bid_event(fleet, ev, progs, calendar=CHINA, history_days=3, scheduler_envelope=True)
    src = bid.detail["sources"]
    assert "envelope_error" not in src
    assert {v["quantiles"] for v in src.values()} == {"empirical (fallback)"}
    assert {v["envelope"] for v in src.values()} == {"scheduler envelope"}
    by_rated = _shares(fleet, rated)
    for o, kw in _shares(fleet, bid).items():
        assert 0.0 <= kw <= by_rated[o] + 1e-6
    assert bid.declared_kw < rated.declared_kw


def test_declared_capacity_is_capped_at_the_request(fleet):
    owners = _owners(fleet)
    ev = add_event(fleet, START)
    fc = _forecast(owners, START)
    env = {o: np.full(8, 8_000.0) for o in owners}
    _set_requested(fleet, ev, 1e9)
    uncapped, _ = bid_event(fleet, ev, PROGRAMMES, calendar=CHINA, load_forecast=fc,
                            envelope_kw=env)
    request = 10_500.0
    assert uncapped.declared_kw > request
    _set_requested(fleet, ev, request)
    bid, offer = bid_event(fleet, ev, PROGRAMMES, calendar=CHINA, load_forecast=fc, envelope_kw=env)
    assert bid.declared_kw <= request and bid.declared_kw == pytest.approx(request, abs=0.01)
    assert bid.detail["capped_from_kw"] == pytest.approx(uncapped.declared_kw)
    shares = _shares(fleet, bid)
    assert shares == offer.owner_declared_kw()  # stored as the offer made them
    assert sum(shares.values()) <= request + 1e-6


def test_cap_offers_pro_rata():
    from bidding.offer import CapacityChoice, OwnerOffer

    ch = CapacityChoice(0, 0, 0, 0, "optimum")
    offers = [OwnerOffer(1, 300.0, ch), OwnerOffer(2, 100.0, ch)]
    out, was = cap_offers(offers, 200.0)
    assert was == 400.0 and [o.declared_kw for o in out] == [150.0, 50.0]
    assert cap_offers(offers, 1000.0) == (offers, None)


def test_programme_version_by_local_date(fleet):
    # 00:00-02:00 on 22 Jan 2026 in Zhuzhou is 21 Jan in UTC: the 2026 version is in force
    owners = _owners(fleet)
    start = datetime(2026, 1, 22, 0, 0, tzinfo=TZ)
    assert start.astimezone(pd.Timestamp(0, tz="UTC").tzinfo).date() == date(2026, 1, 21)
    ev = add_event(fleet, start)
    with session_scope(fleet) as s:
        s.exec(update(GridEvent).where(GridEvent.id == ev).values(direction="valley_filling"))
    _set_requested(fleet, ev, 1e9)
    fc = _forecast(owners, start, load_kw=5_000.0)
    env = {o: np.full(8, 8_000.0) for o in owners}
    bid, _ = bid_event(fleet, ev, PROGRAMMES, calendar=CHINA, load_forecast=fc, envelope_kw=env)
    assert bid.detail["programme_version"] == "2026-01-22"


def test_scheduler_envelopes_per_owner(fleet):
    owners = _owners(fleet)
    fc = _forecast(owners, START)
    with session_scope(fleet) as s:
        devs = s.exec(select(Device)).all()
        s.expunge_all()
    env = scheduler_envelopes(devs, fc, fc.index, 0.9, interval_minutes=15)
    assert set(env) == set(owners)
    assert all(v.shape == (8,) and (v >= 0).all() for v in env.values())
    assert any(v.sum() > 0 for v in env.values())


def test_scheduler_envelope_counts_batteries_only_with_a_known_soc(fleet):
    owners = _owners(fleet)
    fc = _forecast(owners, START)
    with session_scope(fleet) as s:
        devs = s.exec(select(Device)).all()
        s.expunge_all()
    batteries = [d for d in devs if d.kind == "battery"]
    assert batteries
    owner = batteries[0].owner_id
    without = scheduler_envelopes(devs, fc, fc.index, 0.9, interval_minutes=15)[owner]
    full = {int(d.id): 90.0 for d in batteries}
    with_soc = scheduler_envelopes(devs, fc, fc.index, 0.9, soc_pct=full, interval_minutes=15)[owner]
    assert with_soc.sum() > without.sum()
