"""Register encoding and decoding, without sockets."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_adapters.registers import (
    DataType,
    EncodingError,
    decode_raw,
    decode_value,
    encode_raw,
    encode_value,
    register_count,
)

ORDERS = st.sampled_from(["big", "little"])
RANGES = {
    DataType.INT16: (-(2**15), 2**15 - 1), DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1), DataType.UINT32: (0, 2**32 - 1),
}


@pytest.mark.parametrize("dtype", list(RANGES))
@given(data=st.data(), wo=ORDERS, bo=ORDERS)
def test_integer_round_trip(dtype: DataType, data: st.DataObject, wo: str, bo: str) -> None:
    lo, hi = RANGES[dtype]
    v = data.draw(st.integers(lo, hi))
    regs = encode_raw(v, dtype, wo, bo)  # type: ignore[arg-type]
    assert len(regs) == register_count(dtype)
    assert all(0 <= r <= 0xFFFF for r in regs)
    assert decode_raw(regs, dtype, wo, bo) == v  # type: ignore[arg-type]


@given(v=st.floats(allow_nan=False, allow_infinity=False, width=32), wo=ORDERS)
def test_float32_round_trip(v: float, wo: str) -> None:
    assert decode_raw(encode_raw(v, DataType.FLOAT32, wo), DataType.FLOAT32, wo) == v  # type: ignore[arg-type]


@given(v=st.floats(allow_nan=False, allow_infinity=False), wo=ORDERS)
def test_float64_round_trip(v: float, wo: str) -> None:
    assert decode_raw(encode_raw(v, DataType.FLOAT64, wo), DataType.FLOAT64, wo) == v  # type: ignore[arg-type]


def test_known_layouts() -> None:
    # Huawei 37765 battery power -1500 W, int32 big-endian words
    assert encode_raw(-1500, DataType.INT32, "big") == [0xFFFF, 0xFA24]
    # Sungrow: low word first
    assert encode_raw(70000, DataType.UINT32, "little") == [70000 & 0xFFFF, 70000 >> 16]
    assert decode_raw([0x1170, 0x0001], DataType.UINT32, "little") == 70000
    # byte order within the register
    assert decode_raw([0x3412], DataType.UINT16, "big", "little") == 0x1234
    # SunSpec marker
    assert encode_raw("SunS", DataType.STRING, length=2) == [0x5375, 0x6E53]
    assert decode_raw([0x5375, 0x6E53], DataType.STRING) == "SunS"


def test_scaled_values() -> None:
    assert decode_value([525], DataType.UINT16, 0.1) == pytest.approx(52.5)
    assert encode_value(52.5, DataType.UINT16, 0.1) == [525]
    assert encode_value(-3.0, DataType.INT32, -0.001) == encode_raw(3000, DataType.INT32)


@pytest.mark.parametrize(
    ("value", "dtype"),
    [(70000, DataType.UINT16), (-1, DataType.UINT16), (2**31, DataType.INT32),
     (math.nan, DataType.INT16), (math.inf, DataType.FLOAT32), ("too long string", DataType.STRING)],
)
def test_refuses_what_does_not_fit(value: object, dtype: DataType) -> None:
    with pytest.raises(EncodingError):
        encode_raw(value, dtype, length=2)  # type: ignore[arg-type]


def test_bad_register_input() -> None:
    with pytest.raises(EncodingError, match="needs 2"):
        decode_raw([1], DataType.INT32)
    with pytest.raises(EncodingError, match="16-bit"):
        decode_raw([70000], DataType.UINT16)
    with pytest.raises(EncodingError, match="non-finite"):
        decode_value([0x7FC0, 0x0000], DataType.FLOAT32)  # a NaN on the wire
