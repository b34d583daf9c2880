"""Write safety, as a hypothesis state machine: whatever sequence of setpoints (NaN, infinities,
huge values included), limit changes (a re-configured device), injected faults (timeouts,
exception replies, garbage reads, failed writes), releases, heartbeats and lease expiries an
adapter goes through, every register it writes

* belongs to a point the profile marks writable, written whole (address and register count),
* holds a value inside that point's ``min``/``max``,
* and a power it writes is inside the device's declared limits *at the time of the write*.

The adapters are the real :class:`device_adapters.adapter.ProfileAdapter` over the real
simulated device's registers (:mod:`tests.reliability.transport`, which records every write).
"""

from __future__ import annotations

import asyncio
import math
from typing import cast

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from device_adapters.codec import point_scale, point_to_kw
from device_adapters.registers import decode_raw
from sim.clock import ManualClock
from tests.reliability.transport import Fault, RecordingTransport
from tests.sim.helpers import BY_PROFILE, adapter_for, sim_device
from vpp.errors import DeviceError

PROFILES = ["huawei-luna2000", "sungrow-sh", "alfen-ng9xx", "keba-p30", "coolmaster-vrf",
            "industrial-plc"]
SETPOINT = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([math.nan, math.inf, -math.inf,
                                                            0.0, -0.0, 1e-9, -1e-9]))
FRACTION = st.floats(0.0, 1.0)


class WriteSafety(RuleBasedStateMachine):
    profile_name = PROFILES[0]

    def __init__(self) -> None:
        super().__init__()
        self.case = BY_PROFILE[self.profile_name]
        self.clock = ManualClock()
        self.t = RecordingTransport(sim_device(self.case, self.clock, 1))
        self.adapter = asyncio.run(adapter_for(self.case, self.t, 1))  # type: ignore[arg-type]
        self.limits = (self.case.min_kw, self.case.max_kw)
        self.checked = 0
        self.release_writes: set[int] = set()
        self.released_rule = False
        self.magnitude_points = {
            a.point for branch in (self.adapter.profile.control.positive,
                                   self.adapter.profile.control.negative)
            for a in branch if a.value in ("magnitude", "-magnitude")}

    def _run(self, coro) -> None:  # noqa: ANN001
        try:
            asyncio.run(coro)
        except DeviceError:
            pass  # a refused or failed device request is allowed; unsafe writes are not

    @initialize()
    def start(self) -> None:
        self._run(self.adapter.read_state())

    @rule(sp=SETPOINT)
    def apply(self, sp: float) -> None:
        res = asyncio.run(self.adapter.apply_setpoint(sp))
        lo, hi = self.limits
        if res.error is None:
            tol = 1e-6 * max(1.0, abs(lo), abs(hi))
            assert lo - tol <= res.written_kw <= hi + tol, res

    @rule(a=FRACTION, b=FRACTION)
    def reconfigure_limits(self, a: float, b: float) -> None:
        """The operator narrows or widens the declared limits within the device's range."""
        lo0, hi0 = self.case.min_kw, self.case.max_kw
        x, y = sorted((lo0 + a * (hi0 - lo0), lo0 + b * (hi0 - lo0)))
        self.adapter.min_setpoint_kw, self.adapter.max_setpoint_kw = x, y
        self.limits = (x, y)

    @rule(kind=st.sampled_from(["timeout", "exception", "garbage", "fail_writes", "clear"]),
          code=st.sampled_from([1, 2, 3, 4, 6, 11]),
          words=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=4))
    def fault(self, kind: str, code: int, words: list[int]) -> None:
        self.t.fault = {"timeout": Fault(timeout=True), "exception": Fault(exception_code=code),
                        "garbage": Fault(garbage=words), "fail_writes": Fault(fail_writes=True),
                        "clear": Fault()}[kind]

    @rule()
    def read(self) -> None:
        self._run(self.adapter.read_state())

    def _releasing(self, coro) -> None:  # noqa: ANN001
        """Writes of a release hand the device back to its own default behaviour (for example
        a charger's full current): the profile's constants, not a power we chose, so the
        declared-limit check does not apply to them (writability and point ranges still do)."""
        n = len(self.t.writes)
        releasing = self.released_rule or (self.adapter.active_setpoint_kw is not None
                                           and self.adapter.lease_expired)
        self._run(coro)
        if releasing:
            self.release_writes.update(range(n, len(self.t.writes)))

    @rule()
    def release(self) -> None:
        self.released_rule = True
        self._releasing(self.adapter.release())
        self.released_rule = False

    @rule(seconds=st.sampled_from([1.0, 60.0, 3600.0]))
    def heartbeat(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self._releasing(self.adapter.heartbeat())

    @invariant()
    def every_write_is_safe(self) -> None:
        prof = self.adapter.profile
        by_addr = {p.address: (n, p) for n, p in prof.points.items()
                   if p.function == "holding"}
        lo, hi = self.limits
        for i, (unit, address, words) in enumerate(self.t.writes):
            if i < self.checked:
                continue
            assert unit == 1
            assert address in by_addr, f"write to {address}, which is no point's start"
            name, p = by_addr[address]
            assert p.writable, f"write to read-only point {name}"
            assert len(words) == p.count, f"partial write of {name}"
            raw = decode_raw(words, p.type, prof.word_order_of(p), prof.byte_order_of(p))
            if isinstance(raw, str):
                continue
            value = float(raw) * point_scale(prof, name, self.adapter._context)
            tol = 1e-9 * max(1.0, abs(value))
            assert p.min is None or value >= p.min - tol, (name, value, p.min)
            assert p.max is None or value <= p.max + tol, (name, value, p.max)
            if name in self.magnitude_points and i not in self.release_writes:
                kw = abs(point_to_kw(prof, name, value, self.adapter._context))
                assert kw <= max(abs(lo), abs(hi)) * (1 + 1e-6) + 1e-9, \
                    f"{name} = {value:g} is {kw:g} kW, outside the limits [{lo:g}, {hi:g}]"
        self.checked = len(self.t.writes)


@pytest.mark.parametrize("name", PROFILES)
def test_no_sequence_writes_outside_the_limits(name: str) -> None:
    machine = cast(type[WriteSafety], type(f"WriteSafety_{name.replace('-', '_')}",
                                           (WriteSafety,), {"profile_name": name}))
    machine.TestCase.settings = settings(max_examples=60, stateful_step_count=30,
                                         deadline=None, database=None,
                                         suppress_health_check=list(HealthCheck))
    machine.TestCase().runTest()


def test_heartbeat_rewrite_respects_limits_narrowed_after_the_setpoint() -> None:
    """Found by the state machine's rules, pinned here: a profile whose heartbeat re-writes the
    held setpoint (Huawei forced mode) must not re-write a power the limits no longer allow."""
    case = BY_PROFILE["huawei-luna2000"]

    async def go() -> list[float]:
        t = RecordingTransport(sim_device(case, ManualClock(), 1))
        a = await adapter_for(case, t, 1)  # type: ignore[arg-type]
        assert (await a.apply_setpoint(5.0)).verified
        a.max_setpoint_kw = 2.0  # the owner lowered the limit
        n = len(t.writes)
        await a.heartbeat()
        p = a.profile.points["forced_charge_power"]
        return [float(decode_raw(w, p.type)) for _, addr, w in t.writes[n:]
                if addr == p.address]

    written_w = asyncio.run(go())
    assert written_w and max(written_w) <= 2000.0, written_w


def test_rounding_to_a_register_step_never_leaves_the_limits() -> None:
    """Found by the state machine: 13.75 kW on a KEBA is 19927.5 mA; rounding to 19928 mA wrote
    13.7503 kW, above the declared maximum. The adapter now steps back inside the limits."""
    case = BY_PROFILE["keba-p30"]

    async def go() -> float:
        t = RecordingTransport(sim_device(case, ManualClock(), 1))
        a = await adapter_for(case, t, 1, max_setpoint_kw=13.75)  # type: ignore[arg-type]
        res = await a.apply_setpoint(14.0)
        return res.written_kw

    assert asyncio.run(go()) <= 13.75
