"""The offer under the export rule (bidding.export_rule, bidding.core.make_offer): unless the
programme counts export, a peak-shaving owner's envelope is capped per interval by its site's
import at baseline (its site meter's history), or without a site meter by its own expected
load; the no-history offer by the same rule on the owner's last metered interval.

A storage owner: one 400 kW / 1,600 kWh battery at 90%, nothing else enrolled (its metered
load is 0 kW on every history day), behind a site that draws 300 kW in the event's hours.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from bidding.bid_inputs import BidDevice, BidInput, HistoryDay, NoHistoryPolicy, OwnerInput
from bidding.core import make_offer
from bidding.meter_frame import site_import_by_owner
from bidding.programme import Programme, load_programme
from forecasting.calendars import ChineseCalendar
from tests.conftest import REPO_ROOT
from vpp.errors import ValidationError

START = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)  # 20:00 in Zhuzhou, a Wednesday
BATTERY = BidDevice(1, 1, "battery", 400.0, -400.0, 400.0,
                    {"capacity_kwh": 1600.0, "soc_min_pct": 10.0, "soc_max_pct": 95.0},
                    soc_pct=90.0)


def _programme(export_counts: bool = False) -> Programme:
    shipped = load_programme("hunan-2026", REPO_ROOT / "config/programmes", START)
    return shipped.model_copy(update={"rules": shipped.rules.model_copy(update={
        "min_declared_kw": 0.0, "min_share_of_normal_load_pct": 0.0,
        "export_counts": export_counts})})


def _days(kw: float, n: int = 10) -> tuple[HistoryDay, ...]:
    return tuple(HistoryDay(date(2026, 7, 14) - timedelta(days=k), np.full(4, kw))
                 for k in range(n))


def _input(owner: OwnerInput, export_counts: bool = False) -> BidInput:
    prog = _programme(export_counts)
    product = prog.product("real_time", "peak_shaving")
    return BidInput(event_id=1, start=START, end=START + timedelta(hours=1),
                    direction="peak_shaving", requested_kw=1e6, programme=prog, product=product,
                    price_yuan_per_kwh=Decimal(product.price_cap_yuan_per_kwh or 0),
                    owners=(owner,), calendar=ChineseCalendar(), confidence=None,
                    envelope_kw={1: np.full(4, 400.0)},
                    no_history=NoHistoryPolicy(40.0, START - timedelta(hours=5)))


def test_the_offer_is_capped_at_the_sites_import():
    offer = make_offer(_input(OwnerInput(1, (BATTERY,), _days(0.0), _days(300.0))))
    assert 0 < offer.declared_kw <= 300.0 + 1e-6
    assert "capped at the site's import" in offer.extra["sources"]["1"]["envelope"]
    uncapped = make_offer(_input(OwnerInput(1, (BATTERY,), _days(0.0), _days(300.0)),
                                 export_counts=True))
    assert uncapped.declared_kw > 300.0  # export counts: the whole 400 kW envelope


def test_without_a_site_meter_a_battery_alone_offers_nothing():
    with pytest.raises(ValidationError, match="no owner can offer"):
        make_offer(_input(OwnerInput(1, (BATTERY,), _days(0.0))))


def test_without_history_the_last_site_reading_caps_the_offer():
    # no history days; the last metered interval: battery idle (0 kW), site importing 120 kW
    sited = make_offer(_input(OwnerInput(1, (BATTERY,), latest_kw=0.0, latest_site_kw=120.0)))
    assert sited.rule.startswith("no history")
    assert sited.owners[0].envelope_kw == pytest.approx(120.0)
    assert sited.declared_kw == pytest.approx(0.4 * 120.0)
    counted = make_offer(_input(OwnerInput(1, (BATTERY,), latest_kw=0.0, latest_site_kw=120.0),
                                export_counts=True))
    assert counted.owners[0].envelope_kw > 120.0
    with pytest.raises(ValidationError, match="no owner can offer"):
        make_offer(_input(OwnerInput(1, (BATTERY,), latest_kw=0.0)))  # no site meter


def test_an_owner_that_cannot_export_is_not_capped():
    """A plant whose lowest setpoint is 0 kW never meters below zero: the rule cannot bite it,
    so its envelope is the scheduler's (here given: 400 kW) even above its 300 kW load."""
    plant = BidDevice(2, 1, "industrial_load", 500.0, 0.0, 500.0,
                      {"max_curtail_kw": 400.0, "max_curtail_minutes": 120})
    offer = make_offer(_input(OwnerInput(1, (plant,), _days(300.0))))
    assert "capped" not in offer.extra["sources"]["1"]["envelope"]


def test_an_owners_metering_point_counts_its_other_devices_at_their_own_load():
    """One owner: a battery behind a metered site (host 2.5 kW, battery idle) and a 250 kW
    plant that reads no site meter; a second owner with only the plant. The owner is metered
    as one connection: the site meter stands in for the battery, the plant counts its own
    load (capping the offer at the battery's site alone cut the first run's 12 MW owner to
    240 kW); a device missing an interval leaves the owner unmetered there (NaN)."""
    site = np.array([[2.5, 2.5, np.nan], [np.nan, np.nan, np.nan], [np.nan, np.nan, np.nan]])
    own = np.array([[0.0, -5.0, 0.0], [250.0, 250.0, 250.0], [240.0, np.nan, 240.0]])
    got = site_import_by_owner(site, own, np.array([0, 0, 1]), 2)
    assert got[0, :2] == pytest.approx([252.5, 252.5])
    assert np.isnan(got[0, 2])  # the battery read its site meter but missed this interval
    assert got[1, 0] == pytest.approx(240.0) and np.isnan(got[1, 1])
    plant = BidDevice(2, 1, "industrial_load", 300.0, 50.0, 300.0, {
        "max_curtail_kw": 200.0, "max_curtail_minutes": 120, "makeup_fraction": 0.0})
    owner = OwnerInput(1, (BATTERY, plant), _days(250.0), _days(252.5))
    inp = _input(owner)
    offer = make_offer(replace(inp, envelope_kw={1: np.full(4, 600.0)}))
    assert 252.5 * 0.5 < offer.declared_kw <= 252.5 + 1e-6  # the site and the plant, not 2.5
