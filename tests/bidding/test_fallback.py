"""The offer of a fleet without history (bidding.fallback): a declared share of what the devices
can hold for the whole event, with the rule and the reason, never nameplate.

Issue 23's first run: 100 simulated buildings (coolmaster-vrf, 600 kW, 220 kW sheddable each,
comfort 24-27 degC) declared 15 MW from nameplate; comfort protection took over within minutes
and the owner paid 2,375.98 yuan (on thermal parameters of a far smaller building). Sized to
their rating (vpp.device_kinds.design_thermal_params: R 0.0123 degC/kW, C 243 kWh/degC) each
holds 143 kW for an hour within 1.5 degC of drift (forecasting.flexibility.comfort_shed_kw,
COP 3), so 100 of them hold 14.3 MW and declare 5.7 MW.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine

from bidding.fallback import (
    HistoryGap,
    NoHistoryOffer,
    held_kw,
    history_gap,
    needed_days,
    no_history_offer,
)
from bidding.programme import Product, Programme, load_programme
from sim.fleet import SYNTHETIC_KINDS, SyntheticKind
from tests.conftest import REPO_ROOT
from vpp.calendar import make_calendar
from vpp.config import Settings
from vpp.errors import ValidationError

START = datetime(2026, 7, 15, 11, 0, tzinfo=UTC)  # 19:00 in Zhuzhou, summer
CHINA = make_calendar("china")  # the configured working days, passed explicitly (issue 17)
GAP = HistoryGap(5, 0, "working day", "event 1: no owner has a whole day of metered history")


@dataclass
class Dev:
    id: int | None  # as a stored Device row's (bidding.fallback.OwnedDevice)
    owner_id: int
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    rated_power_kw: float = 0.0
    min_setpoint_kw: float = 0.0
    max_setpoint_kw: float = 0.0


def _of(kind: SyntheticKind, i: int, owner: int = 1) -> Dev:
    return Dev(i, owner, kind.kind.value, kind.params, kind.rated_power_kw, kind.min_setpoint_kw,
               kind.max_setpoint_kw)


def _kind(profile: str) -> SyntheticKind:
    return next(k for k in SYNTHETIC_KINDS if k.profile == profile)


def _hunan() -> tuple[Programme, Product]:
    programme = load_programme("hunan-2026", REPO_ROOT / "config/programmes", START)
    return programme, programme.product("real_time", "peak_shaving")


def test_the_shipped_default_is_forty_percent() -> None:
    assert Settings().bidding.no_history_fraction_pct == 40.0


def test_each_kind_counts_what_it_holds_for_the_whole_event() -> None:
    building = _of(_kind("coolmaster-vrf"), 1)
    # nameplate shed 220 kW; the comfort band holds 1.5 / (3 R (1 - e^(-h/RC))) of it, R and C
    # sized to 600 kW (RC 3 h): 142.9 kW for 1 h, 83.2 kW for 2 h
    assert held_kw(building, 1.0, "summer") == pytest.approx(142.873, abs=1e-3)
    assert held_kw(building, 2.0, "summer") == pytest.approx(83.234, abs=1e-3)
    # spring: little cooling to shed
    assert held_kw(building, 1.0, "spring") == pytest.approx(0.3 * 142.873, abs=1e-3)
    # declared thermal parameters win: a small building's R 0.05 degC/kW, C 40 kWh/degC
    kind = _kind("coolmaster-vrf")
    small = _of(SyntheticKind(kind.profile, kind.kind, 600.0, 150.0, 600.0,
                              {**kind.params, "thermal_resistance_c_per_kw": 0.05,
                               "thermal_capacitance_kwh_per_c": 40.0}), 5)
    assert held_kw(small, 1.0, "summer") == pytest.approx(1.5 / (3 * 0.05 * (1 - np.exp(-0.5))))
    plant = _of(_kind("industrial-plc"), 2)
    assert held_kw(plant, 1.0, "summer") == 250.0
    # 60 minutes of curtailment in a 90-minute event: two thirds of it on the event basis
    assert held_kw(plant, 1.5, "summer") == pytest.approx(250.0 * 60 / 90)
    charger = _of(_kind("alfen-ng9xx"), 3)
    assert held_kw(charger, 1.0, "summer") == pytest.approx(11.0)  # half the posts in use
    battery = _of(_kind("sunspec"), 4)  # 10 kW, 20 kWh, 10-95 %
    assert held_kw(battery, 2.0, "summer", soc_pct=95.0) == pytest.approx(10 * 0.85 * 0.95 * 20 / 20)
    assert held_kw(battery, 2.0, "summer", soc_pct=12.0) == pytest.approx(20 * 0.02 * 0.95 / 2)
    assert held_kw(battery, 2.0, "summer") == pytest.approx(20 * 0.85 * 0.5 * 0.95 / 2)  # unknown


def test_a_hundred_buildings_declare_a_share_of_what_they_hold() -> None:
    programme, product = _hunan()
    devices = [_of(_kind("coolmaster-vrf"), i) for i in range(100)]
    with pytest.raises(ValidationError, match="below the programme minimum of 10,000 kW"):
        no_history_offer(devices, programme, product, start=START, season="summer",
                         end=START + timedelta(hours=1), requested_kw=15000.0,
                         price_yuan_per_kwh=Decimal("2.0"), fraction_pct=40.0, gap=GAP)
    small = programme.model_copy(update={"rules": programme.rules.model_copy(
        update={"min_declared_kw": 0.0})})
    offer = no_history_offer(devices, small, product, start=START, season="summer",
                             end=START + timedelta(hours=1), requested_kw=15000.0,
                             price_yuan_per_kwh=Decimal("2.0"), fraction_pct=40.0, gap=GAP)
    assert offer.declared_kw == pytest.approx(5714.917)  # not 15 MW
    d = offer.detail
    assert d["rule"] == ("no history: 5 working days needed, 0 held; "
                         "declared 40% of the dependable envelope")
    assert d["reason"] == GAP.reason
    assert d["envelope_kw"] == pytest.approx(14287.292)
    assert d["owners"] == [{"owner_id": 1, "declared_kw": 5714.917, "share": 1.0,
                            "envelope_kw": 14287.292, "limited_by": d["rule"]}]


def test_the_synthetic_fleet_of_a_first_run_clears_ten_megawatts_from_440_devices() -> None:
    """What `vpp sim gateways --devices N` must serve for a 1 h call on the shipped
    hunan-2026 (minimum 10 MW): gateways of 100 devices cycle through the kinds, the fifth
    (industrial loads, 250 kW each for up to 60 minutes) carries the offer with the third
    (buildings, 143 kW each held for the hour)."""
    programme, product = _hunan()

    def fleet(n: int) -> list[Dev]:
        return [_of(SYNTHETIC_KINDS[(i // 100) % len(SYNTHETIC_KINDS)], i + 1, owner=i // 100)
                for i in range(n)]

    def offer(n: int, owners_requested: float = 50_000.0) -> NoHistoryOffer:
        return no_history_offer(fleet(n), programme, product, start=START, season="summer",
                                end=START + timedelta(hours=1), requested_kw=owners_requested,
                                price_yuan_per_kwh=Decimal("2.0"), fraction_pct=40.0, gap=GAP)

    assert offer(440).declared_kw >= 10_000.0
    with pytest.raises(ValidationError, match="below the programme minimum"):
        offer(430)
    assert offer(500).declared_kw == pytest.approx(16_510.0, abs=1.0)
    assert offer(440, 12_000.0).detail["capped_from_kw"] is None
    capped = offer(700, 12_000.0)
    assert capped.declared_kw == pytest.approx(12_000.0)
    assert capped.detail["capped_from_kw"] > 12_000.0


def test_an_event_longer_than_a_shed_counts_the_shed_pro_rata() -> None:
    """The first run's OpenADR call, 12:41:30-13:41:30, is widened to the intervals covering it
    (12:30-13:45, 75 minutes): 100 industrial PLCs that curtail 250 kW for up to 60 minutes
    deliver 250 x 60/75 = 200 kW each on average over the event (staggered), which the
    event-basis band pays; before, they counted zero and the offer fell below 10 MW."""
    programme, product = _hunan()
    assert programme.band.basis == "event"
    plant = _kind("industrial-plc")
    plants = [_of(plant, i, owner=i % 4) for i in range(100)]
    offer = no_history_offer(plants, programme, product, start=START, season="summer",
                             end=START + timedelta(minutes=75), requested_kw=12_000.0,
                             price_yuan_per_kwh=Decimal("2.0"), fraction_pct=50.0, gap=GAP)
    assert offer.detail["envelope_kw"] == pytest.approx(100 * 200.0)
    assert offer.declared_kw == pytest.approx(10_000.0)
    assert held_kw(_of(plant, 1), 1.0, "summer") == 250.0  # an event it can hold whole: all of it
    building = _kind("coolmaster-vrf")
    short = _of(SyntheticKind(building.profile, building.kind, 600.0, 150.0, 600.0,
                              {**building.params, "max_shed_minutes": 30,
                               "thermal_capacitance_kwh_per_c": 10_000.0}), 2)
    assert held_kw(short, 2.0, "summer") == pytest.approx(220.0 * 30 / 120)


def test_the_history_the_programme_needs_and_the_days_held() -> None:
    _, product = _hunan()
    spec = product.baseline
    assert needed_days(spec, True) == 5 and needed_days(spec, False) == 3
    gap = history_gap(spec, False, START, START - timedelta(days=2, hours=3), "why")
    assert (gap.needed_days, gap.held_days, gap.day_type) == (3, 2, "non-working day")
    assert history_gap(spec, True, START, None, "why").held_days == 0


def test_one_or_two_days_of_history_are_not_enough_to_bid_from(sqlite_engine: Engine) -> None:
    """The second day of a new fleet: quantiles over one day have no spread, so the whole
    scheduler envelope would be declared as certain. Fewer than 3 whole days: no bid from
    history (NoHistoryError: the daemon bids the fallback above); 3 days: bid from them."""
    from sqlmodel import select

    from bidding.workflow import bid_event
    from tests.bidding.fleet import add_event, make_fleet, simulate_history
    from tests.bidding.test_workflow_inputs import PROGRAMMES, _set_requested
    from tests.bidding.test_workflow_inputs import START as EVENT_START
    from vpp.db import session_scope
    from vpp.errors import NoHistoryError
    from vpp.models import Device

    make_fleet(sqlite_engine)
    with session_scope(sqlite_engine) as s:
        devs = list(s.exec(select(Device)).all())
        s.expunge_all()
    simulate_history(sqlite_engine, devs, EVENT_START.date(), days=2)
    ev = add_event(sqlite_engine, EVENT_START)
    _set_requested(sqlite_engine, ev, 1e9)
    with pytest.raises(NoHistoryError, match="3 whole days of metered history"):
        bid_event(sqlite_engine, ev, PROGRAMMES, calendar=CHINA, history_days=3)
    simulate_history(sqlite_engine, devs, EVENT_START.date() - timedelta(days=2), days=1)
    bid, _ = bid_event(sqlite_engine, ev, PROGRAMMES, calendar=CHINA, history_days=3)
    assert {v["quantiles"] for v in bid.detail["sources"].values()} == {"empirical (fallback)"}
