"""The export rule: a metering point's export past its own load counts as response only when the
programme says so (``export_counts``, default false in the programme model).

Hand computations: one hour, price 1.5 yuan/kWh, band 50-120% on the event, declared 300 kW.
A site drawing 300 kW whose battery discharges 400 kW meters -100 kW: without export 300 kWh
is credited (the site's whole load, 100% of declared); with export 400 kWh (133%, paid at 120%).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bidding.programme import load_programme, read_programme_file
from bidding.rules import Band
from bidding.settlement import settle_event
from bidding.settlement_inputs import credited_meter
from vpp.errors import ConfigError

IDX = pd.date_range("2025-07-15 20:00", periods=4, freq="15min", tz="Asia/Shanghai")
BAND = Band(lower_pct=50, upper_pct=120, penalty_reference_pct=50, penalty_factor=0.5,
            basis="event")
ROOT = Path(__file__).resolve().parents[2]


def _settle(metered_kw: float, export_counts: bool, direction: str = "peak_shaving",
            baseline_kw: float = 300.0):
    return settle_event(
        index=IDX, owner_ids=[1], baseline_kw=np.full((1, 4), baseline_kw),
        metered_kw=np.full((1, 4), metered_kw), owner_declared_kw=[300.0],
        price_yuan_per_kwh=Decimal("1.5"), band=BAND, fee_pct=Decimal(0),
        direction=direction, interval_minutes=15, export_counts=export_counts)


def test_export_past_the_site_load_is_not_credited_by_default():
    r = _settle(-100.0, export_counts=False)
    assert r.response_kwh == pytest.approx(300.0)  # the site's whole load, no more
    assert r.paid_kwh == pytest.approx(300.0)
    assert r.metered_kwh == pytest.approx(-100.0)  # the meter itself is reported as read
    assert r.intervals["response_kw"].tolist() == pytest.approx([300.0] * 4)


def test_export_counts_when_the_programme_says_so():
    r = _settle(-100.0, export_counts=True)
    assert r.response_kwh == pytest.approx(400.0)
    assert r.paid_kwh == pytest.approx(360.0)  # 120% of 300 kWh: the band's upper limit


def test_a_battery_alone_behind_its_meter_earns_nothing_for_export():
    r = _settle(-200.0, export_counts=False, baseline_kw=0.0)
    assert r.response_kwh == 0.0
    assert r.revenue_fen == 0 and r.penalty_fen > 0  # declared 300 kW, delivered nothing


def test_no_export_no_difference():
    a, b = _settle(50.0, export_counts=False), _settle(50.0, export_counts=True)
    assert a.fingerprint() == b.fingerprint()


def test_valley_filling_is_measured_as_metered():
    meter = np.array([[-50.0, 20.0]])
    assert credited_meter(meter, -1.0, export_counts=False).tolist() == [[-50.0, 20.0]]
    assert credited_meter(meter, 1.0, export_counts=False).tolist() == [[0.0, 20.0]]


def test_shipped_programmes_do_not_count_export():
    for name in ("hunan-2026", "hainan-2025"):
        for on in ("2025-07-15", "2026-07-15"):
            prog = load_programme(name, ROOT / "config" / "programmes", pd.Timestamp(on).date())
            assert prog.export_counts is False


def test_export_counts_must_be_a_boolean(tmp_path):
    text = (ROOT / "config" / "programmes" / "hainan-2025.toml").read_text(encoding="utf-8")
    bad = text.replace("export_counts = false", 'export_counts = "sometimes"', 1)
    (tmp_path / "hainan-2025.toml").write_text(bad, encoding="utf-8")
    with pytest.raises(ConfigError, match="export_counts"):
        read_programme_file(tmp_path / "hainan-2025.toml")
    good = text.replace("export_counts = false", "export_counts = true", 1)
    (tmp_path / "hainan-2025.toml").write_text(good, encoding="utf-8")
    assert read_programme_file(tmp_path / "hainan-2025.toml").versions[0].export_counts is True
