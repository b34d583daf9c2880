"""A PV inverter's setpoint is an output ceiling (:mod:`vpp.daemon.overrides`): generating
less than the ceiling (clouds, night) is no override; generating past it is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from device_adapters.protocol import DeviceState
from vpp.config import ControlSettings
from vpp.daemon.overrides import Held, judge
from vpp.device_kinds import DeviceKind

T0 = datetime(2026, 7, 15, 4, 0, tzinfo=UTC)
C = ControlSettings()  # pv_inverter: 10% of rating, 30 s response


def _reading(seconds: float, kw: float, active: float = -40.0) -> DeviceState:
    return DeviceState(7, T0 + timedelta(seconds=seconds), kw, None, None, None, True, 0.0, 0.0,
                       {"active_setpoint_kw": active})


def test_less_sun_than_the_ceiling_is_no_override_more_output_is() -> None:
    held = Held(7, DeviceKind.PV_INVERTER, 100.0, -40.0, None, T0)
    assert judge(held, _reading(60, -12.0), C) is None  # a cloud: under the ceiling
    assert judge(held, _reading(60, 0.0), C) is None  # night
    assert judge(held, _reading(60, -48.0), C) is None  # within 10 kW of it
    o = judge(held, _reading(60, -75.0), C)
    assert o is not None and o.measured_kw == -75.0 and o.limit_kw == -40.0


def test_within_its_response_time_the_previous_higher_ceiling_still_counts() -> None:
    held = Held(7, DeviceKind.PV_INVERTER, 100.0, -40.0, -90.0, T0)
    assert judge(held, _reading(10, -85.0), C) is None  # still ramping down from 90 kW
    assert judge(held, _reading(40, -85.0), C) is not None
