"""A recording in-process transport: the :class:`~device_adapters.modbus_client.GatewayClient`
interface (``read``/``write``) served straight from a real :class:`sim.device.SimulatedDevice`
(the same register logic the pymodbus simulator serves), without a socket, so that hypothesis
can run thousands of request sequences in seconds. It records every write and can inject the
faults a hostile gateway produces: garbage words, wrong register counts, exception replies,
timeouts. The wire itself is exercised by the tests that use the real pymodbus simulator."""

from __future__ import annotations

from dataclasses import dataclass, field

from device_adapters.errors import EXCEPTION_NAMES, ExceptionReply, MalformedReply, RequestTimeout
from sim.device import SimulatedDevice


@dataclass
class Fault:
    garbage: list[int] | None = None  # words returned instead of the real ones (any values)
    exception_code: int | None = None
    timeout: bool = False
    fail_writes: bool = False


@dataclass
class RecordingTransport:
    device: SimulatedDevice
    fault: Fault = field(default_factory=Fault)
    writes: list[tuple[int, int, list[int]]] = field(default_factory=list)  # (unit, addr, words)
    endpoint: str = "in-process"

    async def read(self, unit: int, function: str, address: int, count: int) -> list[int]:
        f = self.fault
        if f.timeout:
            raise RequestTimeout(f"unit {unit}: no reply (injected)")
        if f.exception_code is not None:
            raise ExceptionReply(f"unit {unit}: exception {f.exception_code} "
                                 f"({EXCEPTION_NAMES.get(f.exception_code, '?')})",
                                 f.exception_code)
        if f.garbage is not None:
            words = (f.garbage * (count // max(len(f.garbage), 1) + 1))[:count] \
                if f.garbage else []
            if len(words) != count:  # what GatewayClient.read checks on the wire
                raise MalformedReply(f"unit {unit}: got {len(words)} registers, not {count}")
            return words
        out = self.device.read(function, address, count)
        if isinstance(out, int):
            raise ExceptionReply(f"unit {unit}: exception {out}", out)
        return out

    async def write(self, unit: int, address: int, values: list[int]) -> None:
        self.writes.append((unit, address, list(values)))
        if self.fault.timeout or self.fault.fail_writes:
            raise RequestTimeout(f"unit {unit}: no reply to write (injected)")
        code = self.device.write(address, list(values))
        if code is not None:
            raise ExceptionReply(f"unit {unit}: exception {code} on write", code)

    async def close(self) -> None:
        return None
