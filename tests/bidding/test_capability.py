"""Portfolio capability against the city's 5% goal, per season."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bidding.capability import device_capability_kw, portfolio_capability


def _dev(kind, params, lo=0.0, hi=1000.0):
    return SimpleNamespace(kind=kind, params=params, min_setpoint_kw=lo, max_setpoint_kw=hi)


DEVICES = [
    _dev("commercial_building", {"max_shed_kw": 300.0, "max_shed_minutes": 120}),
    _dev("commercial_building", {"max_shed_kw": 500.0, "max_shed_minutes": 30}),  # too short
    _dev("industrial_load", {"max_curtail_kw": 1200.0, "max_curtail_minutes": 90}),
    _dev("ev_charger", {"connectors": 4, "max_charge_kw_per_connector": 60.0}, 0, 240),
    _dev("ev_charger", {"connectors": 2, "max_charge_kw_per_connector": 7.0, "v2g": True,
                        "max_discharge_kw_per_connector": 7.0}, -14, 14),
    _dev("battery", {"capacity_kwh": 1000.0}, -1000, 1000),
]


def test_device_rules():
    caps = [device_capability_kw(d, 1.0) for d in DEVICES]
    # battery: 1000 kWh x 85% x 0.95 = 807.5 kWh over 1 h < 1000 kW
    assert caps == pytest.approx([300, 0, 1200, 240, 28, 807.5])
    assert device_capability_kw(DEVICES[5], 2.0) == pytest.approx(403.75)


def test_share_of_peak_per_season():
    seasons = {c.season: c for c in portfolio_capability(DEVICES, system_peak_mw=50,
                                                          goal_pct=5)}
    summer = seasons["summer"]
    # 300 + 1200 + (240 + 28) x 0.5 + 807.5 = 2,441.5 kW = 4.883% of 50 MW
    assert summer.capability_kw == pytest.approx(2441.5)
    assert summer.share_of_peak_pct == pytest.approx(4.883)
    assert not summer.meets_goal and summer.goal_kw == 2500
    assert seasons["spring"].capability_kw == pytest.approx(2441.5 - 300 * 0.7)
    assert portfolio_capability(DEVICES, 40, 5)[1].meets_goal
