"""How a reading is judged against the setpoint a device holds (:mod:`vpp.daemon.overrides`):
the kind's tolerance, its response time after a write, and only readings taken under that
setpoint. The daemon-level behaviour is in ``test_overrides.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pydantic
import pytest

from device_adapters.protocol import DeviceState
from vpp.config import ControlSettings
from vpp.daemon.overrides import Held, judge, tolerance_kw
from vpp.device_kinds import DeviceKind

T0 = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)
C = ControlSettings()


def _held(kind: DeviceKind = DeviceKind.COMMERCIAL_BUILDING, previous: float | None = None
          ) -> Held:
    return Held(7, kind, 400.0, 150.0, previous, T0)


def _reading(seconds: float, kw: float, active: float | None = 150.0) -> DeviceState:
    return DeviceState(7, T0 + timedelta(seconds=seconds), kw, None, None, None, True, 0.0, 0.0,
                       {"active_setpoint_kw": active})


def test_a_building_at_387_kw_under_a_150_kw_limit_overrides() -> None:
    # the reported run: 400 kW buildings, limit 150 kW, readings 150 <-> 387 kW
    assert tolerance_kw(C, DeviceKind.COMMERCIAL_BUILDING, 400.0) == pytest.approx(60.0)
    o = judge(_held(), _reading(130, 387.0), C)
    assert o is not None and o.measured_kw == 387.0 and o.limit_kw == 150.0
    assert judge(_held(), _reading(130, 150.0), C) is None  # at its limit
    assert judge(_held(), _reading(130, 90.0), C) is None  # below a cap is no override
    assert judge(_held(), _reading(130, 205.0), C) is None  # inside the tolerance


def test_a_device_still_following_a_new_setpoint_is_not_an_override() -> None:
    # within the building's response time its previous (higher) limit still counts, and a
    # first limit is not judged yet
    assert judge(_held(previous=380.0), _reading(60, 387.0), C) is None
    assert judge(_held(previous=300.0), _reading(60, 387.0), C) is not None
    assert judge(_held(), _reading(60, 387.0), C) is None
    # a battery answers in 15 s, with a tolerance of 10% of its rating
    battery = Held(7, DeviceKind.BATTERY, 5.0, -4.0, None, T0)
    assert judge(battery, _reading(20, -2.0, active=-4.0), C) is not None
    assert judge(battery, _reading(20, -3.6, active=-4.0), C) is None


def test_only_readings_taken_under_the_held_setpoint_count() -> None:
    assert judge(_held(), _reading(-1, 387.0), C) is None  # read before the write
    assert judge(_held(), _reading(130, 387.0, active=None), C) is None  # released by then
    assert judge(_held(), _reading(130, 387.0, active=200.0), C) is None  # another setpoint


def test_a_meter_value_pushed_before_the_write_is_not_judged_however_late_it_is_polled() -> None:
    # an OCPP charger's meter value at full power, received 1 s before its profile was sent,
    # still the newest when a poll reads it 300 s later: the charger has not said anything yet
    charger = Held(7, DeviceKind.EV_CHARGER, 7.0, 0.0, None, T0)
    stale = _reading(300, 7.0, active=0.0)
    assert judge(charger, stale, C) is not None  # read as measured at the poll: an override
    stale.measured_at = T0 - timedelta(seconds=1)
    assert judge(charger, stale, C) is None
    stale.measured_at = T0 + timedelta(seconds=60)  # measured under the profile: it counts
    assert judge(charger, stale, C) is not None


def test_every_kind_needs_a_tolerance_and_a_response_time() -> None:
    with pytest.raises(pydantic.ValidationError, match="missing: \\['ev_charger'"):
        ControlSettings(tolerance_pct={"battery": 5.0, "commercial_building": 15.0,
                                       "industrial_load": 10.0})
    with pytest.raises(pydantic.ValidationError, match=">= 0"):
        ControlSettings(response_s={**{k.value: 10.0 for k in DeviceKind}, "battery": -1.0})
    with pytest.raises(pydantic.ValidationError, match="heat_pump"):
        ControlSettings(tolerance_pct={**{k.value: 10.0 for k in DeviceKind}, "heat_pump": 5.0})


def test_a_setpoint_written_again_gets_its_response_time() -> None:
    """After a late heartbeat the setpoint is written again (vpp.heartbeats): the device ramps
    down from where its fall-back left it, so for its kind's response time after that write a
    reading above the cap is not an override; after it, it is. A reading taken while a write
    landed is never judged."""
    held = _held()
    rewritten = held.written_at + timedelta(seconds=300)
    assert judge(held, _reading(330, 387.0), C, rewritten) is None  # 30 s after: ramping
    assert judge(held, _reading(500, 387.0), C, rewritten) is not None  # 200 s after
    during = _reading(500, 387.0)
    during.detail["written_during_read"] = True
    assert judge(held, during, C) is None
