"""Property: whatever setpoint is asked, every register written is inside the profile's
declared range, the device's declared limits hold, and the simulated device accepts the write.

The transport here is an in-memory stand-in for a gateway (it hands requests straight to the
simulated device) so that hypothesis can try hundreds of setpoints quickly; the same path over
real Modbus TCP is covered in tests/sim/test_modbus_end_to_end.py.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_adapters.errors import ExceptionReply
from device_adapters.factory import make_adapter
from device_adapters.modbus_client import GatewayStats
from sim.clock import ManualClock
from sim.device import SimulatedDevice
from tests.sim.helpers import CASES, Case, sim_device


class InMemoryGateway:
    def __init__(self, dev: SimulatedDevice) -> None:
        self.dev = dev
        self.stats = GatewayStats()
        self.writes: list[tuple[int, list[int]]] = []

    async def read(self, unit: int, function: str, address: int, count: int) -> list[int]:
        res = self.dev.read(function, address, count)
        if isinstance(res, int):
            raise ExceptionReply(f"exception {res}", res)
        return res

    async def write(self, unit: int, address: int, values: list[int]) -> None:
        self.writes.append((address, list(values)))
        rc = self.dev.write(address, values)
        if rc is not None:
            raise ExceptionReply(f"exception {rc} on write {address}", rc)


SETPOINTS = st.one_of(st.floats(allow_nan=False), st.floats(-50_000, 50_000))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@settings(max_examples=40, deadline=None)
@given(setpoints=st.lists(SETPOINTS, min_size=1, max_size=5))
def test_writes_stay_within_declared_ranges(case: Case, setpoints: list[float]) -> None:
    async def run() -> None:
        dev = sim_device(case, ManualClock())
        gw = InMemoryGateway(dev)
        a = await make_adapter(gw, device_id=1, unit_id=1, kind=case.kind,  # type: ignore[arg-type]
                               profile=case.profile, rated_power_kw=case.rated_kw,
                               min_setpoint_kw=case.min_kw, max_setpoint_kw=case.max_kw,
                               params=case.params)
        for sp in setpoints:
            res = await a.apply_setpoint(sp)
            assert res.error is None, res.error  # the device never refused a write
            assert res.verified
            assert case.min_kw - 1e-6 <= res.written_kw <= case.max_kw + 1e-6
            if not case.min_kw <= sp <= case.max_kw:
                assert res.clamped
            if math.isfinite(sp) and case.min_kw <= sp <= case.max_kw:
                assert res.written_kw == pytest.approx(sp, rel=1e-3, abs=0.05)
            assert dev.setpoint_kw is not None
            assert case.min_kw - 0.05 <= dev.setpoint_kw <= case.max_kw + 0.05
        for address, _ in gw.writes:  # only registers the profile marks writable
            owner = next(p for p in a.profile.points.values() if p.address == address)
            assert owner.writable

    asyncio.run(run())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_limits_narrower_than_a_register_step_refuse_and_write_nothing(case: Case) -> None:
    """Regression (found by tests/reliability/test_write_safety.py): when the declared range is
    narrower than one register step, rounding could land just outside it; now nothing is written
    unless the rounded value lies inside the limits."""

    async def run() -> None:
        dev = sim_device(case, ManualClock())
        gw = InMemoryGateway(dev)
        lo = case.max_kw * 0.8 if case.max_kw > 0 else case.min_kw * 0.8
        hi = lo + 1e-5
        a = await make_adapter(gw, device_id=1, unit_id=1, kind=case.kind,  # type: ignore[arg-type]
                               profile=case.profile, rated_power_kw=case.rated_kw,
                               min_setpoint_kw=lo, max_setpoint_kw=hi, params=case.params)
        res = await a.apply_setpoint(0.0)
        if res.error is None:
            assert lo - 1e-6 * abs(lo) <= res.written_kw <= hi + 1e-6 * abs(hi)
        else:
            assert "lies within the declared limits" in res.error
            assert gw.writes == []

    asyncio.run(run())
