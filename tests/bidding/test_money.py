"""Integer-fen arithmetic and the largest-remainder split."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bidding.money import allocate_fen, energy_cost_fen, fmt_yuan, yuan_to_fen
from vpp.errors import ValidationError


def test_rounding_is_half_up_once():
    assert yuan_to_fen(Decimal("0.005")) == 1
    assert yuan_to_fen(Decimal("-0.005")) == -1
    assert energy_cost_fen(1_000, Decimal("1.1904")) == 119  # 1 kWh at 1.1904 yuan
    assert fmt_yuan(-123456) == "-1,234.56"


def test_largest_remainder_is_deterministic():
    assert allocate_fen(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate_fen(-100, [1, 1, 1]) == [-34, -33, -33]
    assert allocate_fen(10, [0, 3, 1]) == [0, 8, 2]
    assert allocate_fen(0, [0, 0]) == [0, 0]


def test_bad_allocations():
    with pytest.raises(ValidationError, match="every weight is zero"):
        allocate_fen(5, [0, 0])
    with pytest.raises(ValidationError, match="negative"):
        allocate_fen(5, [1, -1])
    with pytest.raises(ValidationError, match="integer fen"):
        allocate_fen(5.0, [1])  # type: ignore[arg-type]


@given(st.integers(-10**12, 10**12),
       st.lists(st.integers(0, 10**9), min_size=1, max_size=30).filter(lambda w: sum(w) > 0))
def test_parts_always_sum_to_the_whole(total, weights):
    parts = allocate_fen(total, weights)
    assert sum(parts) == total
    assert all(p == 0 for p, w in zip(parts, weights, strict=True) if w == 0)
    # every part within one fen of its exact share
    wsum = sum(weights)
    for p, w in zip(parts, weights, strict=True):
        assert abs(p - total * w / wsum) < 1.000001
