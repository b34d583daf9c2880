"""Pure encoding and decoding of Modbus register values (no sockets, no pymodbus).

A value occupies one or more 16-bit registers. Multi-register values have a *word order* (which
register holds the most significant word: ``big`` = first, as Huawei, KEBA, Alfen, DTSU666;
``little`` = last, as Sungrow SH) and a *byte order* inside each register (``big`` is the Modbus
norm; ``little`` exists on a few gateways). Engineering value = raw * scale (scale may be negative
to flip a vendor's sign convention). Strings are ASCII, two characters per register, NUL-padded.
"""

from __future__ import annotations

import math
import struct
from enum import StrEnum
from typing import Literal

WordOrder = Literal["big", "little"]


class DataType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"


_STRUCT = {
    DataType.INT16: (">h", 1),
    DataType.UINT16: (">H", 1),
    DataType.INT32: (">i", 2),
    DataType.UINT32: (">I", 2),
    DataType.FLOAT32: (">f", 2),
    DataType.FLOAT64: (">d", 4),
}

_INT_RANGE = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
}


class EncodingError(ValueError):
    """A value cannot be represented in (or decoded from) the given registers."""


def register_count(dtype: DataType, length: int = 1) -> int:
    """Registers used by one value (``length`` registers for strings)."""
    if dtype is DataType.STRING:
        return length
    return _STRUCT[dtype][1]


def _to_words(data: bytes, word_order: WordOrder, byte_order: WordOrder) -> list[int]:
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    if word_order == "little":
        words.reverse()
    if byte_order == "little":
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def _from_words(regs: list[int], word_order: WordOrder, byte_order: WordOrder) -> bytes:
    words = [r.to_bytes(2, "big") for r in regs]
    if byte_order == "little":
        words = [w[::-1] for w in words]
    if word_order == "little":
        words.reverse()
    return b"".join(words)


def decode_raw(
    regs: list[int], dtype: DataType, word_order: WordOrder = "big", byte_order: WordOrder = "big"
) -> int | float | str:
    """Decode registers into the raw (unscaled) number or string."""
    for r in regs:
        if not isinstance(r, int) or not 0 <= r <= 0xFFFF:
            raise EncodingError(f"register value {r!r} is not a 16-bit word")
    if dtype is DataType.STRING:
        data = _from_words(regs, "big", byte_order)
        return data.split(b"\x00", 1)[0].decode("ascii", errors="replace").strip()
    fmt, n = _STRUCT[dtype]
    if len(regs) != n:
        raise EncodingError(f"{dtype.value} needs {n} register(s), got {len(regs)}")
    return struct.unpack(fmt, _from_words(regs, word_order, byte_order))[0]


def encode_raw(
    value: int | float | str,
    dtype: DataType,
    word_order: WordOrder = "big",
    byte_order: WordOrder = "big",
    length: int = 1,
) -> list[int]:
    """Encode a raw number (or string) into registers; raise :class:`EncodingError` if it does
    not fit (integers are never silently wrapped)."""
    if dtype is DataType.STRING:
        data = str(value).encode("ascii")
        if len(data) > 2 * length:
            raise EncodingError(f"string {value!r} longer than {2 * length} characters")
        return _to_words(data.ljust(2 * length, b"\x00"), "big", byte_order)
    fmt, _ = _STRUCT[dtype]
    if dtype in _INT_RANGE:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise EncodingError(f"cannot encode {value} as {dtype.value}")
            value = round(value)
        lo, hi = _INT_RANGE[dtype]
        if not lo <= int(value) <= hi:
            raise EncodingError(f"{value} out of range for {dtype.value} [{lo}, {hi}]")
        data = struct.pack(fmt, int(value))
    else:
        if not math.isfinite(float(value)):
            raise EncodingError(f"cannot encode {value} as {dtype.value}")
        data = struct.pack(fmt, float(value))
    return _to_words(data, word_order, byte_order)


def decode_value(
    regs: list[int],
    dtype: DataType,
    scale: float = 1.0,
    word_order: WordOrder = "big",
    byte_order: WordOrder = "big",
) -> float:
    """Registers -> engineering value (raw * scale). Raises on NaN/inf floats."""
    raw = decode_raw(regs, dtype, word_order, byte_order)
    if isinstance(raw, str):
        raise EncodingError("string register is not a number")
    value = float(raw) * scale
    if not math.isfinite(value):
        raise EncodingError(f"non-finite value {raw!r} decoded as {dtype.value}")
    return value


def encode_value(
    value: float,
    dtype: DataType,
    scale: float = 1.0,
    word_order: WordOrder = "big",
    byte_order: WordOrder = "big",
) -> list[int]:
    """Engineering value -> registers (value / scale, rounded for integer types)."""
    if scale == 0:
        raise EncodingError("scale must not be 0")
    return encode_raw(value / scale, dtype, word_order, byte_order)


def resolution(dtype: DataType, scale: float) -> float:
    """The smallest step of the engineering value (one LSB); 0 for floats."""
    if dtype in (DataType.FLOAT32, DataType.FLOAT64):
        return 0.0
    return abs(scale)
