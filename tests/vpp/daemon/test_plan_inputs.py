"""The planner's typed inputs (:class:`vpp.daemon.plan_inputs.PlanInputs`): the horizon's
event and tail slices and interval starts, which the solve and the stored plan both read."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from vpp.daemon.plan_inputs import PlanInputs
from vpp.models import GridEvent

START = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)


def _inputs() -> PlanInputs:
    step = timedelta(minutes=15)
    ev = GridEvent(external_id="e", source="grid", event_type="real_time",
                   direction="peak_shaving", programme="p", start=START,
                   end=START + 4 * step, requested_kw=10.0)
    # a 4-interval event, re-planned at its third interval, with a 3-interval tail
    return PlanInputs(
        event=ev, devices=[], baseline_kw=np.zeros((0, 7)), price_yuan_per_kwh=np.zeros(7),
        horizon_start=START + 2 * step, n_intervals=7, first_index=2, n_event_intervals=2,
        intervals=[START + 2 * step, START + 3 * step], declared_kw=10.0, band_upper_pct=120.0,
        direction_sign=1.0, interval_minutes=15, owner_of_device={})


def test_slices_and_starts_cover_the_rest_of_the_event_then_the_tail() -> None:
    inp = _inputs()
    assert inp.event_slice == slice(2, 4)
    assert inp.tail_slice == slice(4, 7)
    starts = inp.horizon_starts()
    assert starts == [START + timedelta(minutes=15 * k) for k in range(2, 7)]


def test_inputs_are_frozen_and_a_replan_reason_is_a_copy() -> None:
    inp = _inputs()
    with pytest.raises(dataclasses.FrozenInstanceError):
        inp.reason = "shortfall"  # type: ignore[misc]
    re = dataclasses.replace(inp, reason="shortfall", trigger={"measured_kw": 4.0})
    assert (inp.reason, re.reason, re.trigger) == ("initial", "shortfall", {"measured_kw": 4.0})
