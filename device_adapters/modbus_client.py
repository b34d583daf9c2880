"""The only module that imports pymodbus's client (pinned 3.16.1: ``device_id=`` keyword).

:class:`GatewayClient` is one TCP connection to one gateway, shared by all unit ids behind it.
Modbus TCP gateways answer one request at a time, so requests are serialised by a gate of
``max_in_flight`` (default 1); throughput comes from many gateways in parallel and from reading
contiguous registers in one request. Control goes first: a request made inside
:func:`control_requests` (watchdog feeds, setpoint writes and their read-back, releases) is
served before any waiting telemetry read, so a busy poll cycle on a gateway with many devices
delays readings, never a device's watchdog. Every request has a timeout; transport failures are retried
``retries`` times with exponential backoff (``backoff_base_s * 2**attempt``) and a reconnect;
exception replies are not retried (the device refused). Errors are
:mod:`device_adapters.errors` classes with one-line messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections import deque
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)

from device_adapters.errors import (
    EXCEPTION_NAMES,
    ExceptionReply,
    GatewayUnreachable,
    MalformedReply,
    RequestTimeout,
)

log = logging.getLogger(__name__)
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # we report errors ourselves

MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123
#: per-request latencies kept per gateway for percentiles: the most recent ones only. A list
#: capped at 100,000 (as it was) grew by ~3 MB per gateway during a long run before it stopped
#: (the load benchmark's memory growth); 10,000 cover 100 cycles of a 100-device gateway.
LATENCY_WINDOW = 10_000


def _decode_words(pdu: ReadHoldingRegistersResponse, data: bytes) -> None:
    """A register reply's words in one ``struct.unpack`` (pymodbus unpacks them one by one);
    the same refusals: a byte count past the packet, or an odd one."""
    n = int(data[0])
    if n >= len(data) or n % 2:
        raise ModbusIOException(f"byte_count {n} > length of packet {len(data)} or odd",
                                function_code=pdu.function_code)
    pdu.registers = list(struct.unpack(f">{n // 2}H", data[1:1 + n]))


class _HoldingReply(ReadHoldingRegistersResponse):
    """FC03 reply decoded by :func:`_decode_words` (registered with each client through
    pymodbus' ``register``, its way to replace a response class)."""

    def decode(self, data: bytes) -> None:
        _decode_words(self, data)


class _InputReply(ReadInputRegistersResponse):
    """FC04 reply decoded by :func:`_decode_words`."""

    def decode(self, data: bytes) -> None:
        _decode_words(self, data)


_CONTROL: ContextVar[bool] = ContextVar("vpp_control_request", default=False)


@contextlib.contextmanager
def control_requests() -> Iterator[None]:
    """Requests made inside (in this task) go before waiting telemetry reads."""
    token = _CONTROL.set(True)
    try:
        yield
    finally:
        _CONTROL.reset(token)


class _Gate:
    """At most ``limit`` requests in flight; of those waiting, control requests first, then
    reads, each in arrival order. A freed slot is handed to the next waiter directly."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiting: tuple[deque[asyncio.Future[None]], deque[asyncio.Future[None]]] = (
            deque(), deque())

    async def acquire(self, control: bool) -> None:
        if self._free > 0 and not (self._waiting[0] or self._waiting[1]):
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[0 if control else 1].append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed a slot just as it was cancelled: pass it on
            raise

    def release(self) -> None:
        for queue in self._waiting:
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)
                    return
        self._free += 1


@dataclass
class GatewayStats:
    requests: int = 0
    errors: int = 0
    retries: int = 0
    reconnects: int = 0
    latency_s_total: float = 0.0
    last_error: str | None = None
    #: seconds, the last :data:`LATENCY_WINDOW` requests (a ring: memory stays bounded)
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def record(self, latency_s: float) -> None:
        self.requests += 1
        self.latency_s_total += latency_s
        self.latencies_s.append(latency_s)


class GatewayClient:
    """An asyncio Modbus TCP client for one gateway (host, port)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout_s: float = 1.0,
        retries: int = 2,
        backoff_base_s: float = 0.1,
        max_in_flight: int = 1,
        connect_timeout_s: float | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_base_s = backoff_base_s
        self.connect_timeout_s = connect_timeout_s or timeout_s
        self._gate = _Gate(max_in_flight)
        self._connect_lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | None = None
        self.stats = GatewayStats()

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        """Open the connection (idempotent); :class:`GatewayUnreachable` if it cannot."""
        if self.connected:  # fast path: no lock per request
            return
        async with self._connect_lock:
            if self.connected:
                return
            await self._drop()
            client = AsyncModbusTcpClient(
                # no timeout of pymodbus' own (its asyncio.wait_for per request costs more CPU
                # than our asyncio.timeout, and the CPU per request bounds a poll cycle; the
                # connection is timed by the wait_for below); no retries or reconnects either
                self.host, port=self.port, timeout=None,  # type: ignore[arg-type]
                retries=0, reconnect_delay=0, reconnect_delay_max=0,
            )
            try:
                client.register(_HoldingReply)
                client.register(_InputReply)
                ok = await asyncio.wait_for(client.connect(), self.connect_timeout_s)
            except (TimeoutError, OSError, ModbusException):
                ok = False
            if not ok:
                client.close()
                raise GatewayUnreachable(f"gateway {self.endpoint} unreachable")
            self._client = client
            self.stats.reconnects += 1

    async def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def close(self) -> None:
        async with self._connect_lock:
            await self._drop()

    async def read(self, unit: int, function: str, address: int, count: int) -> list[int]:
        """Read ``count`` holding or input registers from ``unit``."""
        if not 1 <= count <= MAX_READ_REGISTERS:
            raise ValueError(f"register count {count} outside 1..{MAX_READ_REGISTERS}")
        regs = await self._request(unit, "read", function, address, count=count)
        if len(regs) != count:
            raise MalformedReply(
                f"unit {unit} at {self.endpoint}: asked for {count} registers at {address}, "
                f"got {len(regs)}"
            )
        return regs

    async def write(self, unit: int, address: int, values: list[int]) -> None:
        """Write holding registers: FC06 for one register, FC16 for several."""
        if not 1 <= len(values) <= MAX_WRITE_REGISTERS:
            raise ValueError(f"write of {len(values)} registers")
        await self._request(unit, "write", "holding", address, values=values)

    async def _request(
        self, unit: int, op: str, function: str, address: int, *, count: int = 0,
        values: list[int] | None = None,
    ) -> list[int]:
        what = f"{op} {function} {address}" + (f"+{count}" if count else "")
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
                await asyncio.sleep(self.backoff_base_s * 2 ** (attempt - 1))
            try:
                await self._gate.acquire(_CONTROL.get())
                try:
                    if not self.connected:
                        await self.connect()
                    t0 = time.perf_counter()
                    async with asyncio.timeout(self.timeout_s):  # one timer, no extra task
                        regs = await self._once(unit, op, function, address, count, values)
                    self.stats.record(time.perf_counter() - t0)
                    return regs
                finally:
                    self._gate.release()
            except ExceptionReply as exc:
                self.stats.errors += 1
                self.stats.last_error = str(exc)
                raise
            except GatewayUnreachable as exc:
                last = exc
            except (TimeoutError, ConnectionException, OSError) as exc:
                timed_out = isinstance(exc, TimeoutError)  # (TimeoutError is an OSError)
                last = RequestTimeout(
                    f"unit {unit} at {self.endpoint}: no reply to {what} within "
                    f"{self.timeout_s:g} s"
                    if timed_out
                    else f"unit {unit} at {self.endpoint}: connection lost during {what}"
                )
                await self.close()  # a late reply must not be taken for the next request's
            except ModbusException as exc:
                last = MalformedReply(f"unit {unit} at {self.endpoint}: bad reply to {what}: "
                                      f"{str(exc).splitlines()[0][:120]}")
                await self.close()
            except (ValueError, IndexError, AttributeError) as exc:
                last = MalformedReply(
                    f"unit {unit} at {self.endpoint}: malformed reply to {what}: {exc}"
                )
                await self.close()
        self.stats.errors += 1
        assert last is not None
        self.stats.last_error = str(last)
        raise last

    async def _once(
        self, unit: int, op: str, function: str, address: int, count: int,
        values: list[int] | None,
    ) -> list[int]:
        client = self._client
        if client is None:
            raise ConnectionException("not connected")
        if op == "read":
            call = (client.read_holding_registers if function == "holding"
                    else client.read_input_registers)
            rr = await call(address, count=count, device_id=unit)
        elif values is not None and len(values) == 1:
            rr = await client.write_register(address, values[0], device_id=unit)
        else:
            rr = await client.write_registers(address, values or [], device_id=unit)
        if rr.isError():
            code = int(getattr(rr, "exception_code", 0) or 0)
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            raise ExceptionReply(
                f"unit {unit} at {self.endpoint}: exception {code} ({name}) on {op} "
                f"{function} {address}", code)
        if op == "read":
            regs = getattr(rr, "registers", None)  # a list from our reply classes
            if not isinstance(regs, list) or len(regs) != count:
                got = len(regs) if isinstance(regs, list | tuple) else 0
                raise ValueError(f"{got} registers in reply, expected {count}")
            return regs
        return []
