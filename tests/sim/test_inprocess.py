"""The in-process adapter implements the same protocol on the physics, without Modbus."""

from __future__ import annotations

import pytest

from device_adapters.protocol import DeviceAdapter
from sim.clock import ManualClock
from sim.inprocess import InProcessAdapter
from tests.sim.helpers import CASES, Case
from vpp.device_kinds import DeviceKind


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_inprocess_protocol(case: Case) -> None:
    clock = ManualClock()
    a = InProcessAdapter.create(1, case.kind, case.rated_kw, case.min_kw, case.max_kw,
                                case.params, clock)
    assert isinstance(a, DeviceAdapter)
    s0 = await a.read_state()
    assert s0.flex_down_kw >= 0 and s0.flex_up_kw >= 0
    res = await a.apply_setpoint(case.max_kw * 3)
    assert res.clamped and res.written_kw == case.max_kw and res.verified
    target = -case.rated_kw / 2 if case.kind is DeviceKind.BATTERY else case.min_kw
    await a.apply_setpoint(target)
    clock.advance(60)
    s1 = await a.read_state()
    assert s1.power_kw <= max(target, 0) + 1e-6
    await a.release()
    clock.advance(1)
    await a.apply_setpoint(target)
    clock.advance(a.lease_s + 1)
    await a.heartbeat()  # lease expired: released
    assert a.setpoint_kw is None
