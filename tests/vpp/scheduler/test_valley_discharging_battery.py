"""Valley filling counts the rise of a battery that discharges in its baseline.

A battery on a time-of-use schedule discharges over the midday peak tariff (the season's
arbitrage batteries, 11:00-14:00), which is also when the midday PV surplus is called for valley
filling. Stopping that discharge raises the site's load by the discharge without taking any room
below the maximum state of charge. The envelope used to clip every baseline at zero before taking
the rise (and the offer's owner quantiles too), so a full battery discharging 40 kW offered
nothing; found with the season's first valley-filling call (2026-01-24 on a 150-device sample:
two batteries discharging 292 kW offered 32 kW). Peak shaving is unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from bidding.bid_inputs import BidDevice
from bidding.core import scheduler_envelopes
from forecasting.owners import OwnerForecast
from tests.vpp.scheduler.conftest import battery
from vpp.scheduler.envelope import flexibility_envelope

LEVELS = [0.1, 0.5, 0.9]


def _quantiles(kw: float, n: int = 4) -> np.ndarray:
    return np.full((len(LEVELS), 1, n), kw)


def test_a_full_battery_discharging_in_its_baseline_can_stop():
    full = battery(0, soc=90.0, rated=50.0)  # soc_max 90: no room to charge
    env = flexibility_envelope([full], _quantiles(-40.0), LEVELS, 0.9, sustain_intervals=4,
                               interval_minutes=15, direction_sign=-1.0)
    assert env.reduction_kw == pytest.approx([40.0] * 4)


def test_room_to_charge_adds_to_the_stopped_discharge():
    empty = battery(0, soc=10.0, rated=50.0)  # 80 kWh of room: more than 1 h at 50 kW
    env = flexibility_envelope([empty], _quantiles(-40.0), LEVELS, 0.9, sustain_intervals=4,
                               interval_minutes=15, direction_sign=-1.0)
    assert env.reduction_kw == pytest.approx([90.0] * 4)  # from -40 up to its 50 kW maximum
    half = battery(0, soc=50.0, rated=50.0)  # 40 kWh of room: 42.1 kW for 1 h at 95%
    env = flexibility_envelope([half], _quantiles(-40.0), LEVELS, 0.9, sustain_intervals=4,
                               interval_minutes=15, direction_sign=-1.0)
    assert env.reduction_kw == pytest.approx([40.0 + 40.0 / 0.95] * 4)


def test_peak_shaving_is_unchanged():
    full = battery(0, soc=90.0, rated=50.0)
    env = flexibility_envelope([full], _quantiles(-40.0), LEVELS, 0.9, sustain_intervals=4,
                               interval_minutes=15, direction_sign=1.0)
    assert env.reduction_kw == pytest.approx([50.0] * 4)  # as before: baseline taken as 0


def test_the_offer_envelope_keeps_the_owners_discharge():
    start = datetime(2026, 1, 24, 3, tzinfo=UTC)
    window = pd.date_range(start, start + timedelta(hours=1), freq="15min", inclusive="left")
    fc = OwnerForecast(LEVELS, window, {7: np.full((3, 4), -40.0)})
    dev = BidDevice(1, 7, "battery", 50.0, -50.0, 50.0,
                    {"capacity_kwh": 100.0, "soc_min_pct": 10.0, "soc_max_pct": 90.0},
                    soc_pct=90.0)
    env = scheduler_envelopes([dev], fc, window, 0.9, interval_minutes=15,
                              direction="valley_filling")
    assert env[7] == pytest.approx([40.0] * 4)
    peak = scheduler_envelopes([dev], fc, window, 0.9, interval_minutes=15)
    assert peak[7] == pytest.approx([50.0] * 4)  # unchanged: baseline taken as 0, discharge 50
