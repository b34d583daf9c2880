"""Pure conversions between profile points, registers and canonical quantities (no I/O).

* :func:`decode_points` turns the registers of read blocks into engineering values per point;
* :func:`encode_point` turns an engineering value into the registers to write;
* :func:`kw_to_point` / :func:`point_to_kw` convert a power in kW to a point's unit (W, kW, mW,
  A, mA via the profile's voltage and phases, or % of another point such as SunSpec WChaMax).
SunSpec scale factors (``scale_sf``) are int16 powers of ten read from another point.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from device_adapters.profile import CURRENT_UNITS, UNIT_FACTORS, Point, Profile, ReadBlock
from device_adapters.registers import DataType, EncodingError, decode_raw, encode_raw

Registers = dict[tuple[str, int], int]  # (function, address) -> 16-bit word


def point_scale(profile: Profile, name: str, values: dict[str, float | str]) -> float:
    p = profile.points[name]
    scale = p.scale
    if p.scale_sf is not None:
        sf = values.get(p.scale_sf)
        if not isinstance(sf, float | int):
            raise EncodingError(f"scale factor {p.scale_sf} of {name} not known")
        if not -10 <= sf <= 10:
            raise EncodingError(f"scale factor {p.scale_sf}={sf} out of range")
        scale *= 10.0 ** int(sf)
    return scale


def registers_of(regs: Registers, p: Point) -> list[int]:
    out = []
    for i in range(p.count):
        key = (p.function, p.address + i)
        if key not in regs:
            raise EncodingError(f"register {p.function} {p.address + i} not read")
        out.append(regs[key])
    return out


def decode_points(profile: Profile, names: list[str], regs: Registers) -> dict[str, float | str]:
    """Decode ``names`` (scale-factor points first). Raises :class:`EncodingError`."""
    values: dict[str, float | str] = {}
    ordered = sorted(names, key=lambda n: profile.points[n].scale_sf is not None)
    for n in ordered:
        p = profile.points[n]
        raw = decode_raw(registers_of(regs, p), p.type, profile.word_order_of(p),
                         profile.byte_order_of(p))
        if isinstance(raw, str):
            values[n] = raw
            continue
        if p.scale_sf is not None and p.scale_sf not in values:
            values.update(decode_points(profile, [p.scale_sf], regs))
        value = float(raw) * point_scale(profile, n, values)
        if value != value or value in (float("inf"), float("-inf")):
            raise EncodingError(f"{n}: non-finite value")
        values[n] = value
    return values


def encode_point(
    profile: Profile, name: str, value: float | str, values: dict[str, float | str] | None = None
) -> list[int]:
    p = profile.points[name]
    wo, bo = profile.word_order_of(p), profile.byte_order_of(p)
    if p.type is DataType.STRING:
        return encode_raw(str(value), p.type, wo, bo, p.length)
    if isinstance(value, str):
        raise EncodingError(f"{name}: numeric point given a string")
    scale = point_scale(profile, name, values or {})
    return encode_raw(value / scale, p.type, wo, bo)


def quantise(profile: Profile, name: str, value: float, values: dict[str, float | str]) -> float:
    """The engineering value the registers can actually hold (rounded to one LSB)."""
    p = profile.points[name]
    if p.type in (DataType.FLOAT32, DataType.FLOAT64, DataType.STRING):
        return value
    scale = point_scale(profile, name, values)
    return round(value / scale) * scale


def _unit_factor_kw(profile: Profile, name: str, values: dict[str, float | str]) -> float:
    """kW per one engineering unit of the point."""
    p = profile.points[name]
    if p.unit in CURRENT_UNITS:
        return CURRENT_UNITS[p.unit] * profile.current_factor_kw_per_a()
    if p.unit == "%" and p.percent_of:
        base = values.get(p.percent_of)
        if not isinstance(base, float | int) or base <= 0:
            raise EncodingError(f"{name} is a percentage of {p.percent_of}, which is not known")
        base_kw = base * _unit_factor_kw(profile, p.percent_of, values)
        return base_kw / 100.0
    return UNIT_FACTORS[p.unit]


def kw_to_point(profile: Profile, name: str, kw: float, values: dict[str, float | str]) -> float:
    return kw / _unit_factor_kw(profile, name, values)


def point_to_kw(profile: Profile, name: str, value: float, values: dict[str, float | str]) -> float:
    return value * _unit_factor_kw(profile, name, values)


def to_canonical(profile: Profile, name: str, value: float) -> float:
    """A measurement in the point's unit -> canonical unit (kW, kWh, %, degC)."""
    p = profile.points[name]
    if p.unit in CURRENT_UNITS:
        return value * CURRENT_UNITS[p.unit] * profile.current_factor_kw_per_a()
    return value * UNIT_FACTORS[p.unit]


def from_canonical(profile: Profile, name: str, value: float) -> float:
    return value / to_canonical(profile, name, 1.0)


_FORMATS = {DataType.INT16: "h", DataType.UINT16: "H", DataType.INT32: "i",
            DataType.UINT32: "I", DataType.FLOAT32: "f", DataType.FLOAT64: "d"}


@dataclass(frozen=True)
class _Slot:
    name: str
    block: int  # index of the read block holding the point
    offset: int  # byte offset in that block
    unpack: struct.Struct  # big-endian, the point's words in order
    words: int  # registers it spans
    reverse: bool  # word order "little": the last register is the most significant
    scale: float


class BlockDecoder:
    """The poll's point decoding compiled once per profile: each block's words are packed into
    bytes once and every point unpacked at its offset (:func:`decode_points` gives the same
    values through a dictionary of registers; this is the per-poll hot path). Only for points
    without SunSpec scale factors, strings or little-endian bytes (:func:`compile_decoder`
    returns None otherwise)."""

    def __init__(self, slots: list[_Slot], block_words: list[int]) -> None:
        self.slots = slots
        self._packers = [struct.Struct(f">{n}H") for n in block_words]

    def decode(self, blocks: list[list[int]]) -> dict[str, float | str]:
        """Engineering values per point from the words of each block, in the plan's order.
        Raises :class:`EncodingError` for a word that is not 16-bit or a non-finite value."""
        try:
            bufs = [p.pack(*w) for p, w in zip(self._packers, blocks, strict=True)]
        except (struct.error, ValueError) as exc:
            raise EncodingError(f"a register value is not a 16-bit word: {exc}") from None
        values: dict[str, float | str] = {}
        for s in self.slots:
            buf = bufs[s.block]
            if s.reverse:
                o = s.offset
                raw = s.unpack.unpack(b"".join(buf[o + 2 * k:o + 2 * k + 2]
                                               for k in reversed(range(s.words))))[0]
            else:
                raw = s.unpack.unpack_from(buf, s.offset)[0]
            value = raw * s.scale
            if not math.isfinite(value):
                raise EncodingError(f"{s.name}: non-finite value")
            values[s.name] = float(value)
        return values


def compile_decoder(profile: Profile, names: list[str],
                    blocks: list[ReadBlock]) -> BlockDecoder | None:
    """A :class:`BlockDecoder` for reading ``names`` through ``blocks``, or None when a point
    needs the general path (scale factor, string, little-endian bytes)."""
    slots = []
    for n in names:
        p = profile.points[n]
        if (p.scale_sf is not None or p.type is DataType.STRING
                or profile.byte_order_of(p) != "big"):
            return None
        k = next((i for i, b in enumerate(blocks) if b.function == p.function
                  and b.address <= p.address and p.address + p.count <= b.address + b.count),
                 None)
        if k is None:
            return None
        slots.append(_Slot(n, k, 2 * (p.address - blocks[k].address),
                           struct.Struct(">" + _FORMATS[p.type]), p.count,
                           p.count > 1 and profile.word_order_of(p) == "little", p.scale))
    return BlockDecoder(slots, [b.count for b in blocks])
