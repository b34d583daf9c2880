"""Offers: the band newsvendor rule, chance constraint, aggregation, caps and minimums."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from bidding.offer import (
    aggregate_offers,
    choose_capacity,
    deliverable_quantiles,
    owner_offer,
)
from bidding.programme import Product
from bidding.rules import Band
from forecasting.baselines import BaselineSpec
from vpp.errors import ValidationError

LEVELS = [0.1, 0.5, 0.9]


def _product(**kw) -> Product:
    return Product(event_type="day_ahead", direction="peak_shaving",
                   price_cap_yuan_per_kwh=Decimal("1.5"),
                   baseline=BaselineSpec(method="similar_days"), **kw)


def test_certain_delivery_declares_it():
    c = choose_capacity(LEVELS, [1000, 1000, 1000], 5000, Band(), Decimal("1.5"))
    assert c.declared_kw == pytest.approx(1000)
    assert c.p_penalty == 0
    assert c.expected_value_yuan_per_h == pytest.approx(1500)


def test_envelope_limits_the_declaration():
    c = choose_capacity(LEVELS, [900, 1000, 1100], 600, Band(), 1)
    assert c.declared_kw == pytest.approx(600) and c.limited_by == "envelope"


def test_choice_is_the_exact_maximiser_of_expected_value():
    # delivery uniform-ish between 0 and 2,000 kW; brute force over a fine grid of D on the same
    # sampled distribution never beats the breakpoint search.
    levels, q, price = [0.05, 0.5, 0.95], [0, 1000, 2000], 1.0
    c = choose_capacity(levels, q, 5000, Band(), price)
    p = (np.arange(200) + 0.5) / 200
    x = np.interp(p, levels, q)[None, :]
    d = np.linspace(0, 5000, 20001)[:, None]
    ok = x >= 0.5 * d
    val = (np.where(ok, np.minimum(x, 1.2 * d), 0) - np.where(ok, 0, np.maximum(
        0.5 * d - np.maximum(x, 0), 0)) * 0.5) * price
    assert val.mean(axis=1).max() <= c.expected_value_yuan_per_h + 1e-9
    # and it beats declaring the median (1,000 kW)
    assert c.expected_value_yuan_per_h > val.mean(axis=1)[4000]
    # a harsher penalty makes the rule more cautious
    harsh = choose_capacity(levels, q, 5000, Band(penalty_factor=5), price)
    assert harsh.declared_kw < c.declared_kw and harsh.p_penalty < c.p_penalty


def test_chance_constraint_caps_the_declaration():
    free = choose_capacity([0.1, 0.5, 0.9], [200, 1000, 1800], 5000, Band(), 1)
    capped = choose_capacity([0.1, 0.5, 0.9], [200, 1000, 1800], 5000, Band(), 1,
                             confidence=0.9)
    assert capped.declared_kw <= 200 / 0.5 + 1e-6 < free.declared_kw
    assert capped.p_penalty <= 0.1 + 1e-9


def test_deliverable_quantiles_from_a_load_forecast():
    load_q = np.array([[900.0], [1000.0], [1100.0]])  # p10, p50, p90 of the true load
    q = deliverable_quantiles(np.array([300.0]), np.array([1000.0]), load_q)
    # settled response = F + B - L: high load -> low response
    assert q[:, 0].tolist() == [200.0, 300.0, 400.0]
    v = deliverable_quantiles(np.array([300.0]), np.array([1000.0]), load_q, "valley_filling")
    assert v[:, 0].tolist() == [200.0, 300.0, 400.0]


def test_aggregate_keeps_shares_and_enforces_rules():
    rq = np.array([[800.0] * 4, [1000.0] * 4, [1200.0] * 4])
    a = owner_offer(1, LEVELS, rq, np.full(4, 5000.0), Band(), Decimal("1.5"))
    b = owner_offer(2, LEVELS, rq * 3, np.full(4, 5000.0), Band(), Decimal("1.5"))
    vpp = aggregate_offers([a, b], _product(), Decimal("1.5"), min_declared_kw=1000)
    assert vpp.declared_kw == pytest.approx(a.declared_kw + b.declared_kw)
    assert sum(vpp.shares.values()) == pytest.approx(1)
    assert vpp.shares[2] == pytest.approx(0.75, rel=0.05)
    with pytest.raises(ValidationError, match="bid price 1.8 yuan/kWh is over the cap 1.5"):
        aggregate_offers([a, b], _product(), Decimal("1.8"))
    with pytest.raises(ValidationError, match="below the programme minimum of 10,000 kW"):
        aggregate_offers([a, b], _product(), Decimal("1.5"), min_declared_kw=10_000)
    with pytest.raises(ValidationError, match="below 10% of the normal load"):
        aggregate_offers([a, b], _product(), Decimal("1.5"), normal_load_kw=100_000,
                         min_share_of_normal_load_pct=10)
    with pytest.raises(ValidationError, match="no owner can offer"):
        aggregate_offers([], _product(), Decimal("1"))


def test_bad_quantiles():
    with pytest.raises(ValidationError, match="increasing"):
        choose_capacity([0.5, 0.1], [1, 2], 10, Band(), 1)
    with pytest.raises(ValidationError, match="finite"):
        choose_capacity([0.1, 0.5], [1, np.nan], 10, Band(), 1)
