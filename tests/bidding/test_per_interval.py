"""Per-interval declarations: each interval settled against its own declared kW (band per
interval) instead of the event mean; by hand, the flat case unchanged, bad shapes refused, and
the money balancing to the fen (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bidding.rules import Band
from bidding.settlement import EventSettlement, SettlementError, settle_event

IDX = pd.date_range("2026-07-15 19:00", periods=4, freq="15min", tz="Asia/Shanghai")
BAND = Band(lower_pct=Decimal(50), upper_pct=Decimal(120), penalty_reference_pct=Decimal(50),
            penalty_factor=Decimal("0.5"), basis="interval")


def _settle(declared: list[float] | np.ndarray, response_kw: list[float], fee: str = "0") -> EventSettlement:
    base = np.full((1, 4), 5000.0)
    return settle_event(index=IDX, owner_ids=[7], baseline_kw=base,
                        metered_kw=base - np.array([response_kw]), owner_declared_kw=declared,
                        price_yuan_per_kwh=Decimal("1.0"), band=BAND, fee_pct=Decimal(fee),
                        interval_minutes=15, export_counts=False)


def test_each_interval_against_its_own_declaration_by_hand() -> None:
    # declared 1,000, 1,000, 200, 200 kW and delivered exactly that: every interval at 100%,
    # paid (1,000 + 1,000 + 200 + 200) x 0.25 h = 600 kWh x 1.0 yuan = 600.00, no penalty
    own = _settle(np.array([[1000.0, 1000.0, 200.0, 200.0]]), [1000.0, 1000.0, 200.0, 200.0])
    assert (own.paid_kwh, own.revenue_fen, own.penalty_fen) == (600.0, 60_000, 0)
    assert own.declared_kwh == 600.0 and own.declared_kw == 600.0  # the mean, as reported
    assert list(own.intervals["declared_kw"]) == [1000.0, 1000.0, 200.0, 200.0]
    assert list(own.intervals["performance_ratio"]) == [1.0, 1.0, 1.0, 1.0]
    # the same response against the event mean (600 kW in every interval): the first two at
    # 167% are paid at 120% (180 kWh each), the last two at 33% are unpaid and penalised:
    # (300 - 200) kW x 0.25 h = 25 kWh each, x 1.0 yuan x 0.5 = 25.00
    mean = _settle([600.0], [1000.0, 1000.0, 200.0, 200.0])
    assert (mean.paid_kwh, mean.revenue_fen, mean.penalty_fen) == (360.0, 36_000, 2_500)


def test_a_flat_per_interval_declaration_settles_as_one_value() -> None:
    resp = [500.0, 700.0, 100.0, 900.0]
    flat = _settle([600.0], resp, fee="15")
    matrix = _settle(np.full((1, 4), 600.0), resp, fee="15")
    assert matrix.fingerprint() == flat.fingerprint()


def test_intervals_outside_the_event_and_the_owners_split() -> None:
    # two owners, the event is the first three intervals; the fourth's declaration is ignored
    base = np.full((2, 4), 3000.0)
    declared = np.array([[400.0, 400.0, 0.0, 999.0], [0.0, 200.0, 600.0, 999.0]])
    r = settle_event(index=IDX, owner_ids=[1, 2], baseline_kw=base,
                     metered_kw=base - np.array([[400.0, 400.0, 0.0, 0.0],
                                                 [0.0, 200.0, 600.0, 0.0]]),
                     owner_declared_kw=declared, price_yuan_per_kwh=Decimal("1.0"), band=BAND,
                     fee_pct=Decimal(0), in_event=[True, True, True, False],
                     interval_minutes=15, export_counts=False)
    # each owner declared 800 kW-intervals = 200 kWh and delivered it: 200.00 yuan each
    assert r.declared_kwh == 400.0 and r.paid_kwh == 400.0 and r.penalty_fen == 0
    assert r.payouts() == {1: 20_000, 2: 20_000}
    assert [o.declared_kw for o in r.owners] == [pytest.approx(800 / 3), pytest.approx(800 / 3)]
    assert [o.performance_ratio for o in r.owners] == [1.0, 1.0]


@pytest.mark.parametrize(("declared", "message"), [
    (np.full((1, 3), 100.0), r"shape \(1, 3\), expected \(1, 4\)"),
    (np.array([[100.0, -1.0, 100.0, 100.0]]), "non-negative value per owner and interval"),
    (np.array([[0.0, 0.0, 0.0, 0.0]]), "declared capacity must be positive"),
    (np.array([[100.0, np.nan, 100.0, 100.0]]), "non-negative value per owner and interval"),
])
def test_bad_per_interval_declarations(declared: np.ndarray, message: str) -> None:
    with pytest.raises(SettlementError, match=message):
        _settle(declared, [100.0] * 4)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0, 2000), min_size=4, max_size=4), min_size=1, max_size=4),
       st.lists(st.lists(st.floats(-500, 2500), min_size=4, max_size=4), min_size=1, max_size=4),
       st.sampled_from(["event", "interval"]), st.integers(0, 100))
def test_per_interval_money_balances(decl: list[list[float]], resp: list[list[float]],
                                     basis: str, fee: int) -> None:
    n = min(len(decl), len(resp))
    declared = np.array(decl[:n])
    declared[0, 0] += 1.0  # something declared
    base = np.full((n, 4), 3000.0)
    r = settle_event(index=IDX, owner_ids=list(range(1, n + 1)), baseline_kw=base,
                     metered_kw=base - np.array(resp[:n]), owner_declared_kw=declared,
                     price_yuan_per_kwh=Decimal("1.3"), band=BAND.model_copy(update={"basis": basis}),
                     fee_pct=Decimal(fee), interval_minutes=15, export_counts=False)
    assert sum(r.payouts().values()) + r.fee_fen == r.revenue_fen - r.penalty_fen
    assert r.declared_kwh == pytest.approx(
        sum(int(np.rint(k * 250.0)) for row in declared for k in row) / 1000)
