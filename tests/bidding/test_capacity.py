"""Monthly capacity payment, pure: the credit by hand, the split balancing to the fen
(hypothesis), directions and bad input."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bidding.capacity import CapacityPayment, EventCapacity, capacity_payment
from vpp.errors import ValidationError

PEAK = "peak_shaving"


def _pay(events: list[EventCapacity], price: str = "0.3", fee: str = "15") -> CapacityPayment:
    return capacity_payment(events, programme="hunan-2026", month="2026-07",
                            price_yuan_per_kw_month=Decimal(price), fee_pct=Decimal(fee),
                            directions=[PEAK])


def test_credit_total_fee_and_split_by_hand() -> None:
    # event 1: 1,000 kWh paid over 1 h = 1,000 kW, owners 1 and 2 contributed 3:1
    # event 2: 1,000 kWh paid over 2 h = 500 kW, owner 2 alone
    # credit = (1,000 + 500) / 2 = 750 kW; x 0.3 = 225.00 yuan; fee 15% = 33.75
    # owner 1: 750 kW / 2 = 375 kW; owner 2: (250 + 500) / 2 = 375 kW -> 95.63 / 95.62
    events = [
        EventCapacity(1, PEAK, Fraction(1_000_000), 60, {1: 750_000, 2: 250_000}),
        EventCapacity(2, PEAK, Fraction(1_000_000), 120, {2: 600_000}),
    ]
    p = _pay(events)
    assert p.credit_kw == 750
    assert (p.total_fen, p.fee_fen) == (22_500, 3_375)
    assert p.owner_credit_kw == {1: 375, 2: 375}
    assert p.owners == {1: 9_563, 2: 9_562}  # the odd fen to the first on a tie
    assert p.owners_fen + p.fee_fen == p.total_fen
    assert p.event_ids == (1, 2)


def test_failed_event_lowers_the_credit_and_other_directions_do_not_count() -> None:
    events = [
        EventCapacity(1, PEAK, Fraction(1_000_000), 60, {1: 1_000_000}),
        EventCapacity(2, PEAK, Fraction(0), 60, {1: 100_000}),  # below the band: paid nothing
        EventCapacity(3, "valley_filling", Fraction(9_000_000), 60, {1: 9_000_000}),
    ]
    p = _pay(events, fee="0")
    assert p.event_ids == (1, 2)
    assert p.credit_kw == 500
    assert p.total_fen == 15_000 and p.owners == {1: 15_000}


def test_no_event_pays_nothing() -> None:
    p = _pay([])
    assert (p.total_fen, p.fee_fen, p.owners, p.event_ids) == (0, 0, {}, ())


@pytest.mark.parametrize(("events", "fee", "message"), [
    ([EventCapacity(1, PEAK, Fraction(1), 60, {1: 1})] * 2, "15", "counted twice"),
    ([EventCapacity(1, PEAK, Fraction(1000), 60, {1: 0})], "15", "no owner contributed"),
    ([EventCapacity(1, PEAK, Fraction(1000), 0, {1: 1})], "15", "must be positive"),
    ([EventCapacity(1, PEAK, Fraction(1000), 60, {1: -1})], "15", "negative contribution"),
    ([], "101", "fee_pct"),
])
def test_bad_input_is_refused(events: list[EventCapacity], fee: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _pay(events, fee=fee)


_event = st.builds(
    lambda paid, minutes, contrib: (paid, minutes, contrib),
    st.integers(0, 50_000_000), st.sampled_from([15, 30, 60, 120, 240]),
    st.dictionaries(st.integers(1, 40), st.integers(0, 10_000_000), min_size=1, max_size=12),
)


@given(st.lists(_event, max_size=8), st.decimals("0", "5", places=3),
       st.decimals("0", "100", places=2))
def test_split_balances_to_the_fen(raw: list[tuple[int, int, dict[int, int]]], price: Decimal,
                                   fee: Decimal) -> None:
    events = [EventCapacity(i, PEAK, Fraction(paid), minutes,
                            contrib if any(contrib.values()) or paid == 0 else {1: 1})
              for i, (paid, minutes, contrib) in enumerate(raw)]
    p = _pay(events, price=str(price), fee=str(fee))
    assert p.owners_fen + p.fee_fen == p.total_fen
    assert all(f >= 0 for f in p.owners.values())
    assert sum(p.owner_credit_kw.values()) == p.credit_kw
    if events:
        assert p.credit_kw == sum(e.effective_kw for e in events) / len(events)
