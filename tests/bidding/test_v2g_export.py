"""A V2G charger's owner under the export rule (bidding.export_rule via bidding.core.make_offer):
discharging a car past the home's load exports, so unless the programme counts export the
owner's offer is capped at its expected load, as a battery owner's is."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bidding.bid_inputs import BidDevice, OwnerInput
from bidding.core import make_offer
from bidding.export_rule import can_export
from tests.bidding.test_export_offer import _days, _input

QUASAR = BidDevice(1, 1, "v2g_charger", 7.4, -7.4, 7.4,
                   {"car_battery_kwh": 40.0, "departure_soc_pct": 80.0})


def test_a_v2g_owner_is_capped_at_its_load_unless_export_counts() -> None:
    assert can_export([QUASAR.min_setpoint_kw])
    owner = OwnerInput(1, (QUASAR,), _days(3.0))  # the charger draws 3 kW at baseline
    inp = replace(_input(owner), envelope_kw={1: np.full(4, 10.0)})  # 3 kW held back + 7 out
    capped = make_offer(inp)
    assert capped.declared_kw == pytest.approx(3.0)
    assert "capped at the owner's expected load" in capped.extra["sources"]["1"]["envelope"]
    counted = make_offer(replace(_input(owner, export_counts=True),
                                 envelope_kw={1: np.full(4, 10.0)}))
    assert counted.declared_kw == pytest.approx(10.0)  # the whole envelope
