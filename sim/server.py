"""Simulated Modbus TCP gateways: real pymodbus servers on 127.0.0.1, many unit ids each.

A :class:`SimGateway` serves a dict of :class:`~sim.device.SimulatedDevice` by unit id through
a custom pymodbus datastore (an unknown unit id gets exception 11, "gateway target failed to
respond", as real gateways do). Faults on command: per device (:class:`sim.device.Faults`:
exception replies, slow replies, stuck values, garbage frames, silence, word swap, ignored
writes) and per gateway (:meth:`SimGateway.drop_connections`, ``silent`` = accepts connections
and never answers). This module and :mod:`device_adapters.modbus_client` are the only ones that
import pymodbus (server and client side respectively).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer

from sim.device import SimulatedDevice

log = logging.getLogger(__name__)
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

_FC_TABLE = {3: "holding", 6: "holding", 16: "holding", 23: "holding", 4: "input"}


class _Store(ModbusServerContext):
    """pymodbus datastore over our simulated devices (bypasses the deprecated base __init__)."""

    def __init__(self, gateway: SimGateway) -> None:  # noqa: D107 - no super(): by design
        self.gateway = gateway
        self.old_simulator = True
        self.simdevices = []

    def _device(self, device_id: int) -> SimulatedDevice:
        dev = self.gateway.devices.get(device_id)
        if dev is None:
            raise NoSuchIdException(f"no unit {device_id}")
        return dev

    async def _delay(self, dev: SimulatedDevice) -> None:
        delay = dev.faults.delay_s + self.gateway.delay_s
        if delay > 0:
            await asyncio.sleep(delay)

    async def async_getValues(self, device_id: int, func_code: int, address: int,
                              count: int = 1) -> list[int] | ExcCodes:
        dev = self._device(device_id)
        self.gateway.requests += 1
        if func_code in (6, 16):  # echo for a write response
            return dev.echo(address, count)
        await self._delay(dev)
        if dev.faults.exception_code is not None:
            return ExcCodes(dev.faults.exception_code)
        fn = _FC_TABLE.get(func_code)
        if fn is None:
            return ExcCodes.ILLEGAL_FUNCTION
        res = dev.read(fn, address, count)
        return ExcCodes(res) if isinstance(res, int) else res

    async def async_setValues(self, device_id: int, func_code: int, address: int,
                              values: Sequence[int] | Sequence[bool]) -> ExcCodes | None:
        dev = self._device(device_id)
        await self._delay(dev)
        if dev.faults.exception_code is not None:
            return ExcCodes(dev.faults.exception_code)
        rc = dev.write(address, [int(v) for v in values])
        return ExcCodes(rc) if rc is not None else None

    def device_ids(self) -> list[int]:
        return list(self.gateway.devices)


class SimGateway:
    """One simulated Modbus TCP gateway with its devices keyed by unit id."""

    def __init__(self, devices: dict[int, SimulatedDevice], host: str = "127.0.0.1",
                 port: int = 15020) -> None:
        self.devices = devices
        self.host = host
        self.port = port
        self.silent = False
        self.delay_s = 0.0
        self.requests = 0
        self._server: ModbusTcpServer | None = None

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            return data
        unit = data[6] if len(data) > 6 else None
        dev = self.devices.get(unit) if unit is not None else None
        if self.silent or (dev is not None and dev.faults.silent):
            return b""
        if dev is not None and dev.faults.garbage:
            # a valid MBAP header announcing more bytes than follow, then noise
            return data[:4] + (len(data)).to_bytes(2, "big") + bytes([unit or 0, 0x83]) + b"\xff"
        return data

    async def start(self) -> None:
        self._server = ModbusTcpServer(
            _Store(self), address=(self.host, self.port), trace_packet=self._trace_packet,
        )
        await self._server.serve_forever(background=True)
        log.info("simulated gateway on %s:%s with units %s", self.host, self.port,
                 sorted(self.devices))

    def drop_connections(self) -> int:
        """Close every open client connection (a gateway reboot / dropped link)."""
        if self._server is None:
            return 0
        conns = list(self._server.active_connections.values())
        for c in conns:
            c.close()
        return len(conns)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
            await asyncio.sleep(0)

    async def __aenter__(self) -> SimGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
