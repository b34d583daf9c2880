"""Declarative device profiles: ``config/device_profiles/<name>.toml`` -> :class:`Profile`.

A profile is data, shared by the adapters (what to read and write) and by the simulators (what to
serve and how to interpret writes). It declares:

* ``points``: named registers (address, holding/input, data type, word/byte order, scale, unit,
  access, safe write limits ``min``/``max``, plausibility ``valid_min``/``valid_max``, a
  ``default`` for simulators, and ``readback`` for write-only registers);
* ``measure``: which points give power, energy, state of charge, indoor temperature (with a sign
  to normalise vendor conventions to ours: ``> 0`` consumption);
* ``control``: the writes for a positive, negative and zero setpoint, and for ``release``;
  values are numbers, ``"magnitude"``/``"-magnitude"`` (the setpoint's size converted to the
  point's unit) or ``"@point"`` (another point's value);
* ``heartbeat``: how the aggregator keeps the device's watchdog fed (``none`` = the device has
  no watchdog, so the aggregator keeps its own lease of ``lease_s`` and releases the device);
* ``watchdog``: what the device does by itself when not fed (simulated; documented for owners).

Addresses are 0-based wire addresses. Adding a device model means adding a profile, not code.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from device_adapters.registers import DataType, WordOrder, register_count
from vpp.config import first_error, read_toml
from vpp.device_kinds import DeviceKind
from vpp.errors import ConfigError
from vpp.packaged import profiles_dir

DEFAULT_PROFILES_DIR = profiles_dir()  # packaged: vpp.packaged (config/device_profiles)

#: Factor from a point unit to the canonical unit of a measurement (kW, kWh, %, degC).
UNIT_FACTORS: dict[str, float] = {
    "mW": 1e-6, "W": 1e-3, "kW": 1.0, "MW": 1e3,
    "Wh": 1e-3, "kWh": 1.0, "MWh": 1e3,
    "%": 1.0, "degC": 1.0, "s": 1.0, "min": 60.0, "": 1.0,
}
CURRENT_UNITS: dict[str, float] = {"A": 1.0, "mA": 1e-3}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Point(_Model):
    """One register value. Engineering value = raw * scale (* 10**sf for SunSpec)."""

    address: int = Field(..., ge=0, le=65535)
    function: Literal["holding", "input"] = "holding"
    type: DataType
    length: int = Field(1, ge=1, le=64)
    scale: float = 1.0
    scale_sf: str | None = None
    unit: str = ""
    percent_of: str | None = None
    access: Literal["r", "rw", "w"] = "r"
    min: float | None = None
    max: float | None = None
    valid_min: float | None = None
    valid_max: float | None = None
    readback: str | None = None
    word_order: WordOrder | None = None
    byte_order: WordOrder | None = None
    default: float | str | None = None
    description: str = ""

    @property
    def count(self) -> int:
        return register_count(self.type, self.length)

    @property
    def writable(self) -> bool:
        return self.access in ("rw", "w")

    @property
    def readable(self) -> bool:
        return self.access in ("r", "rw")

    @model_validator(mode="after")
    def _check(self) -> Point:
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        if self.address + self.count - 1 > 65535:
            raise ValueError("point runs past register 65535")
        if self.unit not in UNIT_FACTORS and self.unit not in CURRENT_UNITS:
            raise ValueError(f"unknown unit {self.unit!r}")
        return self


class MeasureRef(_Model):
    point: str
    sign: Literal[1, -1] = 1


class Measure(_Model):
    """What a poll reads: the device's power (+ consumption), and where the device has them its
    energy counter, state of charge, indoor temperature and the site meter it reads
    (``site_import_kw``: kW at the site's grid connection, + import; map a vendor's
    "+ export" register with ``sign = -1``)."""

    power_kw: MeasureRef
    energy_kwh: MeasureRef | None = None
    soc_pct: MeasureRef | None = None
    indoor_temp_c: MeasureRef | None = None
    site_import_kw: MeasureRef | None = None


#: The fields of :class:`Measure`, in poll order.
MEASURE_FIELDS = ("power_kw", "energy_kwh", "soc_pct", "indoor_temp_c", "site_import_kw")


class Action(_Model):
    """Write ``value`` to ``point``: a number, ``magnitude``, ``-magnitude`` or ``@other``."""

    point: str
    value: float | str

    @field_validator("value")
    @classmethod
    def _value(cls, v: float | str) -> float | str:
        if isinstance(v, str) and v not in ("magnitude", "-magnitude") and not v.startswith("@"):
            raise ValueError(f"value must be a number, 'magnitude', '-magnitude' or '@point', got {v!r}")
        return v


class Control(_Model):
    positive: list[Action] = Field(default_factory=list)
    negative: list[Action] = Field(default_factory=list)
    zero: list[Action] | None = None
    release: list[Action] = Field(default_factory=list)

    def branch(self, setpoint_kw: float) -> list[Action]:
        if setpoint_kw > 0:
            return self.positive
        if setpoint_kw < 0:
            return self.negative
        return self.zero if self.zero is not None else self.positive


class Heartbeat(_Model):
    mode: Literal["none", "rewrite", "write", "counter"] = "none"
    point: str | None = None
    value: float | None = None
    lease_s: float = Field(1200.0, gt=0)


class Watchdog(_Model):
    """Device-side fallback: when no write to ``feed_points`` for the timeout, apply ``fallback``
    (``release`` = the control.release writes)."""

    mode: Literal["none", "timer"] = "none"
    timeout_s: float | None = None
    timeout_point: str | None = None
    remaining_point: str | None = None
    feed_points: list[str] = Field(default_factory=list)
    fallback: list[Action] | Literal["release"] = "release"


class Electrical(_Model):
    voltage_v: float = Field(230.0, gt=0)
    phases: int = Field(3, ge=1, le=3)


class Identity(_Model):
    points: list[str] = Field(default_factory=list)
    expect: dict[str, list[str]] = Field(default_factory=dict)


class Profile(_Model):
    name: str
    kind: DeviceKind
    vendor: str = ""
    description: str = ""
    source: str = ""
    default_unit_id: int = Field(1, ge=0, le=255)
    word_order: WordOrder = "big"
    byte_order: WordOrder = "big"
    max_registers_per_read: int = Field(125, ge=1, le=125)
    max_gap: int = Field(8, ge=0, le=64)
    electrical: Electrical = Field(default_factory=Electrical)
    points: dict[str, Point]
    measure: Measure
    identity: Identity = Field(default_factory=Identity)
    control: Control = Field(default_factory=Control)
    heartbeat: Heartbeat = Field(default_factory=Heartbeat)
    watchdog: Watchdog = Field(default_factory=Watchdog)

    @model_validator(mode="after")
    def _refs(self) -> Profile:
        names = set(self.points)

        def need(name: str | None, where: str) -> None:
            if name is not None and name not in names:
                raise ValueError(f"{where} names unknown point {name!r}")

        for field_name in MEASURE_FIELDS:
            ref = getattr(self.measure, field_name)
            if ref is not None:
                need(ref.point, f"measure.{field_name}")
                if not self.points[ref.point].readable:
                    raise ValueError(f"measure.{field_name} point {ref.point!r} is not readable")
        for p_name, p in self.points.items():
            need(p.readback, f"points.{p_name}.readback")
            need(p.scale_sf, f"points.{p_name}.scale_sf")
            need(p.percent_of, f"points.{p_name}.percent_of")
            if p.access == "w" and p.readback is None:
                raise ValueError(f"points.{p_name} is write-only and needs a readback point")
        branches = [self.control.positive, self.control.negative, self.control.zero or [],
                    self.control.release]
        if isinstance(self.watchdog.fallback, list):
            branches.append(self.watchdog.fallback)
        for actions in branches:
            for a in actions:
                need(a.point, "control action")
                if not self.points[a.point].writable:
                    raise ValueError(f"control writes point {a.point!r}, which is not writable")
                if isinstance(a.value, str) and a.value.startswith("@"):
                    need(a.value[1:], "control action value")
        for n in self.identity.points:
            need(n, "identity.points")
        need(self.heartbeat.point, "heartbeat.point")
        if self.heartbeat.mode in ("write", "counter") and self.heartbeat.point is None:
            raise ValueError(f"heartbeat mode {self.heartbeat.mode!r} needs a point")
        need(self.watchdog.timeout_point, "watchdog.timeout_point")
        need(self.watchdog.remaining_point, "watchdog.remaining_point")
        for n in self.watchdog.feed_points:
            need(n, "watchdog.feed_points")
        return self

    def word_order_of(self, p: Point) -> WordOrder:
        return p.word_order or self.word_order

    def byte_order_of(self, p: Point) -> WordOrder:
        return p.byte_order or self.byte_order

    def poll_points(self) -> list[str]:
        """Points read on every poll: measurements, their scale factors and percent bases."""
        out: list[str] = []
        for field_name in MEASURE_FIELDS:
            ref = getattr(self.measure, field_name)
            if ref is not None:
                out.append(ref.point)
        for n in list(out):
            sf = self.points[n].scale_sf
            if sf:
                out.append(sf)
        return list(dict.fromkeys(out))

    def current_factor_kw_per_a(self) -> float:
        return self.electrical.voltage_v * self.electrical.phases / 1000.0


class ReadBlock(_Model):
    function: Literal["holding", "input"]
    address: int
    count: int


def plan_blocks(profile: Profile, names: list[str]) -> list[ReadBlock]:
    """Group points into as few reads as possible: same function, gaps <= ``max_gap``, at most
    ``max_registers_per_read`` registers each."""
    blocks: list[ReadBlock] = []
    by_fn: dict[Literal["holding", "input"], list[Point]] = {}
    for n in dict.fromkeys(names):
        p = profile.points[n]
        if not p.readable:
            raise ValueError(f"point {n!r} is not readable")
        by_fn.setdefault(p.function, []).append(p)
    for fn, pts in sorted(by_fn.items()):
        pts.sort(key=lambda p: p.address)
        start, end = pts[0].address, pts[0].address + pts[0].count
        for p in pts[1:]:
            p_end = p.address + p.count
            if (p.address - end <= profile.max_gap
                    and max(end, p_end) - start <= profile.max_registers_per_read):
                end = max(end, p_end)
            else:
                blocks.append(ReadBlock(function=fn, address=start, count=end - start))
                start, end = p.address, p_end
        blocks.append(ReadBlock(function=fn, address=start, count=end - start))
    return blocks



def parse_profile(data: dict[str, Any], origin: str = "<profile>") -> Profile:
    """Validate profile data; :class:`ConfigError` names the origin, key and reason."""
    try:
        return Profile.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(f"{origin}: {first_error(exc)}") from None


def load_profile_file(path: Path) -> Profile:
    if not path.exists():
        raise ConfigError(f"{path}: profile file not found")
    profile = parse_profile(read_toml(path), str(path))
    if profile.name != path.stem:
        raise ConfigError(f"{path}: key name: {profile.name!r} must match the file name")
    return profile


@cache
def _load_cached(path: str, mtime: float) -> Profile:
    return load_profile_file(Path(path))


def load_profile(name: str, profiles_dir: Path | None = None) -> Profile:
    """Load ``<profiles_dir>/<name>.toml`` (default ``config/device_profiles``)."""
    directory = profiles_dir or DEFAULT_PROFILES_DIR
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ConfigError(f"invalid profile name {name!r}")
    path = directory / f"{name}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.toml"))) or "none"
        raise ConfigError(f"unknown device profile {name!r} (known: {known}, or 'sunspec')")
    return _load_cached(str(path), path.stat().st_mtime)


def list_profiles(profiles_dir: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (profiles_dir or DEFAULT_PROFILES_DIR).glob("*.toml"))
