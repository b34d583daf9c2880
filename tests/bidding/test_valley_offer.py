"""The offer for a valley-filling call: the envelope of the fleet's RISE above its load (the
up-flexibility), the deliverable quantiles with the sign reversed, the programme's
valley-filling product (its price cap), and the no-history rule's rise: never the fleet's shed
capability."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from bidding.bid_inputs import BidDevice, BidInput, HistoryDay, NoHistoryPolicy, OwnerInput
from bidding.core import direction_sign, make_offer
from bidding.fallback import held_kw, raise_kw
from bidding.programme import load_programme
from forecasting.calendars import ChineseCalendar
from tests.conftest import REPO_ROOT
from vpp.errors import ValidationError

START = datetime(2026, 7, 15, 3, 0, tzinfo=UTC)  # 11:00 in Zhuzhou: the midday valley window
BATTERY = {"capacity_kwh": 200.0, "soc_min_pct": 10.0, "soc_max_pct": 90.0}
PLANT = {"max_curtail_kw": 300.0, "max_curtail_minutes": 240}


def _devices(owner: int = 1, soc: float | None = 50.0) -> tuple[BidDevice, ...]:
    return (
        BidDevice(1, owner, "battery", 100.0, -100.0, 100.0, BATTERY, soc_pct=soc),
        BidDevice(2, owner, "industrial_load", 1000.0, 300.0, 1000.0, PLANT),
    )


def _input(devices: tuple[BidDevice, ...], history: tuple[HistoryDay, ...] = (),
           requested_kw: float = 1e6, scheduler: bool = True) -> BidInput:
    shipped = load_programme("hunan-2026", REPO_ROOT / "config/programmes", START)
    # without its 10 MW and 10 %-of-load minimums (a test fleet of two devices)
    programme = shipped.model_copy(update={"rules": shipped.rules.model_copy(update={
        "min_declared_kw": 0.0, "min_share_of_normal_load_pct": 0.0})})
    product = programme.product("real_time", "valley_filling")
    return BidInput(event_id=1, start=START, end=START + timedelta(hours=1),
                    direction="valley_filling", requested_kw=requested_kw,
                    programme=programme, product=product,
                    price_yuan_per_kwh=Decimal(product.price_cap_yuan_per_kwh or 0),
                    owners=(OwnerInput(1, devices, history),), calendar=ChineseCalendar(),
                    scheduler_envelope=scheduler,
                    no_history=NoHistoryPolicy(40.0, START - timedelta(hours=5)))


def _history(load_kw: float = 800.0, days: int = 10) -> tuple[HistoryDay, ...]:
    rng = np.random.default_rng(3)
    return tuple(HistoryDay(date(2026, 7, 14) - timedelta(days=k),
                            load_kw + rng.normal(0.0, 5.0, 4)) for k in range(days))


def test_the_rise_a_battery_can_hold():
    bat = BidDevice(1, 1, "battery", 100.0, -100.0, 100.0, BATTERY)
    # 40 % of 200 kWh below the 90 % maximum, at 95 % charge efficiency, over 2 h: 42.1 kW
    assert raise_kw(bat, 2.0, soc_pct=50.0) == pytest.approx(80.0 / 0.95 / 2)
    assert raise_kw(bat, 0.5, soc_pct=50.0) == 100.0  # the setpoint limit
    assert raise_kw(bat, 1.0, soc_pct=95.0) == 0.0  # full
    assert raise_kw(bat, 1.0) == pytest.approx(200 * 0.8 * 0.5 / 0.95)  # unknown: half empty
    plant = BidDevice(2, 1, "industrial_load", 1000.0, 300.0, 1000.0, PLANT)
    assert raise_kw(plant, 1.0) == 0.0  # declares a curtailment, no rise
    assert held_kw(plant, 1.0, "summer", direction="valley_filling") == 0.0
    assert held_kw(plant, 1.0, "summer") == 300.0  # its shed, for peak shaving


def test_the_offer_is_the_rise_not_the_shed():
    offer = make_offer(_input(_devices(), _history()))
    assert offer.direction == "valley_filling"
    assert offer.price_yuan_per_kwh == Decimal("0.4")  # the valley-filling product's cap
    # the battery's 80 kWh of room over the hour, at most: the plant's 300 kW shed never counts
    assert 0 < offer.declared_kw <= 80.0 / 0.95 + 1e-2
    src = offer.extra["sources"]["1"]
    assert src["envelope"] == "scheduler envelope"


def test_without_the_scheduler_the_fallback_is_the_rise_too():
    offer = make_offer(_input(_devices(), _history(), scheduler=False))
    assert offer.extra["sources"]["1"]["envelope"] == "device rise capability (fallback)"
    assert 0 < offer.declared_kw <= 80.0 / 0.95 + 1e-2


def test_a_full_battery_and_a_plant_offer_nothing():
    with pytest.raises(ValidationError, match="no owner can offer any capacity"):
        make_offer(_input(_devices(soc=90.0), _history()))


def test_no_history_declares_a_share_of_the_rise():
    offer = make_offer(_input(_devices(soc=50.0)))
    assert offer.rule.startswith("no history")
    assert offer.declared_kw == pytest.approx(0.4 * 80.0 / 0.95, abs=1e-3)
    assert offer.extra["envelope_by_kind_kw"]["industrial_load"] == 0.0


def test_direction_sign():
    assert direction_sign("peak_shaving") == 1.0
    assert direction_sign("valley_filling") == -1.0
    with pytest.raises(ValidationError, match="unknown direction"):
        direction_sign("sideways")
