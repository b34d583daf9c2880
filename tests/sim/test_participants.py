"""Only the owners in the offer take part in a simulated call, as in the daemon
(``vpp.daemon.delivery.declared_by_owner``): the season runner dispatches only their devices and
settles only their metering points.

Before this rule the season runner dispatched every device and settled every owner with a
baseline, declared share 0 included. On the January calls after the New Year holiday (a cold
spell after a mild week) the owners who declared nothing were mostly heat-pump buildings whose
settlement baseline, built from the mild days, was far below their real heating load: their
baseline error (about -21 MW on a 3,000-device sample on 2026-01-06) was booked against the
VPP's response.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from bidding.programme import load_programme
from sim import aggregator
from vpp.errors import ValidationError

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")


def _programme():
    return load_programme("hunan-2026", ROOT / "config/programmes", date(2026, 1, 6))


def _peak():
    return _programme().product("day_ahead", "peak_shaving")


def _index() -> pd.DatetimeIndex:
    return pd.date_range(datetime(2026, 1, 6, 18, tzinfo=TZ), periods=8, freq="15min")


def test_owner_without_a_declared_share_is_not_settled() -> None:
    """Owner 1 declared nothing and its baseline is 500 kW below its load (a cold day against
    mild baseline days): the VPP's response is owner 0's 1,000 kW, not 500 kW."""
    idx = _index()
    base = np.array([[3000.0] * 8, [1000.0] * 8])
    metered = np.array([[2000.0] * 8, [1500.0] * 8])
    res, rows = aggregator.settle(_programme(), idx, base, metered, {0: 1000.0, 1: 0.0},
                                  Decimal("1.5"), 15.0, 15, product=_peak())
    assert rows == [0]
    assert [o.owner_id for o in res.owners] == [0]
    assert float(res.response_kwh) == pytest.approx(1000.0 * 2)  # 1 MW for 2 h


def test_settle_refuses_when_no_owner_declared() -> None:
    idx = _index()
    base = np.full((2, 8), 1000.0)
    with pytest.raises(ValidationError):
        aggregator.settle(_programme(), idx, base, base - 100, {0: 0.0, 1: 0.0},
                          Decimal("1.5"), 15.0, 15, product=_peak())


def test_only_devices_of_declaring_owners_are_dispatched() -> None:
    owner_of = np.array([0, 1, 1, 2, 0, 3])
    rows = aggregator.participant_rows(owner_of, {0: 500.0, 1: 0.0, 3: 20.0})
    assert rows.tolist() == [0, 4, 5]
    assert aggregator.participant_rows(owner_of, {1: 0.0}).size == 0
