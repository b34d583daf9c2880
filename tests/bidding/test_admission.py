"""The admission check (bidding.admission): hand-computed fleets against the hunan-2026 rules,
each rule passed at its edge and failed just past it, a battery-only fleet, the VPP types.

The reference window is 18:00-21:00 on Wednesday 2026-07-15 (12 intervals of 15 minutes); the
history is the same clock window on earlier days. Batteries run from 0 to 100% at efficiency 1,
so their energy is plain arithmetic: 8,000 kWh at 50% holds 4,000 kW down and 4,000 kW up for
an hour, 4,000 / H kW for H hours beyond.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bidding.admission import (
    AdmissionInput,
    _count,
    assess_admission,
    capacity_kw,
    longest_hold,
    owner_load_view,
)
from bidding.bid_inputs import BidDevice, HistoryDay, OwnerInput
from bidding.core import scheduler_envelopes
from bidding.programme import Programme, load_programme
from forecasting.calendars import ChineseCalendar
from forecasting.owners import OwnerForecast
from vpp.domain.admission import AdmissionResult, RuleCheck, RuleStatus, VppType
from vpp.errors import ValidationError
from vpp.packaged import programmes_dir
from vpp.timeutil import zone

TZ = zone("Asia/Shanghai")
DAY = date(2026, 7, 15)  # a Wednesday
START = datetime(2026, 7, 15, 18, 0, tzinfo=TZ)
WINDOW = pd.date_range(START, START + timedelta(hours=3), freq="15min", inclusive="left")
WORKDAYS = [date(2026, 7, d) for d in (8, 9, 10, 13, 14)]
WEEKEND = [date(2026, 7, d) for d in (11, 12)]


def hunan(on: date = DAY, **rules: float) -> Programme:
    p = load_programme("hunan-2026", programmes_dir(), on)
    products = rules.pop("min_duration_hours", None)
    r = p.rules.model_copy(update=dict(rules))
    if products is not None:
        r = r.model_copy(update={"products": [x.model_copy(update={"min_duration_hours": products})
                                              for x in r.products]})
    return p.model_copy(update={"rules": r})


def battery(device_id: int, owner_id: int, soc_pct: float | None = 50.0,
            eligible: bool = True) -> BidDevice:
    return BidDevice(device_id, owner_id, "battery", 4000.0, -4000.0, 4000.0,
                     {"capacity_kwh": 8000.0, "soc_min_pct": 0.0, "soc_max_pct": 100.0,
                      "charge_efficiency": 1.0, "discharge_efficiency": 1.0},
                     soc_pct=soc_pct, eligible=eligible)


def furnace(device_id: int, owner_id: int) -> BidDevice:
    """6,000 kW for 2 h (12,000 kWh), no make-up: no rise."""
    return BidDevice(device_id, owner_id, "industrial_load", 10000.0, 0.0, 10000.0,
                     {"max_curtail_kw": 6000.0, "max_curtail_minutes": 120,
                      "makeup_fraction": 0.0})


def building(device_id: int, owner_id: int) -> BidDevice:
    return BidDevice(device_id, owner_id, "commercial_building", 3000.0, 0.0, 3000.0,
                     {"max_shed_kw": 1000.0, "max_shed_minutes": 180})


def days(kw: float, which: list[date]) -> tuple[HistoryDay, ...]:
    return tuple(HistoryDay(d, np.full(len(WINDOW), kw)) for d in sorted(which, reverse=True))


def check(owners: list[OwnerInput], programme: Programme | None = None,
          vpp_type: VppType = VppType.LOAD) -> AdmissionResult:
    return assess_admission(AdmissionInput(programme=programme or hunan(), vpp_type=vpp_type,
                                           window=WINDOW, owners=tuple(owners),
                                           calendar=ChineseCalendar()))


def rule(res: AdmissionResult, name: str) -> RuleCheck:
    return next(r for r in res.rules if r.name == name)


def plant(**kw: Any) -> AdmissionResult:
    """A works at 8,000 kW on working days (4,000 kW at weekends) with a 6 MW / 2 h
    furnace, and a storage owner (no enrolled load) with a 4 MW / 8 MWh battery at 50%, behind
    a site meter that reads 6,000 kW of host load (the export rule does not bind)."""
    return check([
        OwnerInput(1, (furnace(1, 1),), days(8000.0, WORKDAYS) + days(4000.0, WEEKEND)),
        OwnerInput(2, (battery(2, 2),), days(0.0, WORKDAYS), days(6000.0, WORKDAYS)),
    ], **kw)


def test_a_battery_counts_down_only_to_its_site_load_unless_export_counts() -> None:
    """The export rule as the offer applies it (bidding.export_rule): without a site meter the
    storage owner's reduction is capped at its own load (0 kW: nothing down); behind a site
    drawing 1,500 kW, at that; when the programme counts export, all 4,000 kW."""
    works = OwnerInput(1, (furnace(1, 1),), days(8000.0, WORKDAYS))
    bare = OwnerInput(2, (battery(2, 2),), days(0.0, WORKDAYS))
    sited = OwnerInput(2, (battery(2, 2),), days(0.0, WORKDAYS), days(1500.0, WORKDAYS))
    assert check([works, bare]).down_kw == 6000.0
    assert check([works, sited]).down_kw == 7500.0
    prog = hunan()
    counts = prog.model_copy(update={"rules": prog.rules.model_copy(
        update={"export_counts": True})})
    assert check([works, bare], programme=counts).down_kw == 10000.0
    assert check([works, bare]).up_kw == 4000.0  # valley filling: no cap


def test_measures_of_a_plant_by_hand() -> None:
    res = plant()
    # one interval: furnace 6,000 down; battery 4,000 down and 4,000 up
    assert (res.down_kw, res.up_kw, res.adjustable_kw) == (10000.0, 4000.0, 14000.0)
    # 2 h: 6,000 + 2 x 4,000/2 = 10,000 (the minimum, held); 2.25 h: 5,333 + 2 x 1,778 < 10,000
    assert res.duration_h == 2.0 and not res.duration_capped and res.duration_at_kw == 10000.0
    # the working days only (the weekend's 4,000 kW is another day type): 8,000 + 0
    assert res.normal_load_kw == 8000.0 and res.share_pct == 175.0
    works = next(o for o in res.owners if o.owner_id == 1)
    assert "5 working days" in works.basis and "2026-07-11" not in works.basis
    assert [r.status for r in res.rules] == [RuleStatus.PASS] * 3 and res.admitted
    assert [r.margin for r in res.rules] == [4000.0, 1.0, 165.0]
    cap = rule(res, "adjustable_capacity")
    assert cap.key == "min_declared_kw" and cap.verified and "VERIFIED" in cap.source
    assert "湖南省虚拟电厂管理工作细则" in cap.source


@pytest.mark.parametrize(("name", "edge", "past"), [
    ("adjustable_capacity", {"min_declared_kw": 14000.0}, {"min_declared_kw": 14000.5}),
    ("continuous_response", {"min_duration_hours": 2.0}, {"min_duration_hours": 2.25}),
    ("share_of_normal_load", {"min_share_of_normal_load_pct": 175.0},
     {"min_share_of_normal_load_pct": 175.5}),
])
def test_each_rule_passes_at_its_edge_and_fails_past_it(name: str, edge: dict[str, float],
                                                         past: dict[str, float]) -> None:
    at = rule(plant(programme=hunan(DAY, **edge)), name)
    assert at.status is RuleStatus.PASS and at.margin == 0.0
    over = plant(programme=hunan(DAY, **past))
    failed = rule(over, name)
    assert failed.status is RuleStatus.FAIL and not over.admitted
    assert failed.margin == pytest.approx(-(next(iter(past.values()))
                                            - next(iter(edge.values()))))


def test_battery_only_load_vpp_without_history() -> None:
    """No history: the battery counts what it holds without it (held_kw): 4,000 down and
    4,000 up for one interval, 4,000 each for an hour; the share cannot be checked."""
    res = check([OwnerInput(7, (battery(1, 7),))])
    assert (res.down_kw, res.up_kw) == (4000.0, 4000.0)
    assert "held_kw" in res.capacity_basis
    cap, dur, share = res.rules
    assert cap.status is RuleStatus.FAIL and cap.margin == -2000.0
    assert dur.status is RuleStatus.FAIL and dur.measured == 0.0  # never holds 10 MW
    assert share.status is RuleStatus.UNKNOWN and "owner(s) [7]" in share.note
    assert not res.admitted


def test_battery_fleet_as_a_generation_vpp() -> None:
    """Two batteries, and a building the generation-type VPP does not count: 16,000 kW; held
    1.5 h at 10 MW (2 x 2 x 4,000/1.5 = 10,667), not 1.75 h (9,143); no share rule."""
    res = check([OwnerInput(1, (battery(1, 1), battery(2, 1), building(3, 1)),
                            days(3000.0, WORKDAYS))], vpp_type=VppType.GENERATION)
    assert res.adjustable_kw == 16000.0 and res.duration_h == 1.5
    assert res.devices_counted == 2
    assert res.devices_excluded == {"a load in a generation-type VPP": 1}
    share = rule(res, "share_of_normal_load")
    assert share.status is RuleStatus.NOT_APPLICABLE and share.applies_to == [
        VppType.LOAD, VppType.MIXED]
    assert res.normal_load_kw is None and res.admitted


def test_a_mixed_vpp_counts_the_building_and_ineligible_devices_are_not_counted() -> None:
    owners = [OwnerInput(1, (battery(1, 1), battery(2, 1, eligible=False), building(3, 1)),
                         days(3000.0, WORKDAYS), days(9000.0, WORKDAYS))]  # site: 9,000 kW
    res = check(owners, vpp_type=VppType.MIXED)
    assert res.devices_counted == 2
    assert res.devices_excluded == {"cannot take part (inactive or opted out)": 1}
    # the owner's 3,000 kW is split over all three devices by rated power (as for an offer;
    # the excluded battery is pinned at its share): the counted battery's share, 4,000 / 11,000
    # of it, is its baseline, so it sheds that plus its 4,000 discharge and rises 4,000 minus
    # it; the building sheds its whole share, 3,000 / 11,000 of it (818 kW, below its 1,000)
    b = 3000.0 * 4000 / 11000
    assert res.down_kw == pytest.approx(3000.0 * 3000 / 11000 + b + 4000, abs=1e-3)
    assert res.up_kw == pytest.approx(4000 - b, abs=1e-3)
    assert res.normal_load_kw == 3000.0


def test_the_envelope_is_the_bidders_over_the_whole_window() -> None:
    """Held for the whole window, the fleet's envelope is what bidding.core.scheduler_envelopes
    gives an offer over that window (the smallest interval of the owners' sum)."""
    owners = [OwnerInput(1, (furnace(1, 1), building(3, 1)),
                         tuple(HistoryDay(d, np.linspace(7000.0, 9000.0, len(WINDOW)) + 100 * k)
                               for k, d in enumerate(WORKDAYS))),
              # behind a site drawing 9,000 kW: the export rule does not bind
              OwnerInput(2, (battery(2, 2, soc_pct=70.0),), days(500.0, WORKDAYS),
                         days(9000.0, WORKDAYS))]
    inp = AdmissionInput(programme=hunan(), vpp_type=VppType.LOAD, window=WINDOW,
                         owners=tuple(owners), calendar=ChineseCalendar())
    views = {o.owner_id: owner_load_view(inp, o) for o in owners}
    fc = OwnerForecast(list(inp.levels), WINDOW,
                       {o: v.quantiles_kw for o, v in views.items() if v is not None})
    fleet = _count(inp, views)
    for direction in ("peak_shaving", "valley_filling"):
        env = scheduler_envelopes([d for o in owners for d in o.devices], fc, WINDOW,
                                  interval_minutes=15, direction=direction)
        bidder = float(np.min(np.sum(list(env.values()), axis=0)))
        assert capacity_kw(inp, fleet, direction, len(WINDOW)) == pytest.approx(bidder)
        assert bidder > 0


def test_an_unknown_state_of_charge_holds_nothing_in_the_envelope() -> None:
    res = check([OwnerInput(2, (battery(2, 2, soc_pct=None),), days(0.0, WORKDAYS))])
    assert (res.down_kw, res.up_kw) == (0.0, 0.0)


def test_unverified_figures_are_marked() -> None:
    """The 2025 trial version lists every figure as unverified ("*")."""
    res = check([OwnerInput(2, (battery(2, 2),), days(0.0, WORKDAYS))],
                programme=hunan(date(2025, 7, 16)))
    assert res.programme_version == date(2025, 3, 14)
    assert not any(r.verified for r in res.rules)
    assert all("(unverified)" in r.source for r in res.rules)


def test_no_minimum_holds_for_the_whole_window() -> None:
    res = plant(programme=hunan(min_declared_kw=0.0))
    assert res.duration_h == 3.0 and res.duration_capped


def test_longest_hold_bisects() -> None:
    assert longest_hold(12, lambda h: h <= 7) == 7
    assert longest_hold(12, lambda h: False) == 0
    assert longest_hold(12, lambda h: True) == 12


def test_the_window_must_be_on_the_programme_interval() -> None:
    odd = pd.date_range(START, periods=3, freq="10min")
    with pytest.raises(ValidationError, match="15 steps|0:15:00"):
        AdmissionInput(programme=hunan(), vpp_type=VppType.LOAD, window=odd, owners=(),
                       calendar=ChineseCalendar())
