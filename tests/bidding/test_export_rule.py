"""The export rule (bidding.export_rule): a site's export past its own load counts as response
only when the programme says so (``export_counts``, default false in the programme model), in
settlement and in the offer alike.

Hand computations: one hour, price 1.5 yuan/kWh, band 50-120% on the event, declared 300 kW.
A site drawing 300 kW whose battery discharges 400 kW meters -100 kW: without export 300 kWh
is credited (the site's whole load, 100% of declared); with export 400 kWh (133%, paid at 120%).
The same battery enrolled alone (owner's meter -400 kW, baseline 0) behind a site meter that
reads -100 kW (host 300 kW): 300 kWh credited, the export past the site is not; discharging
250 kW the site still imports 50 kW and all 250 kWh are credited.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bidding.export_rule import credited_meter, deliverable_cap_kw
from bidding.programme import load_programme, read_programme_file
from bidding.rules import Band
from bidding.settlement import settle_event
from vpp.errors import ConfigError

IDX = pd.date_range("2025-07-15 20:00", periods=4, freq="15min", tz="Asia/Shanghai")
BAND = Band(lower_pct=50, upper_pct=120, penalty_reference_pct=50, penalty_factor=0.5,
            basis="event")
ROOT = Path(__file__).resolve().parents[2]


def _settle(metered_kw: float, export_counts: bool, direction: str = "peak_shaving",
            baseline_kw: float = 300.0, site_kw: object = None):
    return settle_event(
        index=IDX, owner_ids=[1], baseline_kw=np.full((1, 4), baseline_kw),
        metered_kw=np.full((1, 4), metered_kw), owner_declared_kw=[300.0],
        price_yuan_per_kwh=Decimal("1.5"), band=BAND, fee_pct=Decimal(0),
        direction=direction, interval_minutes=15, export_counts=export_counts,
        site_import_kw=None if site_kw is None else np.broadcast_to(
            np.asarray(site_kw, dtype=float), (1, 4)))


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


def test_export_past_the_site_meter_is_not_credited():
    r = _settle(-400.0, export_counts=False, baseline_kw=0.0, site_kw=-100.0)
    assert r.response_kwh == pytest.approx(300.0)  # the host site's load, not the export
    assert r.paid_kwh == pytest.approx(300.0) and r.penalty_fen == 0
    assert r.metered_kwh == pytest.approx(-400.0)  # the owner's meter as read
    assert _settle(-400.0, True, baseline_kw=0.0, site_kw=-100.0).response_kwh == pytest.approx(
        400.0)  # the programme counts export: the site meter changes nothing


def test_export_within_the_host_load_is_credited():
    r = _settle(-250.0, export_counts=False, baseline_kw=0.0, site_kw=50.0)
    assert r.response_kwh == pytest.approx(250.0)
    assert r.fingerprint() == _settle(-250.0, True, baseline_kw=0.0, site_kw=50.0).fingerprint()


def test_unmetered_site_intervals_keep_the_floor():
    # the site meter read in the first two intervals only: the other two are floored at 0
    r = _settle(-400.0, export_counts=False, baseline_kw=0.0,
                site_kw=[-100.0, -100.0, np.nan, np.nan])
    assert r.intervals["response_kw"].tolist() == pytest.approx([300.0, 300.0, 0.0, 0.0])
    assert r.response_kwh == pytest.approx(150.0)


def test_credited_meter_by_hand():
    meter = np.array([[-400.0, -250.0, -50.0, 20.0]])
    site = np.array([[-100.0, 50.0, np.nan, np.nan]])
    assert credited_meter(meter, 1.0, False, site).tolist() == [[-300.0, -250.0, 0.0, 20.0]]
    assert credited_meter(meter, 1.0, True, site).tolist() == meter.tolist()
    assert credited_meter(meter, -1.0, False, site).tolist() == meter.tolist()
    wh = np.array([[-400, 30]], dtype=np.int64)  # settlement works in integer Wh
    out = credited_meter(wh, 1.0, False, np.array([[-100.0, np.nan]]))
    assert out.dtype == np.int64 and out.tolist() == [[-300, 30]]


def test_the_offer_cap_is_the_same_rule_seen_ahead():
    base = np.array([0.0, 0.0, 50.0])
    site = np.array([300.0, np.nan, 80.0])
    assert deliverable_cap_kw(False, "peak_shaving", base, site).tolist() == [300.0, 0.0, 80.0]
    assert deliverable_cap_kw(False, "peak_shaving", base).tolist() == [0.0, 0.0, 50.0]
    assert np.isinf(deliverable_cap_kw(True, "peak_shaving", base, site)).all()
    assert np.isinf(deliverable_cap_kw(False, "valley_filling", base, site)).all()


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
