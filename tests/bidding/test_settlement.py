"""Pure settlement: hand-computed band edges, owners' split, ToU bill change, bad input.

Hand computations (one owner, declared 1,000 kW for 1 h = 1,000 kWh, price 1.5 yuan/kWh, band
50%-120%, penalty (declared x 50% - actual) x price x 0.5, aggregator fee 15%):

| delivered | paid kWh | revenue | penalty | fee | owner payout |
|---|---|---|---|---|---|
| 49% (490 kWh) | 0 | 0 | (500-490) x 1.5 x 0.5 = 7.50 | 0 | -7.50 |
| 50% (500 kWh) | 500 | 750.00 | 0 | 112.50 | 637.50 |
| 100% | 1,000 | 1,500.00 | 0 | 225.00 | 1,275.00 |
| 120% | 1,200 | 1,800.00 | 0 | 270.00 | 1,530.00 |
| 150% | 1,200 (capped) | 1,800.00 | 0 | 270.00 | 1,530.00 |
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bidding.rules import Band
from bidding.settlement import SettlementError, check_balance, settle_event
from bidding.tariff import parse_tariff
from tests.bidding.conftest import hunan_like_tariff

IDX = pd.date_range("2025-07-15 19:00", periods=4, freq="15min", tz="Asia/Shanghai")
PRICE = Decimal("1.5")


def _one_owner(ratio: float, band: Band, **kw):
    baseline = np.full((1, 4), 3000.0)
    metered = baseline - ratio * 1000.0
    return settle_event(
        index=IDX, owner_ids=[7], baseline_kw=baseline, metered_kw=metered,
        owner_declared_kw=[1000.0], price_yuan_per_kwh=PRICE, band=band, fee_pct=Decimal(15),
        interval_minutes=15, export_counts=True, **kw,
    )


@pytest.mark.parametrize(
    ("ratio", "paid_kwh", "revenue", "penalty", "fee", "payout"),
    [
        (0.49, 0.0, 0, 750, 0, -750),
        (0.50, 500.0, 75_000, 0, 11_250, 63_750),
        (1.00, 1000.0, 150_000, 0, 22_500, 127_500),
        (1.20, 1200.0, 180_000, 0, 27_000, 153_000),
        (1.50, 1200.0, 180_000, 0, 27_000, 153_000),
    ],
)
def test_band_edges_hand_computed(band, ratio, paid_kwh, revenue, penalty, fee, payout):
    r = _one_owner(ratio, band)
    assert r.response_kwh == pytest.approx(1000 * ratio)
    assert r.performance_ratio == pytest.approx(ratio)
    assert r.paid_kwh == pytest.approx(paid_kwh)
    assert (r.revenue_fen, r.penalty_fen, r.fee_fen) == (revenue, penalty, fee)
    assert r.owners[0].payout_fen == payout
    assert r.net_fen == revenue - penalty == payout + fee


def test_two_owners_split_by_verified_contribution(band):
    # A declared 600 kW delivers 700 kW; B declared 400 kW delivers 100 kW: VPP 800/1000 = 80%.
    base = np.array([[2000.0] * 4, [1000.0] * 4])
    meter = base - np.array([[700.0], [100.0]])
    r = settle_event(index=IDX, owner_ids=[1, 2], baseline_kw=base, metered_kw=meter,
                     owner_declared_kw=[600, 400], price_yuan_per_kwh=PRICE, band=band,
                     fee_pct=15, interval_minutes=15, export_counts=True)
    # 800 kWh x 1.5 = 1,200.00 yuan; fee 180.00; 1,020.00 split 7:1 = 892.50 / 127.50
    assert (r.revenue_fen, r.fee_fen, r.penalty_fen) == (120_000, 18_000, 0)
    assert [o.payout_fen for o in r.owners] == [89_250, 12_750]
    check_balance(r)


def test_under_delivering_owner_bears_the_penalty(band):
    # A declared 600 delivers 300 (exactly 50% of its share); B declared 400 delivers 100.
    # VPP 400/1000 = 40% < 50%: penalty (500 - 400) x 1.5 x 0.5 = 75.00 yuan, all on B.
    base = np.array([[2000.0] * 4, [1000.0] * 4])
    meter = base - np.array([[300.0], [100.0]])
    r = settle_event(index=IDX, owner_ids=[1, 2], baseline_kw=base, metered_kw=meter,
                     owner_declared_kw=[600, 400], price_yuan_per_kwh=PRICE, band=band,
                     fee_pct=15, interval_minutes=15, export_counts=True)
    assert (r.revenue_fen, r.penalty_fen, r.fee_fen) == (0, 7_500, 0)
    assert [o.payout_fen for o in r.owners] == [0, -7_500]
    assert [o.shortfall_kwh for o in r.owners] == [0.0, 100.0]


def test_load_increase_during_peak_shaving_is_penalised_as_zero_delivery(band):
    r = _one_owner(-0.3, band)  # load went UP by 300 kW
    assert r.response_kwh == pytest.approx(-300)
    # shortfall = 500 - max(-300, 0) = 500 kWh -> 500 x 1.5 x 0.5 = 375.00 yuan
    assert r.penalty_fen == 37_500


def test_capacity_price_per_kw(band):
    r = _one_owner(1.0, band, capacity_price_yuan_per_kw=Decimal("2.5"))
    # effective 1,000 kW over 1 h x 2.5 yuan/kW = 2,500.00 on top of 1,500.00
    assert r.capacity_revenue_fen == 250_000
    assert r.revenue_fen == 400_000


def test_valley_filling_counts_consumption_increase(band):
    base = np.full((1, 4), 1000.0)
    r = settle_event(index=IDX, owner_ids=[1], baseline_kw=base, metered_kw=base + 800,
                     owner_declared_kw=[1000], price_yuan_per_kwh=Decimal("0.3"), band=band,
                     fee_pct=0, direction="valley_filling", interval_minutes=15, export_counts=True)
    assert r.response_kwh == pytest.approx(800)
    assert r.revenue_fen == 24_000  # 800 kWh x 0.30


def test_interval_basis_applies_the_band_per_interval():
    band = Band(lower_pct=60, upper_pct=150, penalty_reference_pct=60, penalty_factor=1,
                basis="interval")
    base = np.full((1, 4), 2000.0)
    delivered = np.array([[1000.0, 500.0, 2000.0, 1500.0]])  # 100%, 50%, 200%, 150% of 1 MW
    r = settle_event(index=IDX, owner_ids=[1], baseline_kw=base, metered_kw=base - delivered,
                     owner_declared_kw=[1000], price_yuan_per_kwh=Decimal(1), band=band,
                     fee_pct=0, interval_minutes=15, export_counts=True)
    # per 15 min: paid 250, 0, 375 (capped at 150%), 375 kWh = 1,000 kWh; shortfall in the 2nd
    # interval: 60% x 250 - 125 = 25 kWh x 1 yuan x 1 = 25.00 yuan
    assert r.paid_kwh == pytest.approx(1000)
    assert (r.revenue_fen, r.penalty_fen) == (100_000, 2_500)


def test_tou_bill_change_includes_rebound_in_other_periods(band):
    tariff = parse_tariff(hunan_like_tariff())
    # 20:00-21:00 in July (critical peak 1.1904) shed 1,000 kW; 22:00-23:00 (peak 0.992)
    # rebound +500 kW. Bill change: -1000 x 1.1904 + 500 x 0.992 = -1190.40 + 496.00 = -694.40
    idx = pd.date_range("2025-07-15 20:00", periods=12, freq="15min", tz="Asia/Shanghai")
    base = np.full((1, 12), 3000.0)
    delta = np.array([[-1000.0] * 4 + [0.0] * 4 + [500.0] * 4])
    in_event = np.array([True] * 4 + [False] * 8)
    r = settle_event(index=idx, owner_ids=[1], baseline_kw=base, metered_kw=base + delta,
                     owner_declared_kw=[1000], price_yuan_per_kwh=PRICE, band=band, fee_pct=15,
                     in_event=in_event, tariff=tariff, interval_minutes=15, export_counts=True)
    assert r.owners[0].tou_bill_change_fen == -69_440
    assert r.response_kwh == pytest.approx(1000)  # the rebound is outside the event
    assert list(r.intervals["tou_period"][:4]) == ["critical_peak"] * 4


def test_missing_meter_interval_is_a_clear_error(band):
    meter = np.full((1, 4), 2000.0)
    meter[0, 2] = np.nan
    with pytest.raises(SettlementError, match="missing meter data: 1 interval.*owner 7 at "
                                               "2025-07-15T19:30"):
        settle_event(index=IDX, owner_ids=[7], baseline_kw=np.full((1, 4), 3000.0),
                     metered_kw=meter, owner_declared_kw=[1000], price_yuan_per_kwh=PRICE,
                     band=band, fee_pct=15, interval_minutes=15, export_counts=True)


def test_bad_inputs(band):
    kw = dict(index=IDX, owner_ids=[7], baseline_kw=np.full((1, 4), 3000.0),
              metered_kw=np.full((1, 4), 2000.0), owner_declared_kw=[1000],
              price_yuan_per_kwh=PRICE, band=band, fee_pct=15, interval_minutes=15, export_counts=True)
    with pytest.raises(SettlementError, match="over the programme cap 1.2"):
        settle_event(**{**kw, "price_cap_yuan_per_kwh": Decimal("1.2")})
    with pytest.raises(SettlementError, match="shape"):
        settle_event(**{**kw, "metered_kw": np.full((1, 3), 2000.0)})
    with pytest.raises(SettlementError, match="declared capacity must be positive"):
        settle_event(**{**kw, "owner_declared_kw": [0]})
    with pytest.raises(SettlementError, match="timezone-aware"):
        settle_event(**{**kw, "index": IDX.tz_localize(None)})


def test_fingerprint_is_stable_and_content_sensitive(band):
    a, b = _one_owner(1.0, band), _one_owner(1.0, band)
    assert a.fingerprint() == b.fingerprint()
    assert _one_owner(0.9, band).fingerprint() != a.fingerprint()


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 6),
    t=st.integers(1, 8),
    seed=st.integers(0, 2**31),
    fee=st.decimals(0, 100, places=2),
    price=st.decimals(0, 5, places=4),
    basis=st.sampled_from(["event", "interval"]),
)
def test_payouts_plus_fee_equal_revenue_minus_penalty(n, t, seed, fee, price, basis):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2025-07-15 19:00", periods=t, freq="15min", tz="Asia/Shanghai")
    base = rng.uniform(0, 5000, (n, t))
    meter = base - rng.uniform(-500, 2000, (n, t))
    declared = rng.uniform(0, 1500, n)
    declared[0] += 1.0
    b = Band(basis=basis)
    r = settle_event(index=idx, owner_ids=list(range(1, n + 1)), baseline_kw=base,
                     metered_kw=meter, owner_declared_kw=declared, price_yuan_per_kwh=price,
                     band=b, fee_pct=fee, interval_minutes=15, export_counts=True)
    assert sum(o.payout_fen for o in r.owners) + r.fee_fen == r.revenue_fen - r.penalty_fen
    assert r.revenue_fen >= 0 and r.penalty_fen >= 0 and r.fee_fen <= r.revenue_fen
    assert all(o.penalty_fen == 0 for o in r.owners if o.shortfall_kwh == 0) or not any(
        o.shortfall_kwh for o in r.owners)


def test_interval_basis_pays_owners_whose_event_total_is_negative():
    # Owner 1 sheds 1 MW in the first interval and adds 2 MW in the second: the first interval
    # is paid; the owner's event total is negative, yet their contribution is what was paid.
    band = Band(basis="interval")
    idx = IDX[:2]
    base = np.full((1, 2), 3000.0)
    meter = base - np.array([[1000.0, -2000.0]])
    r = settle_event(index=idx, owner_ids=[1], baseline_kw=base, metered_kw=meter,
                     owner_declared_kw=[1000], price_yuan_per_kwh=PRICE, band=band, fee_pct=10, interval_minutes=15, export_counts=True)
    assert r.revenue_fen == 37_500  # 250 kWh x 1.5
    # second interval: (50% x 250 - max(-500, 0)) = 125 kWh x 1.5 x 0.5 = 93.75 yuan
    assert r.penalty_fen == 9_375
    assert r.owners[0].contribution_kwh == 250.0
    check_balance(r)
